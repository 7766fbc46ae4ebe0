"""How the CLI prints events and control events: one line each, or JSON (one object per line)."""

import json
from typing import Any

import click

from eh_client import Control, Event


def event_json(event: Event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), default=str)


def control_json(control: Control) -> str:
    return json.dumps({"control": control.name, **control.data}, separators=(",", ":"), default=str)


def event_line(event: Event) -> str:
    time = event.timestamp.strftime("%Y-%m-%d %H:%M:%S")
    kind = click.style(f"{event.type:<17}", fg=_TYPE_COLOURS.get(event.type, "white"))
    return f"{time}  {event.seq:>8}  {kind} {event.resource_id:<20} {summary(event.type, _data(event))}"


def control_line(control: Control) -> str:
    colour = "red" if control.kind in ("gap", "overflow", "invalid_event") else "cyan"
    details = " ".join(f"{k}={v}" for k, v in control.data.items() if v not in (None, [], {}))
    return click.style(f"-- {control.name} {details}", fg=colour)


def summary(event_type: str, data: dict[str, Any]) -> str:
    """A few words that say what an event is about, per type."""
    if event_type == "node_metrics":
        parts = [f"cpu {_num(data, 'cpu', 'usage')}%"]
        memory, disk = data.get("memory") or {}, data.get("disk") or {}
        if memory.get("total"):
            parts.append(f"mem {100 * memory.get('used', 0) / memory['total']:.0f}%")
        if disk.get("total"):
            parts.append(f"disk {100 * disk.get('used', 0) / disk['total']:.0f}%")
        if data.get("gpu"):
            parts.append(f"gpu {_num(data, 'gpu', 'usage')}%")
        return "  ".join(parts)
    if event_type in ("node_status", "container_status"):
        text = f"{data.get('old_state') or '?'} -> {data.get('new_state')}"
        extra = [f"{k}={data[k]}" for k in ("reason", "node_id", "exit_code") if data.get(k) is not None]
        return " ".join([text, *extra])
    if event_type == "pipeline_status":
        text = f"{data.get('old_status') or '?'} -> {data.get('new_status')}"
        return text + (f" on {data['node_id']}" if data.get("node_id") else "")
    if event_type == "pipeline_progress":
        step = data.get("step_status") or {}
        return (
            f"step {data.get('current_step')}/{data.get('total_steps')} {data.get('progress')}% "
            f"{step.get('name', '')} {step.get('status', '')}".rstrip()
        )
    if event_type == "container_metrics":
        memory = data.get("memory") or {}
        return f"cpu {_num(data, 'cpu', 'usage')}%  mem {memory.get('usage')}/{memory.get('limit')}"
    if event_type == "system_alert":
        state = f"{data['state']} " if data.get("state") else ""
        return f"[{data.get('level')}] {state}{data.get('title')}: {data.get('message')}"
    if event_type == "system_log":
        return f"[{data.get('level')}] {data.get('component')}: {data.get('message')}"
    return json.dumps(data)[:120]


def _data(event: Event) -> dict[str, Any]:
    dumped: dict[str, Any] = event.envelope.data.model_dump(mode="json")
    return dumped


def _num(data: dict[str, Any], group: str, key: str) -> str:
    value = (data.get(group) or {}).get(key)
    return "?" if value is None else f"{value:g}"


_TYPE_COLOURS = {
    "node_status": "green",
    "node_metrics": "blue",
    "pipeline_status": "magenta",
    "pipeline_progress": "magenta",
    "container_status": "yellow",
    "container_metrics": "yellow",
    "system_alert": "red",
    "system_log": "white",
}
