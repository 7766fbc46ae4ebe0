"""What `eh post` sends: events from a JSON or NDJSON document, or one built from flags."""

import json
from typing import Any

import click


def read_events(content: bytes) -> list[dict[str, Any]]:
    """A JSON array, one JSON object, or NDJSON (one object per line; blank lines skipped)."""
    text = content.decode("utf-8-sig").strip()
    if not text:
        raise click.UsageError("no event in the input")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, list):
        return [_object(item, f"item {i + 1}") for i, item in enumerate(document)]
    if isinstance(document, dict):
        return [document]
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                events.append(_object(json.loads(line), f"line {number}"))
            except json.JSONDecodeError as error:
                raise click.UsageError(
                    f"line {number} is not JSON: {error.msg} (column {error.colno})"
                ) from None
    return events


def events_from_flags(
    event_type: str,
    resource_id: str,
    data_json: str | None,
    assignments: tuple[str, ...],
    event_id: str | None,
) -> dict[str, Any]:
    try:
        data = json.loads(data_json) if data_json else {}
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error.msg}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    for assignment in assignments:
        path, sep, raw = assignment.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{assignment!r} is not field.path=value", param_hint="--set")
        target = data
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise click.BadParameter(f"{part!r} in {path!r} is not an object", param_hint="--set")
        target[leaf] = _value(raw)
    event: dict[str, Any] = {"event": event_type, "resource_id": resource_id, "data": data}
    if event_id:
        event["id"] = event_id
    return event


def _value(raw: str) -> Any:
    """`45.5` → 45.5, `true` → True, `null` → None, `"x"` → "x"; anything else is the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _object(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise click.UsageError(f"{where} is not a JSON object")
    return item
