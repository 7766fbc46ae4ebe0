"""Every HTTP door asks for a token and serves only what its claim allows (collector, evaluator,
the shared operations routes); CORS and forwarded addresses as configured, nothing open by default."""

import json
import logging

import httpx
import pytest

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.pytest_plugin import serving
from eh_runtime.auth.settings import AuthSettings, CorsSettings
from eh_runtime.auth.token import sign_token
from eh_runtime.logs import configure_logging
from eh_runtime.settings import LoggingSettings, NatsSettings

pytestmark = pytest.mark.nats

SECRET = "access-control-test-secret-0123456789"
JWT = AuthSettings(mode="jwt", secret=SECRET)


def bearer(scope: dict, sub: str = "someone") -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_token(SECRET, sub, scope)}"}


ADMIN = bearer({"admin": True}, "ops")
READER = bearer({"subscribe": {"types": ["node_status"], "resources": ["node-1"]}}, "dash")
NODE_1 = bearer({"publish": {"types": ["node_status", "node_metrics"], "resources": ["node-1"]}}, "node-1")
CI = bearer({"publish": {"types": ["pipeline_status"], "resources": ["ci-*"]}}, "ci")
PIPELINE = {"event": "pipeline_status", "resource_id": "ci-1", "data": {"new_status": "running"}}


def collector(url: str, **overrides) -> CollectorSettings:
    return CollectorSettings(nats=NatsSettings(url=url, reconnect_wait=0.05), **({"auth": JWT} | overrides))


async def test_operations_routes_answer_operators_only(nats_url, events_stream):
    async with serving(create_collector(collector(nats_url))) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert "warnings" not in ready.json()
        missing = await client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/metrics", headers=READER)).status_code == 403
        assert (await client.get("/metrics", headers=ADMIN)).status_code == 200
        # A browser carries the token in a cookie, or (EventSource) in the query.
        token = ADMIN["Authorization"].removeprefix("Bearer ")
        assert (await client.get("/metrics", headers={"cookie": f"eh_token={token}"})).status_code == 200
        assert (await client.get("/metrics", params={"access_token": token})).status_code == 200
        bad = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert "invalid_token" in bad.headers["www-authenticate"]
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/openapi.json", headers=READER)).status_code == 200
        assert (await client.get("/docs", params={"access_token": token})).status_code == 200


async def test_producers_publish_only_their_types_and_resources(nats_url, events_stream):
    async with serving(create_collector(collector(nats_url))) as client:
        assert (await client.post("/api/v1/events", json=PIPELINE)).status_code == 401
        assert (await client.post("/api/v1/events", json=PIPELINE, headers=READER)).status_code == 403
        assert (await client.post("/api/v1/events", json=PIPELINE, headers=CI)).status_code == 202
        node = {"event": "node_status", "resource_id": "ci-2", "data": {"new_state": "online"}}
        mixed = [PIPELINE, {**PIPELINE, "resource_id": "web-1"}, node]
        refused = await client.post("/api/v1/events", json=mixed, headers=CI)
        assert refused.status_code == 403
        assert [(d["loc"], d["type"]) for d in refused.json()["detail"]] == [
            ([1, "resource_id"], "forbidden"),
            ([2, "event"], "forbidden"),
        ]
        # Nothing of a refused body is stored: only the one accepted event is in the stream.
        assert (await events_stream_messages(client)) == 1


async def events_stream_messages(client: httpx.AsyncClient) -> int:
    answer = await client.get("/api/v1/resources/pipeline", headers=bearer({"subscribe": {}}))
    return int(answer.json()["stream_seq"])


async def test_nothing_is_accepted_without_a_json_content_type(nats_url, events_stream):
    async with serving(create_collector(collector(nats_url))) as client:
        body = json.dumps(PIPELINE).encode()
        for headers in (
            {},
            {"content-type": "text/plain"},
            {"content-type": "application/x-www-form-urlencoded"},
        ):
            answer = await client.post("/api/v1/events", content=body, headers=CI | headers)
            assert answer.status_code == 415, headers
        beat = await client.post("/api/v1/nodes/node-1/heartbeat", content=b"", headers=NODE_1)
        assert beat.status_code == 415
        assert "missing" in json.dumps(beat.json())
        ndjson = await client.post(
            "/api/v1/events", content=body + b"\n", headers=CI | {"content-type": "application/x-ndjson"}
        )
        assert ndjson.status_code == 202


async def test_heartbeats_and_resource_states_follow_the_claim(nats_url, events_stream):
    async with serving(create_collector(collector(nats_url))) as client:
        assert (
            await client.post("/api/v1/nodes/node-1/heartbeat", json={}, headers=NODE_1)
        ).status_code == 202
        assert (
            await client.post("/api/v1/nodes/node-2/heartbeat", json={}, headers=NODE_1)
        ).status_code == 403
        reader_2 = bearer({"subscribe": {"types": ["node_status"], "resources": ["node-2"]}})
        everything = bearer({"subscribe": {}})
        nodes = await client.get("/api/v1/resources/node", headers=everything)
        assert [r["id"] for r in nodes.json()["resources"]] == ["node-1"]
        assert (await client.get("/api/v1/resources/node", headers=reader_2)).json()["resources"] == []
        assert (await client.get("/api/v1/resources/node/node-1", headers=READER)).status_code == 200
        assert (await client.get("/api/v1/resources/node/node-1", headers=reader_2)).status_code == 403
        assert (await client.get("/api/v1/resources/pipeline", headers=READER)).status_code == 403


async def test_the_evaluators_views_answer_operators_only(nats_url, events_stream):
    settings = EvaluatorSettings(nats=NatsSettings(url=nats_url, reconnect_wait=0.05), auth=JWT)
    async with serving(create_evaluator(settings)) as client:
        for path in ("/api/v1/status", "/api/v1/alerts", "/api/v1/rules"):
            assert (await client.get(path)).status_code == 401
            assert (await client.get(path, headers=READER)).status_code == 403
            assert (await client.get(path, headers=ADMIN)).status_code == 200


async def test_auth_off_is_said_on_readyz(nats_url, events_stream):
    async with serving(create_collector(collector(nats_url, auth=AuthSettings(mode="none")))) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert "AUTH_MODE=none" in ready.json()["warnings"][0]
        assert (await client.get("/metrics")).status_code == 200


async def test_cors_answers_listed_origins_only(nats_url, events_stream):
    dash = "https://dash.example.com"
    cors = CorsSettings(allow_origins=[dash])
    preflight = {"access-control-request-method": "GET", "access-control-request-headers": "last-event-id"}
    async with serving(create_collector(collector(nats_url, cors=cors))) as client:
        allowed = await client.options("/api/v1/events", headers={"origin": dash} | preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == dash
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "last-event-id" in allowed.headers["access-control-allow-headers"].lower()
        other = await client.options("/api/v1/events", headers={"origin": "https://evil.example"} | preflight)
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        simple = await client.get("/healthz", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
    async with serving(create_collector(collector(nats_url))) as client:
        closed = await client.options("/api/v1/events", headers={"origin": dash} | preflight)
        assert "access-control-allow-origin" not in closed.headers


def test_cors_refuses_a_wildcard():
    with pytest.raises(ValueError, match="may not be"):
        CorsSettings(allow_origins=["*"])


def test_a_token_in_a_url_never_reaches_a_log_line(capsys):
    configure_logging("test", LoggingSettings(format="json"))
    try:
        logging.getLogger("uvicorn.error").warning("GET /api/v1/events?type=x&access_token=eyJsecret.abc.def")
        out = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    assert "eyJsecret" not in out
    assert "access_token=[redacted]" in out
