"""Streams, history and snapshots serve only what the token's claim allows, and end when it expires."""

import asyncio
import time

import jwt
import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from eh_contracts.event_types import EventType
from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.auth.claims import Grant
from eh_runtime.auth.settings import AuthSettings, CorsSettings
from eh_runtime.auth.token import sign_token
from sse_edge.app import create_app
from sse_edge.http.query_filters import subject_filter_from_query
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.subscriber import Subscriber

SECRET = "edge-access-test-secret-0123456789abcdef"
NODE_1_STATUS = {"subscribe": {"types": ["node_status"], "resources": ["node-1"]}}
NODES = {"subscribe": {"types": ["node_status", "node_metrics"], "resources": ["node-*"]}}


def bearer(scope: dict, sub: str = "dash", **claims) -> dict[str, str]:
    if claims:
        now = int(time.time())
        body = {"sub": sub, "aud": "event-handler", "exp": now + 60, "eh": scope} | claims
        return {"Authorization": f"Bearer {jwt.encode(body, SECRET, algorithm='HS256')}"}
    return {"Authorization": f"Bearer {sign_token(SECRET, sub, scope)}"}


def jwt_edge(nats_url, edge_settings, **overrides):
    auth = AuthSettings(mode="jwt", secret=SECRET, leeway=0)
    return serving(create_app(edge_settings(nats_url, auth=auth, **overrides)))


def event(event_type: str, resource_id: str) -> dict:
    return SEED_EXAMPLES[event_type] | {"resource_id": resource_id}


async def store_mix(js) -> None:
    for event_type in ("node_status", "node_metrics", "pipeline_status"):
        for resource in ("node-1", "node-2", "ci-1"):
            await store_event(js, event(event_type, resource))


async def events_until_caught_up(messages) -> tuple[dict, list[tuple[str, str]]]:
    ready = await asyncio.wait_for(next_event(messages), 5)
    seen = []
    while (message := await asyncio.wait_for(next_event(messages), 5)).event != "stream.caught_up":
        data = message.json()
        seen.append((data["event"], data["resource_id"]))
    return ready.json(), seen


pytestmark = pytest.mark.nats


async def test_a_stream_needs_a_token_and_stays_inside_its_claim(nats_url, js, events_stream, edge_settings):
    await store_mix(js)
    async with jwt_edge(nats_url, edge_settings) as client:
        missing = await client.get("/api/v1/events")
        assert missing.status_code == 401
        assert (await client.get("/api/v1/events/history")).status_code == 401
        producer = bearer({"publish": {}})
        assert (await client.get("/api/v1/events", headers=producer)).status_code == 403
        # Asking for more than the claim is refused before the stream opens, naming the parameter.
        for params, parameter in (
            ({"type": "pipeline_status"}, "type"),
            ({"resource_id": "node-2"}, "resource_id"),
        ):
            refused = await client.get("/api/v1/events", params=params, headers=bearer(NODE_1_STATUS))
            assert refused.status_code == 403
            assert refused.json()["detail"][0]["field"] == parameter
        # Asking for everything is served as the claim: replay included, nothing else.
        params = {"start_time": "2000-01-01T00:00:00Z"}
        async with client.stream("GET", "/api/v1/events", params=params, headers=bearer(NODE_1_STATUS)) as r:
            assert r.status_code == 200
            ready, seen = await events_until_caught_up(read_sse(r))
        assert ready["filters"] == {"type": ["node_status"], "resource_id": ["node-1"]}
        assert seen == [("node_status", "node-1")]
        page = await client.get("/api/v1/events/history", headers=bearer(NODE_1_STATUS))
        assert [(e["event"], e["resource_id"]) for e in page.json()["events"]] == [("node_status", "node-1")]
        snapshot = await client.get(
            "/api/v1/events/history", params={"snapshot": "latest"}, headers=bearer(NODE_1_STATUS)
        )
        assert [(e["event"], e["resource_id"]) for e in snapshot.json()["events"]] == [
            ("node_status", "node-1")
        ]


async def served(client, path: str, params: dict, headers: dict) -> tuple[int, list[tuple[str, str, str]]]:
    """What `path` answers: its status and, when 200, the events it serves, whether it is the
    stream (replayed from the start) or the history page."""
    if path == "/api/v1/events/history":
        page = await client.get(path, params=params, headers=headers)
        events = page.json()["events"] if page.status_code == 200 else []
        return page.status_code, [(e["event"], e["resource_id"], e["data"]["new_state"]) for e in events]
    params = params | {"start_time": "2000-01-01T00:00:00Z"}
    events = []
    async with client.stream("GET", path, params=params, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, []
        messages = read_sse(response)
        while (message := await asyncio.wait_for(next_event(messages), 5)).event != "stream.caught_up":
            if message.id:
                events.append(message.json())
    return 200, [(e["event"], e["resource_id"], e["data"]["new_state"]) for e in events]


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/history"])
async def test_types_resources_expression_and_claim_are_one_filter_on_both_routes(
    nats_url, js, events_stream, edge_settings, path
):
    """The stream and the history page build their filter the same way: the claim narrows the
    types and resources asked for, and the expression is checked against the narrowed types."""
    await store_mix(js)
    offline = {"data": {"old_state": "online", "new_state": "offline"}}
    await store_event(js, event("node_status", "node-1") | offline)
    async with jwt_edge(nats_url, edge_settings) as client:
        token = bearer(NODE_1_STATUS)
        # No type asked for: the claim's one type; a field it lacks is an error naming `filter`.
        status, _ = await served(client, path, {"filter": "data.cpu.usage > 1"}, token)
        assert status == 422
        wrong_field = await client.get(path, params={"filter": "data.cpu.usage > 1"}, headers=token)
        assert wrong_field.json()["detail"][0]["type"] == "filter_unknown_field"
        refused = await client.get(path, params={"type": "pipeline_status"}, headers=token)
        assert (refused.status_code, refused.json()["detail"][0]["field"]) == (403, "type")
        refused = await client.get(path, params={"resource_id": "node-2"}, headers=token)
        assert (refused.status_code, refused.json()["detail"][0]["field"]) == (403, "resource_id")
        status, events = await served(client, path, {"filter": 'data.new_state == "offline"'}, token)
        assert (status, events) == (200, [("node_status", "node-1", "offline")])


async def test_a_pattern_claim_serves_named_resources_only(nats_url, js, events_stream, edge_settings):
    await store_mix(js)
    async with jwt_edge(nats_url, edge_settings) as client:
        everything = await client.get("/api/v1/events", headers=bearer(NODES))
        assert everything.status_code == 403
        assert "node-*" in everything.json()["detail"][0]["msg"]
        params = {"resource_id": "node-1,node-2", "start_time": "2000-01-01T00:00:00Z"}
        async with client.stream("GET", "/api/v1/events", params=params, headers=bearer(NODES)) as response:
            messages = read_sse(response)
            _, seen = await events_until_caught_up(messages)
            # Live too: an event outside the claim stored now never arrives.
            await store_event(js, event("pipeline_status", "node-1"))
            await store_event(js, event("node_status", "node-2"))
            message = await asyncio.wait_for(next_event(messages), 5)
        assert sorted(seen) == [
            ("node_metrics", "node-1"),
            ("node_metrics", "node-2"),
            ("node_status", "node-1"),
            ("node_status", "node-2"),
        ]
        assert (message.json()["event"], message.json()["resource_id"]) == ("node_status", "node-2")


async def test_a_stream_ends_when_its_token_expires(nats_url, events_stream, edge_settings):
    async with jwt_edge(nats_url, edge_settings) as client:
        headers = bearer(NODE_1_STATUS, exp=int(time.time()) + 2)
        async with client.stream("GET", "/api/v1/events", headers=headers) as response:
            messages = read_sse(response)
            names = []
            async with asyncio.timeout(10):
                async for message in messages:
                    if message.event:
                        names.append(message.event)
        assert names[-1] == "stream.token_expired"
        assert "stream.ready" in names


async def test_one_token_holder_has_a_stream_cap(nats_url, events_stream, edge_settings):
    async with jwt_edge(nats_url, edge_settings, max_connections_per_principal=1) as client:
        headers = bearer(NODE_1_STATUS, sub="script")
        async with client.stream("GET", "/api/v1/events", headers=headers) as first:
            assert first.status_code == 200
            refused = await client.get("/api/v1/events", headers=headers)
            assert refused.status_code == 429
            assert refused.headers["retry-after"]
            async with client.stream(
                "GET", "/api/v1/events", headers=bearer(NODE_1_STATUS, sub="other")
            ) as r:
                assert r.status_code == 200


async def test_forwarded_addresses_are_believed_from_trusted_proxies_only(
    nats_url, events_stream, edge_settings
):
    spoofed = {"x-forwarded-for": "203.0.113.9"}
    async with serving(
        create_app(edge_settings(nats_url, forwarded_allow_ips="10.9.9.9", max_connections_per_address=1))
    ) as client:
        async with client.stream("GET", "/api/v1/events", headers=spoofed) as first:
            assert first.status_code == 200
            # A client naming another address is still itself: the per-address cap holds.
            refused = await client.get("/api/v1/events", headers={"x-forwarded-for": "203.0.113.10"})
            assert refused.status_code == 429
            assert "127.0.0.1" in refused.json()["detail"]
    async with serving(
        create_app(edge_settings(nats_url, forwarded_allow_ips="127.0.0.1", max_connections_per_address=1))
    ) as client:
        # Behind a trusted proxy the right-most address that is not a proxy is the client,
        # whatever the client itself prepended.
        chain = {"x-forwarded-for": "198.51.100.1, 203.0.113.9, 127.0.0.1"}
        async with client.stream("GET", "/api/v1/events", headers=chain) as first:
            assert first.status_code == 200
            refused = await client.get("/api/v1/events", headers={"x-forwarded-for": "1.1.1.1, 203.0.113.9"})
            assert refused.status_code == 429
            assert "203.0.113.9" in refused.json()["detail"]


async def test_a_stream_answers_an_allowed_origin(nats_url, events_stream, edge_settings):
    cors = CorsSettings(allow_origins=["https://dash.example.com"])
    async with serving(create_app(edge_settings(nats_url, cors=cors))) as client:
        origin = {"origin": "https://dash.example.com"}
        async with client.stream("GET", "/api/v1/events", headers=origin) as response:
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "https://dash.example.com"
            assert response.headers["access-control-allow-credentials"] == "true"
        async with client.stream(
            "GET", "/api/v1/events", headers={"origin": "https://evil.example"}
        ) as other:
            assert "access-control-allow-origin" not in other.headers


# -- the property: whatever the claim, the filters and the events, nothing outside the claim ----

RESOURCES = ["node-1", "node-2", "ci-1", "ci:2", "web_3"]
types = st.sampled_from([t.value for t in EventType])
grants = st.builds(
    Grant.parse,
    st.just("subscribe"),
    st.fixed_dictionaries(
        {
            "types": st.one_of(st.just(["*"]), st.lists(types, min_size=1, max_size=3)),
            "resources": st.lists(
                st.sampled_from([*RESOURCES, "node-*", "ci*", "*"]), min_size=1, max_size=2
            ),
        }
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    grants,
    st.lists(
        st.tuples(st.lists(types, max_size=2), st.lists(st.sampled_from(RESOURCES), max_size=2)),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.tuples(types, st.sampled_from(RESOURCES)), max_size=30),
)
def test_no_live_event_outside_the_claim_reaches_a_subscriber(grant, requests, events):
    """Clients open streams (and change their filters, as a new stream) through the edge's one
    filter builder; the live fan-out then delivers only what their claim allows."""
    index = FanoutIndex(1 << 20)
    clients = []
    for wanted_types, wanted_resources in requests:
        try:
            served = subject_filter_from_query(wanted_types, wanted_resources, 500, grant)
        except HTTPException as refused:  # a 403 before any stream opens
            assert refused.status_code == 403  # noqa: PT017 - the other requests go on
            continue
        client = Subscriber(served, 1 << 20, "test")
        index.add(client)
        client.release(0)
        clients.append(client)
    for seq, (event_type, resource_id) in enumerate(events, start=1):
        frame = f"{event_type}|{resource_id}\n".encode()
        index.publish(event_type, resource_id, FramedEvent(seq, frame, None, 0.0))
    for client in clients:
        chunk, _, _ = client.take()
        for line in chunk.decode().splitlines():
            event_type, resource_id = line.split("|")
            assert grant.permits(event_type, resource_id), (grant, client.filter, line)


def test_the_filter_builder_narrows_what_it_leaves_open():
    grant = Grant.parse("subscribe", {"types": ["system_alert"], "resources": ["node-1"]})
    assert subject_filter_from_query([], [], 500, grant) == SubjectFilter.of(["system_alert"], ["node-1"])
    with pytest.raises(HTTPException) as refused:
        subject_filter_from_query(["node_status"], [], 500, grant)
    assert refused.value.status_code == 403
