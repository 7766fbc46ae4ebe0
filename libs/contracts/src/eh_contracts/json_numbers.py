"""Numbers that a JSON reader cannot hold: `Infinity`, `NaN`, `1e400`, integers beyond a double.

pydantic reads `Infinity` and `NaN` and turns `1e400` into infinity; Python keeps integers of any
size. Stored as they are, they break every reader downstream: browsers' `JSON.parse` refuses
`Infinity` and turns a 400-digit integer into `Infinity`, and an alert said "GPU temperature is
inf°C". So every event that enters is checked, in every field, the extra keys of `data` included.

Walking every event costs about a sixth of its validation, so the walk runs only on bodies whose
bytes could hold such a number: the `Infinity` and `NaN` tokens, an exponent of three digits or
more, or a run of 210 digits or more (with an exponent below 100, a number needs more than 209
integer digits to pass the largest double, 1.8e308). Text that merely looks alike ("node-e100")
only costs the walk.
"""

import sys
from collections.abc import Iterator
from typing import Any, Final

LARGEST_DOUBLE: Final = sys.float_info.max
# Every ASCII digit becomes "0" and "E" becomes "e", so that one substring search finds each shape.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789E", b"000000000e")
_SUSPECT_SHAPES: Final = (b"e000", b"e+000", b"0" * 210)


def may_hold_unrepresentable(body: bytes) -> bool:
    """A cheap test that is true for every body holding a number `unrepresentable` would report."""
    if b"Infinity" in body or b"NaN" in body:
        return True
    shapes = body.translate(_DIGITS_AS_ZERO)
    return any(shape in shapes for shape in _SUSPECT_SHAPES)


Location = tuple[str | int, ...]


def unrepresentable(value: Any, loc: Location = ()) -> Iterator[tuple[Location, str, str]]:
    """`(path, message, error type)` of each number under `value` that is not finite or is beyond
    the double range."""
    stack: list[tuple[Any, Location]] = [(value, loc)]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend((v, (*path, k)) for k, v in reversed(item.items()))
        elif kind is list:
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(item))))
        elif kind is float:
            if item - item != 0:  # inf - inf and nan - nan are nan
                yield path, f"{item} is not a finite number; JSON cannot carry it", "finite_number"
        elif kind is int and item.bit_length() > 1024 and abs(item) > LARGEST_DOUBLE:
            digits = int(item.bit_length() * 0.30103) + 1  # str() refuses above 4,300 digits
            message = f"an integer of about {digits} digits is beyond what JSON readers hold (1.8e308)"
            yield path, message, "number_out_of_range"
