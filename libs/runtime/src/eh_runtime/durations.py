"""Lengths of time as settings take them: `90`, `90s`, `250ms`, `15m`, `24h`, `30d`."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> Any:
    """Accept `90`, `90s`, `250ms`, `15m`, `24h`, `30d` (and anything pydantic takes for timedelta)."""
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match:
            return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A length of time: seconds as a number, or with a unit (`ms`, `s`, `m`, `h`, `d`)."""
