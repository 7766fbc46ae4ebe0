"""Nothing stored on the bus stops the evaluator: it skips what it cannot evaluate, says so, goes on."""

import json

import pytest
from evaluator_helpers import settings_for, status_event, stored, summary, wait_for, write_rules
from rules_helpers import OFFLINE_RULE, iso

from alert_evaluator.app import create_app
from eh_devtools.pytest_plugin import serving, store_event

pytestmark = pytest.mark.nats

CORES_RULE = """
  - name: cores_per_socket
    event: node_metrics
    condition: cpu.cores / 2 > 64
    level: info
    category: resource
    title: Many cores
    message: Node {resource_id} has {value} cores per socket
"""

HUGE = "9" * 401
VALID_GHOST_TIME = iso(0)


def raw(event_id: str | None) -> dict[str, str] | None:
    return None if event_id is None else {"Nats-Msg-Id": event_id}


# (subject, payload, Nats-Msg-Id, reason the evaluator gives) — each one a message from the issue or
# of its kind: what a careless or hostile client with publish rights on events.> can store.
POISON = [
    ("events.node_status.x", b"[" * 200_000, "deep", "malformed"),
    ("events.node_status.x", b"not json at all", "not-json", "malformed"),
    ("events.node_status.x", b"", "empty", "malformed"),
    (
        "events.node_status.x",
        b'{"id": "bad-utf8", "event": "node_status", "data": "\xff\xfe"}',
        "bad-utf8",
        "malformed",
    ),
    (
        "events.node_status.ghost",
        json.dumps({"timestamp": VALID_GHOST_TIME, "data": {"new_state": "offline"}}).encode(),
        "ghost",
        "invalid",
    ),
    (
        "events.node_status.node-2",
        json.dumps(status_event("node_status", "node-1", 0, new_state="offline")).encode(),
        "node-1-node_status-0",
        "wrong_subject",
    ),
    (
        "events.node_status.node-3",
        json.dumps(status_event("node_status", "node-3", 0, new_state="offline")).encode(),
        None,
        "no_id",
    ),
    (
        "events.node_metrics.big",
        json.dumps(
            {
                "id": "big",
                "event": "node_metrics",
                "resource_id": "big",
                "timestamp": VALID_GHOST_TIME,
                "data": {"cpu": {"usage": 5, "cores": 0}, "memory": {"used": 0, "total": 1}},
            }
        )
        .replace('"cores": 0', f'"cores": {HUGE}')
        .replace('"used": 0', f'"used": {HUGE}')
        .encode(),
        "big",
        "invalid",  # the contract bounds numbers; unbounded, the cores rule raised OverflowError
    ),
]


async def test_every_poison_message_is_skipped_listed_and_evaluation_goes_on(
    nats_url, js, events_stream, tmp_path
):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE, CORES_RULE)
    async with serving(create_app(settings_for(nats_url, rules))) as client:
        await wait_for(client, role="active")
        poison_seqs = {}
        for subject, payload, msg_id, reason in POISON:
            ack = await js.publish(subject, payload, stream="EVENTS", headers=raw(msg_id))
            poison_seqs[ack.seq] = reason
        await js.publish("events.node_status", b"{}", stream="EVENTS")  # two tokens: not evaluated at all
        seq = await store_event(js, status_event("node_status", "node-1", 1, new_state="offline"))

        current = await wait_for(client, committed=seq)
        assert current["role"] == "active"
        letters = {letter["seq"]: letter["reason"] for letter in current["dead_letters"]}
        assert letters == poison_seqs
        assert current["skipped"] == len(POISON)
        # only the valid event fired: not the ghost, not node-1's event on node-2's subject
        assert summary(await stored(js)) == [("node_offline:node-1", "firing", iso(1))]
        assert (await client.get("/readyz")).status_code == 200

        metrics = (await client.get("/metrics")).text
        assert 'eventhandler_alert_events_skipped_total{reason="malformed"}' in metrics

        # a restart resumes after the poison, not at it
    async with serving(create_app(settings_for(nats_url, rules))) as client:
        seq = await store_event(js, status_event("node_status", "node-1", 2, new_state="online"))
        current = await wait_for(client, committed=seq)
        assert current["dead_letters"] == []
    assert summary(await stored(js))[-1] == ("node_offline:node-1", "resolved", iso(1))


async def test_a_dead_letter_is_logged_once_with_its_sequence(nats_url, js, events_stream, tmp_path, capsys):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    async with serving(create_app(settings_for(nats_url, rules))) as client:
        ack = await js.publish("events.node_status.x", b"[" * 200_000, stream="EVENTS", headers=raw("deep"))
        seq = await store_event(js, status_event("node_status", "node-1", 1, new_state="offline"))
        await wait_for(client, committed=seq)
    lines = [line for line in capsys.readouterr().out.splitlines() if "not evaluated" in line]
    assert len(lines) == 1
    assert f"seq={ack.seq}" in lines[0]
    assert "reason=malformed" in lines[0]
