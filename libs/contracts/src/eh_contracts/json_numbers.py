"""Numbers that a JSON reader cannot hold: `Infinity`, `NaN`, `1e400`, integers beyond a double.

pydantic reads `Infinity` and `NaN` and turns `1e400` into infinity; Python keeps integers of any
size. Stored as they are, they break every reader downstream: browsers' `JSON.parse` refuses
`Infinity` and turns a 400-digit integer into `Infinity`, and an alert said "GPU temperature is
inf°C". So every event that enters is checked, in every field, the extra keys of `data` included.

Walking every event costs more than validating it (7.6 µs against 5 µs per event of the benchmark's
mix), so the walk runs only on bodies whose bytes could hold such a number: the `Infinity` and
`NaN` tokens, a run of 210 digits or more (with an exponent below 100, a number needs more than 209
integer digits to pass the largest double, 1.8e308), or a number token with an exponent of three
digits or more. A number token is told from text by what stands before it: in JSON a number
follows `[`, `,` or `:` (and whitespace), never a letter or a quote, so the hex digits of a UUID
("…a08e348…", in one id of eight) do not count. Text that merely looks alike (`"x: 1e100"` inside a
string) only costs the walk.
"""

import sys
from collections.abc import Iterator
from typing import Any, Final

LARGEST_DOUBLE: Final = sys.float_info.max
# Every ASCII digit becomes "0" and "E" becomes "e"; the bytes that may stand before a number token
# ("[", "," and whitespace) become ":", as ":" itself; "+" goes (JSON has it only in exponents).
# Each suspect shape is then one substring.
_SHAPES: Final = bytes.maketrans(b"123456789E[, \t\n\r", b"000000000e::::::")
_DROPPED: Final = b"+"
_LONG_DIGIT_RUN: Final = b"0" * 210
_LARGE_EXPONENT: Final = b"0e000"
# How far back to look for what stands before a mantissa: the longest one without a 210-digit run
# (209 digits, a point, 209 digits, a sign). A longer one strips to nothing: suspect, as it must be.
_MANTISSA_MAX: Final = 420


def may_hold_unrepresentable(body: bytes) -> bool:
    """A cheap test that is true for every body of valid JSON holding a number `unrepresentable`
    would report.

    About 0.5 µs per event of the benchmark's bodies (UUID ids, metrics), against 7.6 µs for the walk.
    """
    # A one-byte search first: most bodies hold neither capital, and it is 40 times cheaper.
    if (b"I" in body and b"Infinity" in body) or (b"N" in body and b"NaN" in body):
        return True
    shapes = body.translate(_SHAPES, _DROPPED)
    if _LONG_DIGIT_RUN in shapes:
        return True
    at = shapes.find(_LARGE_EXPONENT)
    while at >= 0:
        # A number token when what stands before its mantissa is ":"; text (a UUID) otherwise.
        before = shapes[max(0, at - _MANTISSA_MAX) : at + 1].rstrip(b"0.").removesuffix(b"-")
        if not before or before.endswith(b":"):
            return True
        at = shapes.find(_LARGE_EXPONENT, at + 1)
    return False


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
