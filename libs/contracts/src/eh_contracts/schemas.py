"""JSON Schema per event type and an AsyncAPI 3 document of the subjects, generated from the models.

`python -m eh_contracts.schemas write proto-schemas` writes them; `check` exits non-zero when the
committed files differ from what the models produce (the drift test does the same in-process).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from eh_contracts.envelope import EVENT_MODELS
from eh_contracts.event_types import EventType
from eh_contracts.stream_control import CONTROL_EVENTS
from eh_contracts.subjects import ALL_EVENTS_SUBJECT, SUBJECT_ROOT

SCHEMA_VERSION: Final = "1.0.0"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

_TYPE_SUMMARIES: Final[dict[EventType, str]] = {
    EventType.NODE_STATUS: "A node changed state (online, offline, ...).",
    EventType.NODE_METRICS: "A sample of a node's CPU, memory, disk, network and GPU.",
    EventType.PIPELINE_STATUS: "A pipeline changed status (running, completed, failed, ...).",
    EventType.PIPELINE_PROGRESS: "A pipeline advanced: current step, share done, the step's status.",
    EventType.CONTAINER_STATUS: "A container changed state (running, stopped, ...).",
    EventType.CONTAINER_METRICS: "A sample of a container's CPU, memory, network and block I/O.",
    EventType.SYSTEM_ALERT: "An alert fired or resolved.",
    EventType.SYSTEM_LOG: "A log record worth showing to operators.",
}


def event_json_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema of one event type's envelope, as a producer would send it."""
    schema = EVENT_MODELS[event_type].model_json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"https://event-handler.local/schemas/{event_type.value}.json",
        "description": _TYPE_SUMMARIES[event_type],
        **schema,
    }


def component_schemas() -> dict[str, Any]:
    """The envelope of every event type and every control event, as `#/components/schemas/<Model>`
    (the layout AsyncAPI and OpenAPI documents share)."""
    _, definitions = models_json_schema(
        [(EVENT_MODELS[t], "validation") for t in EventType]
        + [(model, "validation") for model in CONTROL_EVENTS.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = definitions["$defs"]
    return schemas


def any_event_schema() -> dict[str, Any]:
    """One event of any type, told apart by `event`, referring to `component_schemas`."""
    refs = {t.value: f"#/components/schemas/{EVENT_MODELS[t].__name__}" for t in EventType}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "event", "mapping": refs},
    }


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0 description of the `events.<type>.<resource_id>` subjects."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in EventType:
        name = event_type.value
        model_name = EVENT_MODELS[event_type].__name__
        messages[name] = {
            "name": name,
            "title": name,
            "summary": _TYPE_SUMMARIES[event_type],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/NatsHeaders"},
            "payload": {"$ref": f"#/components/schemas/{model_name}"},
        }
        channels[name] = {
            "address": f"{SUBJECT_ROOT}.{name}.{{resource_id}}",
            "title": f"{name} events",
            "description": (
                f"{_TYPE_SUMMARIES[event_type]} Subscribe to `{SUBJECT_ROOT}.{name}.*` for all resources."
            ),
            "parameters": {"resource_id": {"$ref": "#/components/parameters/resource_id"}},
            "servers": [{"$ref": "#/servers/local"}],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"receive_{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Receive {name} events (core NATS subscription or a JetStream consumer on EVENTS).",
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
        }
    channels["sse_events"], operations["receive_sse_events"], sse_messages = _sse_channel()
    messages.update(sse_messages)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Event Handler events",
            "version": SCHEMA_VERSION,
            "description": (
                "Every event of the build farm, stored in the JetStream stream `EVENTS` "
                f"(subjects `{ALL_EVENTS_SUBJECT}`) on `{SUBJECT_ROOT}.<type>.<resource_id>`. "
                "Only the collector publishes here; anyone may subscribe. The `Nats-Msg-Id` header "
                "carries the event id, so JetStream stores a retried event once."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The NATS server of `make run`.",
            },
            "sse-edge": {
                "host": "localhost:8000",
                "protocol": "http",
                "description": "The SSE edge of `make run`: Server-Sent Events over HTTP.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "parameters": {
                "resource_id": {
                    "description": "Id of the node, pipeline, container, alert or log record: "
                    "letters, digits, '_', '-', ':' (1 to 128)."
                }
            },
            "schemas": {
                "NatsHeaders": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {"type": "string", "description": "The event id (deduplication key)."}
                    },
                },
                **component_schemas(),
            },
        },
    }


def _sse_channel() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The SSE stream as a channel: every event type (`id:` = stream sequence) and the controls."""
    messages: dict[str, Any] = {}
    for name, model in CONTROL_EVENTS.items():
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "description": "SSE `event:` is the name; `data:` the JSON payload; no `id:`.",
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
    refs = [{"$ref": f"#/components/messages/{t.value}"} for t in EventType]
    refs += [{"$ref": f"#/components/messages/{name}"} for name in CONTROL_EVENTS]
    channel = {
        "address": "/api/v1/events",
        "title": "Event stream (Server-Sent Events)",
        "description": (
            "GET with filters (type, resource_id), history (start_time, end_time, limit) and resume "
            "(Last-Event-ID). Events: `id:` their stream sequence, `event:` their type, `data:` the "
            "stored envelope. Control events `stream.*` carry the state of the stream."
        ),
        "servers": [{"$ref": "#/servers/sse-edge"}],
        "messages": {
            name.replace(".", "_"): ref
            for name, ref in zip([t.value for t in EventType] + list(CONTROL_EVENTS), refs, strict=True)
        },
    }
    operation = {
        "action": "receive",
        "channel": {"$ref": "#/channels/sse_events"},
        "summary": "Receive events and control events from the SSE edge.",
        "messages": [{"$ref": f"#/channels/sse_events/messages/{key}"} for key in channel["messages"]],
    }
    return channel, operation, messages


def generated_files() -> dict[str, str]:
    """Relative path → file content, for everything under `proto-schemas/`."""
    files = {f"jsonschema/{t.value}.json": _dump(event_json_schema(t)) for t in EventType}
    files["asyncapi.json"] = _dump(asyncapi_document())
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def drifted(directory: Path) -> list[str]:
    """Files under `directory` that are missing, stale or no longer generated."""
    expected = generated_files()
    problems = []
    for relative, content in expected.items():
        path = directory / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{relative}: differs from the models")
    for path in sorted(directory.rglob("*.json")):
        relative = path.relative_to(directory).as_posix()
        if relative not in expected:
            problems.append(f"{relative}: not generated by any model")
    return problems


def write(directory: Path) -> None:
    """Write every generated file and remove JSON files no model produces any more."""
    files = generated_files()
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    for path in directory.rglob("*.json"):
        if path.relative_to(directory).as_posix() not in files:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eh_contracts.schemas", description=__doc__)
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.directory)
        return 0
    problems = drifted(args.directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run `make schemas` and commit the result", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
