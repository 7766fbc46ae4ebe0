"""compose.yaml's NATS admits only the per-service identities: each service connects as itself with
a Compose secret of its own, and the server's configuration is the tested permission table. The
configuration is run by the real nats-server, laid out as the containers see it, with secrets made
by the same step a user runs (`make compose-secrets`)."""

import shutil
from pathlib import Path, PurePosixPath

import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.manifests import compose_config
from eh_devtools.nats_identities import ADMIN, authorization_block
from eh_devtools.nats_secrets import COMPOSE_DIRECTORY, SERVER_FILE, identity_names, write_compose_secrets
from eh_devtools.nats_server import NatsServer
from eh_devtools.provisioning import provision_all
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings, StreamSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

PROVISIONING = {"collector-provision", "alert-evaluator-provision"}
APPS = {
    "collector": (create_collector, CollectorSettings),
    "sse-edge": (create_edge, EdgeSettings),
    "alert-evaluator": (create_evaluator, EvaluatorSettings),
}


@pytest.fixture(scope="module")
def compose(repo_root):
    return compose_config(repo_root / "compose.yaml", profiles=["agent"])


def identity_of(name):
    return ADMIN if name in PROVISIONING else name


def nats_clients(compose, services):
    """The Compose services that connect to NATS: the three services and the provisioning jobs."""
    return {name: compose["services"][name] for name in [*services, *PROVISIONING]}


def test_each_service_connects_as_its_own_identity_with_its_own_secret(compose, services, repo_root):
    secrets = compose["secrets"]
    owners: dict[str, set[str]] = {}
    for name, service in nats_clients(compose, services).items():
        environment = service["environment"]
        identity = identity_of(name)
        assert environment["NATS_USER"] == identity, name
        assert "NATS_PASSWORD" not in environment, f"{name}: a password in the environment"
        assert "@" not in environment["NATS_URL"], f"{name}: credentials in the URL"
        # Exactly one secret, its own identity's password, where NATS_PASSWORD_FILE reads it.
        (secret,) = service["secrets"]
        assert secret["target"] == environment["NATS_PASSWORD_FILE"] == f"/run/secrets/{secret['source']}"
        assert Path(secrets[secret["source"]]["file"]) == repo_root / COMPOSE_DIRECTORY / identity, name
        owners.setdefault(secret["source"], set()).add(name)
    # No two services share a password; only the one-shot provisioning jobs hold the admin's.
    shared = {secret: names for secret, names in owners.items() if len(names) > 1}
    assert shared == {"nats-admin": PROVISIONING}
    # Nothing else gets a NATS secret: the agent talks HTTP to the collector.
    assert "secrets" not in compose["services"]["agent"]


def test_the_nats_server_runs_the_permission_table_with_every_identity(compose, repo_root):
    nats = compose["services"]["nats"]
    (config_flag,) = [c for c in nats["command"] if c.startswith("--config=")]
    config_path = PurePosixPath(config_flag.split("=", 1)[1])
    (mount,) = [v for v in nats["volumes"] if v["target"] == str(config_path)]
    assert mount["type"] == "bind"
    assert mount["read_only"] is True
    assert Path(mount["source"]) == repo_root / "compose" / "nats.conf"
    config = Path(mount["source"]).read_text(encoding="utf-8")
    assert authorization_block() in config, "compose/nats.conf is not the tested table: make manifests"
    # The passwords: the server's secret, mounted beside the configuration that includes it.
    assert f'include "{SERVER_FILE}"' in config
    (secret,) = nats["secrets"]
    assert secret["target"] == str(config_path.parent / SERVER_FILE)
    assert Path(compose["secrets"][secret["source"]]["file"]) == repo_root / COMPOSE_DIRECTORY / SERVER_FILE


def test_make_compose_secrets_keeps_passwords_and_keeps_them_private(tmp_path):
    directory = tmp_path / "secrets"
    first = write_compose_secrets(directory)
    assert sorted(first) == sorted(identity_names())
    assert len(set(first.values())) == len(first), "one password per identity"
    assert all(len(password) >= 40 for password in first.values())
    assert write_compose_secrets(directory) == first, "running it again changes nothing"
    assert directory.stat().st_mode & 0o777 == 0o700
    for name, password in first.items():
        assert (directory / name).read_text() == f"{password}\n"


@pytest.mark.nats
@pytest.mark.own_server
async def test_the_real_server_admits_each_service_with_its_compose_secret_only(compose, repo_root, tmp_path):
    """compose/nats.conf and compose's flags, run by nats-server as the nats container would; each
    service started with the NATS settings its container gets, secrets made by `make compose-secrets`."""
    secrets_dir = tmp_path / "secrets"
    passwords = write_compose_secrets(secrets_dir)

    def on_host(container_path: str) -> Path:
        """Where a file the containers see is, in this test: a secret's file, made here."""
        for service in compose["services"].values():
            for secret in service.get("secrets", []):
                if secret["target"] == container_path:
                    source = Path(compose["secrets"][secret["source"]]["file"])
                    return secrets_dir / source.relative_to(repo_root / COMPOSE_DIRECTORY)
        raise AssertionError(f"no secret mounted at {container_path}")

    nats = compose["services"]["nats"]
    etc = tmp_path / "etc-nats"
    etc.mkdir()
    shutil.copy(repo_root / "compose" / "nats.conf", etc / "nats.conf")
    shutil.copy(on_host(f"/etc/nats/{SERVER_FILE}"), etc / SERVER_FILE)
    # compose's flags, but the store and the monitoring port of this test.
    arguments = [
        a
        for a in nats["command"]
        if not a.startswith(("--config=", "--store_dir=", "--http_port=", "--server_name="))
    ]
    assert arguments == ["--jetstream"]
    server = NatsServer(
        store_dir=tmp_path / "js",
        identities=False,
        config_file=etc / "nats.conf",
        arguments=(*arguments, f"--store_dir={tmp_path / 'js'}"),
    )
    server.start()
    try:
        url = server.anonymous_url
        anonymous = Client()
        with pytest.raises(NatsError, match=r"(?i)authorization"):
            await anonymous.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
        await anonymous.close()
        admin = url.replace("://", f"://{ADMIN}:{passwords[ADMIN]}@")
        await provision_all(admin, StreamSettings())

        def settings_of(name: str) -> NatsSettings:
            environment = compose["services"][name]["environment"]
            return NatsSettings(
                url=url,
                user=environment["NATS_USER"],
                password_file=str(on_host(environment["NATS_PASSWORD_FILE"])),
                reconnect_wait=0.05,
                request_timeout=2,
            )

        apps = {name: create(settings(nats=settings_of(name))) for name, (create, settings) in APPS.items()}
        async with (
            serving(apps["collector"]) as collector,
            serving(apps["sse-edge"]) as edge,
            serving(apps["alert-evaluator"]) as evaluator,
        ):
            for client in (collector, edge, evaluator):
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
            stored = await collector.post(
                "/api/v1/events",
                json={"event": "system_log", "resource_id": "compose", "data": {"level": "info",
                      "component": "test", "message": "stored as the collector"}},
            )  # fmt: skip
            assert stored.status_code == 202, stored.text
            history = await edge.get("/api/v1/events/history", params={"resource_id": "compose"})
            assert [e["resource_id"] for e in history.json()["events"]] == ["compose"]
        # One identity's password is not another's.
        wrong = Client()
        with pytest.raises(NatsError, match=r"(?i)authorization"):
            await wrong.connect(
                url.replace("://", f"://sse-edge:{passwords['collector']}@"),
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
        await wrong.close()
    finally:
        server.stop()
