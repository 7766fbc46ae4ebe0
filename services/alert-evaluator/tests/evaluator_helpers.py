"""Running evaluators against a real NATS server and reading what they published."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from rules_helpers import iso

from alert_evaluator.settings import EvaluatorSettings
from eh_runtime.settings import NatsSettings
from eh_runtime.stream import EVENTS_STREAM


def settings_for(nats_url: str, rules_file: Path, **overrides: Any) -> EvaluatorSettings:
    values: dict[str, Any] = {
        "nats": NatsSettings(url=nats_url, reconnect_wait=0.05, request_timeout=2),
        "rules_file": rules_file,
        "start_from": "all",
        "lease_ttl": 1,
        "replica_id": "replica-a",
        "shutdown_timeout": 5,
        "max_clock_skew": 3600,
    } | overrides
    return EvaluatorSettings(**values)


def write_rules(path: Path, *bodies: str, defaults: str = "staleness: 2m") -> Path:
    path.write_text(f"defaults: {{{defaults}}}\nrules:\n{''.join(bodies)}", encoding="utf-8")
    return path


def node_metrics(node: str, minute: float, usage: float) -> dict[str, Any]:
    return {
        "id": f"{node}-m{minute}",
        "event": "node_metrics",
        "timestamp": iso(minute),
        "resource_id": node,
        "data": {"cpu": {"usage": usage, "cores": 8}},
    }


def status_event(kind: str, resource: str, minute: float, **data: Any) -> dict[str, Any]:
    return {
        "id": f"{resource}-{kind}-{minute}",
        "event": kind,
        "timestamp": iso(minute),
        "resource_id": resource,
        "data": data,
    }


async def stored(js: JetStreamContext, subject: str = "events.system_alert.>") -> list[dict[str, Any]]:
    """Every stored event on `subject`, in stream order."""
    sub = await js.pull_subscribe(
        subject,
        stream=EVENTS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5),
    )
    events: list[dict[str, Any]] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.3)
            except TimeoutError:
                return events
            for msg in batch:
                events.append(json.loads(msg.data))
                await msg.ack()
    finally:
        await sub.unsubscribe()


def summary(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(alert id, state, started_at) of each alert event."""
    return [(a["resource_id"], a["data"]["state"], a["data"]["started_at"]) for a in alerts]


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/status")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def wait_for(
    client: httpx.AsyncClient, *, committed: int | None = None, role: str | None = None, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll the status until the evaluator committed stream position `committed` / has `role`."""
    deadline = time.monotonic() + timeout
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            current = await status(client)
        except httpx.HTTPError:
            current = {}
        if (
            current
            and (committed is None or current.get("committed", 0) >= committed)
            and (role is None or current.get("role") == role)
        ):
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"evaluator did not reach committed={committed} role={role}: {current}")


async def wait_for_events(
    js: JetStreamContext, subject: str, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The stored events on `subject`, once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        events = await stored(js, subject)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_replica(
    name: str, nats_url: str, rules: Path, port: int, log_dir: Path, **extra_env: str
) -> subprocess.Popen[bytes]:
    """`python -m alert_evaluator` as a process of its own (to be killed), logging into `log_dir`."""
    env = (
        os.environ
        | extra_env
        | {
            "NATS_URL": nats_url,
            "NATS_RECONNECT_WAIT": "0.1s",
            "ALERT_EVALUATOR_HOST": "127.0.0.1",
            "ALERT_EVALUATOR_PORT": str(port),
            "ALERT_EVALUATOR_RULES_FILE": str(rules),
            "ALERT_EVALUATOR_REPLICA_ID": name,
            "ALERT_EVALUATOR_LEASE_TTL": "1s",
            "ALERT_EVALUATOR_START_FROM": "all",
            "ALERT_EVALUATOR_MAX_CLOCK_SKEW": "1h",
        }
    )
    with (log_dir / f"{name}.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "alert_evaluator"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
