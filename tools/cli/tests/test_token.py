"""`eh token`: the token it prints carries the claim asked for, and real services with AUTH_MODE=jwt
accept it and enforce exactly its grants."""

import asyncio
import os
import sys

import jwt
import pytest
from click.testing import CliRunner

from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_cli.main import cli
from eh_devtools.pytest_plugin import serving
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

SECRET = "eh-token-test-secret-0123456789abcdef"


def sign(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["token", *args], env={"AUTH_SECRET": SECRET} | (env or {}))
    return result.exit_code, result.output


def claims_of(token: str, audience: str = "event-handler") -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"], audience=audience)


def test_the_token_carries_the_claim_asked_for():
    code, out = sign(
        "--sub", "dashboard-ops",
        "--subscribe", "node_status,node_metrics", "--subscribe", "pipeline_status",
        "--resources", "node-*", "--resources", "pipeline-1",
        "--ttl", "8h", "--issuer", "https://auth.example.com/",
    )  # fmt: skip
    assert code == 0, out
    claims = claims_of(out.strip())
    assert claims["sub"] == "dashboard-ops"
    assert claims["iss"] == "https://auth.example.com/"
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert claims["eh"] == {
        "subscribe": {
            "types": ["node_status", "node_metrics", "pipeline_status"],
            "resources": ["node-*", "pipeline-1"],
        }
    }


def test_a_producer_and_an_operator_token_from_a_secret_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\n")
    code, out = sign(
        "--sub", "ci", "--publish", "pipeline_status", "--publish-resources", "ci-*", "--admin",
        "--audience", "farm", "--secret-file", str(secret_file),
        env={"AUTH_SECRET": ""},
    )  # fmt: skip
    assert code == 0, out
    claims = claims_of(out.strip(), audience="farm")
    assert claims["eh"] == {"publish": {"types": ["pipeline_status"], "resources": ["ci-*"]}, "admin": True}
    assert "iss" not in claims


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--admin"], {"AUTH_SECRET": ""}, "no secret: set AUTH_SECRET or give --secret-file"),
        (["--admin"], {"AUTH_SECRET": "short"}, "shorter than 32 bytes"),
        ([], {}, "nothing granted"),
        (["--subscribe", "node_stat"], {}, "'node_stat' is not a valid EventType"),
        (["--publish", "*", "--publish-resources", "node 1"], {}, "'node 1' is not a resource id pattern"),
        (["--admin", "--ttl", "soon"], {}, "'soon' is not a duration"),
        (["--admin", "--ttl", "0s"], {}, "must be longer than zero"),
    ],
)
def test_what_the_services_would_refuse_is_never_signed(arguments, environment, message):
    code, out = sign("--sub", "someone", *arguments, env=environment)
    assert code == 2
    assert message in out
    assert "eyJ" not in out


async def eh_token(*arguments: str) -> str:
    """`eh token` as a user runs it: a separate process, the secret in its environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eh_cli", "token", *arguments,
        env=os.environ | {"AUTH_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.nats
async def test_services_with_jwt_auth_accept_its_tokens_and_enforce_their_grants(nats_url, events_stream):
    auth = AuthSettings(mode="jwt", secret=SECRET)
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    ci = bearer(await eh_token("--sub", "ci", "--publish", "pipeline_status", "--publish-resources", "ci-*"))
    reader = bearer(await eh_token("--sub", "dash", "--subscribe", "pipeline_status", "--resources", "ci-1"))
    operator = bearer(await eh_token("--sub", "ops", "--admin"))
    event = {"event": "pipeline_status", "resource_id": "ci-1", "data": {"new_status": "running"}}
    async with (
        serving(create_collector(CollectorSettings(nats=nats, auth=auth))) as collector,
        serving(create_edge(EdgeSettings(nats=nats, auth=auth))) as edge,
    ):
        # The producer's token: its type and resources, nothing else.
        assert (await collector.post("/api/v1/events", json=event, headers=ci)).status_code == 202
        outside = event | {"resource_id": "node-1"}
        assert (await collector.post("/api/v1/events", json=outside, headers=ci)).status_code == 403
        log = {"level": "info", "component": "ci", "message": "started"}
        other_type = event | {"event": "system_log", "data": log}
        assert (await collector.post("/api/v1/events", json=other_type, headers=ci)).status_code == 403
        assert (await collector.post("/api/v1/events", json=event, headers=reader)).status_code == 403
        # The subscriber's token: its stream opens, a wider one is refused before it opens.
        wider = {"type": "pipeline_status", "resource_id": "ci-2"}
        refused = await edge.get("/api/v1/events", params=wider, headers=reader)
        assert refused.status_code == 403
        assert "resource_id" in refused.text
        params = {"type": "pipeline_status", "resource_id": "ci-1", "limit": 10}
        async with edge.stream("GET", "/api/v1/events", params=params, headers=reader) as response:
            assert response.status_code == 200
            messages = read_sse(response)
            assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
            replayed = await asyncio.wait_for(next_event(messages), 5)
            assert replayed.json()["resource_id"] == "ci-1"
        # The operator's token: /metrics, which the others may not read; no token at all: 401.
        assert (await edge.get("/metrics", headers=operator)).status_code == 200
        assert (await edge.get("/metrics", headers=reader)).status_code == 403
        assert (await edge.get("/metrics")).status_code == 401
        # A token signed with another secret is no token.
        forged = jwt.encode(claims_of(ci["Authorization"].split()[1]), "x" * 40, algorithm="HS256")
        assert (await collector.post("/api/v1/events", json=event, headers=bearer(forged))).status_code == 401
