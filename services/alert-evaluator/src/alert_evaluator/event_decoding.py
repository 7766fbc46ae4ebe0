"""Reading stored events on the hot path: only what the rules need, without full validation.

The collector validated every event before storing it; the evaluator decodes the JSON once and
takes the type and resource id from the subject.
"""

import json
from datetime import datetime
from typing import Any


def decode_event(subject: str, payload: bytes) -> tuple[str, str, float, dict[str, Any]] | None:
    """(type, resource id, event time, data) of a stored event, or None when it is not one."""
    parts = subject.split(".")
    if len(parts) != 3:
        return None
    try:
        envelope = json.loads(payload)
        data = envelope["data"]
        when = datetime.fromisoformat(envelope["timestamp"])
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(data, dict) or when.tzinfo is None:
        return None
    return parts[1], parts[2], when.timestamp(), data
