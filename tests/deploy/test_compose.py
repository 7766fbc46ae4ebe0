"""compose.yaml, as Docker Compose itself reads it (`docker-compose config`, no engine needed),
checked against what the services actually run, serve and read."""

import re

import pytest

from eh_devtools.manifests import compose_config, image_name, image_tag
from eh_runtime.settings import parse_duration

HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)")


@pytest.fixture(scope="module")
def compose(repo_root):
    return compose_config(repo_root / "compose.yaml", profiles=["agent"])


def ours(compose):
    """The services built from this repository's Dockerfile: name → (config, target)."""
    return {name: (s, s["build"]["target"]) for name, s in compose["services"].items() if "build" in s}


# One-shot jobs: they run `python -m <service> provision` (the service's own settings) and exit.
PROVISIONING = {"collector-provision": "collector", "alert-evaluator-provision": "alert-evaluator"}


def known_environment(service):
    """A service's variables, less the files only its container has (its mounted secrets)."""
    secrets = {secret["target"] for secret in service.get("secrets", [])}
    return {k: v for k, v in service.get("environment", {}).items() if v not in secrets}


def read_arguments(arguments):
    """The sub-command whose settings a command reads: `provision` reads the service's own."""
    return [] if arguments == ["provision"] else arguments


def command_of(service, target, dockerfile):
    command = service.get("command") or dockerfile.stage(target).cmd
    assert command[:2] == ["python", "-m"], command
    return command[2], command[3:]


def test_the_whole_suite_is_there_built_from_the_dockerfile(compose, services, dockerfile):
    assert set(compose["services"]) == {"nats", "agent", *PROVISIONING, *services}
    for name, (service, target) in ours(compose).items():
        assert target in services, name
        assert image_name(service["image"]) == target
        assert service["build"]["dockerfile"] == "Dockerfile"
        module, arguments = command_of(service, target, dockerfile)
        assert module == services[target].module
        assert (name == "agent") == (arguments == ["agent"]), name
        assert (name in PROVISIONING) == (arguments == ["provision"]), name
        assert PROVISIONING.get(name, target) == target, name
    assert compose["services"]["agent"]["profiles"] == ["agent"]


def test_every_variable_set_is_one_the_service_reads(compose, services, dockerfile):
    for name, (service, target) in ours(compose).items():
        _, arguments = command_of(service, target, dockerfile)
        unread = set(service.get("environment", {})) - services[target].variables(read_arguments(arguments))
        assert unread == set(), f"{name} sets variables nothing reads: {sorted(unread)}"


def test_services_reach_nats_by_its_compose_name(compose, services):
    for name in services:
        url = compose["services"][name]["environment"]["NATS_URL"]
        assert url == "nats://nats:4222", name
    assert {p["target"] for p in compose["services"]["nats"]["ports"]} >= {4222}


def test_ports_and_health_checks_match_what_each_service_serves(compose, services):
    for name, facts in services.items():
        service = compose["services"][name]
        port = facts.settings(known_environment(service)).port
        assert [(p["target"], p["published"]) for p in service["ports"]] == [(port, str(port))]
        (url,) = HEALTH_URL.findall(" ".join(service["healthcheck"]["test"]))
        assert url == (str(port), "/readyz"), name
        assert facts.status_of("/readyz") == 503, "readyz must exist and fail without NATS"


def test_every_service_but_the_agent_and_the_one_shot_jobs_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name in PROVISIONING:
            assert service["restart"] == "no", f"{name} runs once, it is not restarted"
            assert "healthcheck" not in service, name
        elif name != "agent":
            assert service["healthcheck"]["test"][0] == "CMD", name
    nats_check = " ".join(compose["services"]["nats"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8222/healthz?js-enabled-only=true" in nats_check
    assert "--http_port=8222" in compose["services"]["nats"]["command"]


def test_everything_starts_once_what_it_needs_is_healthy(compose):
    services = compose["services"]

    def needs(name):
        found = set()
        for dependency, condition in services[name].get("depends_on", {}).items():
            if dependency in PROVISIONING:
                assert condition["condition"] == "service_completed_successfully", (name, dependency)
            else:
                assert condition["condition"] == "service_healthy", (name, dependency)
                assert "healthcheck" in services[dependency], dependency
            found |= {dependency, *needs(dependency)}
        return found

    for name in services:
        if name != "nats":
            assert "nats" in needs(name), name
    # What each service uses on NATS exists before it starts: created as the admin, which the
    # services' own identities cannot do.
    for job, service in PROVISIONING.items():
        assert job in needs(service), service
    assert {"collector", "collector-provision"} <= needs("sse-edge")
    assert "collector" in needs("alert-evaluator")


def test_nats_keeps_its_store_on_a_named_volume(compose):
    nats = compose["services"]["nats"]
    assert "--jetstream" in nats["command"]
    (store,) = [c.split("=", 1)[1] for c in nats["command"] if c.startswith("--store_dir=")]
    (volume,) = [v for v in nats["volumes"] if v["target"] == store]
    assert volume["type"] == "volume"
    assert volume["source"] in compose["volumes"]


def test_nats_is_the_server_version_the_tests_run_against(compose, nats_version):
    image = compose["services"]["nats"]["image"]
    assert image_name(image) == "nats"
    assert image_tag(image) == f"{nats_version}-alpine"


def test_services_are_hardened_and_stop_gracefully(compose, services):
    for name, (service, target) in ours(compose).items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        if name in services:
            # No preStop in compose: HTTP drain then NATS drain, each up to the shutdown timeout.
            timeout = services[target].settings(known_environment(service)).shutdown_timeout
            assert parse_duration(service["stop_grace_period"]) >= 2 * timeout, name
