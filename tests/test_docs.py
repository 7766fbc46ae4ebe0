"""The documentation stays true: the site builds strictly, and every marked example runs as written.

The examples (see `eh_devtools.doc_examples` for the markers) run against the stack `make run`
starts — `python -m eh_devtools.stack`: nats-server, the three services and the host agent — on
free ports; the ports the docs show (8000, 8001, 8002, 4222, 8222) are replaced by those.
Each page runs on its own, in order, on one stack shared by all pages (README.md first).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alert_evaluator.rules_file import parse_rules
from eh_contracts.envelope import parse_events
from eh_devtools import doc_examples, docs_gen
from eh_devtools.doc_examples import Example

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
PAGES_WITH_EXAMPLES = [page for page in PAGES if doc_examples.examples(page)]
DOC_PORTS = {"edge": 8000, "collector": 8001, "evaluator": 8002, "nats": 4222, "monitor": 8222}
_LOCAL_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):(\d{2,5})\b")
# Deadlines for conditions, generous for a loaded machine (a background command's first line, the
# host agent's first heartbeat); an idle one meets them in about a second.
BACKGROUND_TIMEOUT_SECONDS = 90.0
AGENT_TIMEOUT_SECONDS = 180.0
RUN_TIMEOUT_SECONDS = 60.0


def test_the_site_builds_strictly(tmp_path):
    """Broken links and anchors, pages missing from nav, a setting without a description: all fail."""
    result = subprocess.run(
        [Path(sys.executable).with_name("mkdocs"), "build", "--strict", "--site-dir", tmp_path / "site"],
        cwd=ROOT,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},  # the theme's banner about its successor
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    assert (site / "reference" / "openapi" / "collector.json").is_file()
    assert (site / "reference" / "asyncapi.json").is_file()
    configuration = (site / "reference" / "configuration.html").read_text()
    assert "SSE_EDGE_CLIENT_BUFFER_BYTES" in configuration


def test_the_readme_is_the_first_hour():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10 * 1024
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_leaves_the_repository_and_no_tracker_reference(page: Path):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{target} points outside the repository"
    assert re.search(r"\b[Ii]ssues? \d+|#\d{1,4}\b", text) is None, "reference to the issue tracker"


def test_every_control_event_the_edge_sends_is_documented():
    streaming = (DOCS / "guide" / "streaming.md").read_text(encoding="utf-8")
    source = "".join(p.read_text() for p in (ROOT / "services/sse-edge/src/sse_edge").rglob("*.py"))
    for name in set(re.findall(r'"(stream\.[a-z_]+)"', source)):
        assert f"`{name}`" in streaming, name


def test_every_marked_example_is_well_formed():
    """Markers parse, and an output always follows something to compare it with."""
    for page in PAGES:
        started: set[str] = set()
        for example in doc_examples.examples(page):
            if example.action == "run":
                started.add(example.mode or "run")
            elif example.mode != "make-run":
                assert (example.mode or "run") in started, f"{example}: an output of nothing run before it"


# --- the examples, run -------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class Stack:
    ports: dict[str, int]
    log: Path
    data_dir: Path

    def localize(self, text: str) -> str:
        """The docs' `localhost:8000` as this stack's address."""
        by_doc_port = {str(DOC_PORTS[name]): str(port) for name, port in self.ports.items()}
        return _LOCAL_ADDRESS.sub(lambda m: f"{m[1]}:{by_doc_port.get(m[2], m[2])}", text)

    def delocalize(self, text: str) -> str:
        """This stack's addresses written as `make run`'s, as the docs show them."""
        by_port = {str(port): str(DOC_PORTS[name]) for name, port in self.ports.items()}
        return _LOCAL_ADDRESS.sub(lambda m: f"{m[1]}:{by_port.get(m[2], m[2])}", text)


def _clean_environment() -> dict[str, str]:
    """This shell's environment without the suite's own variables, as a reader's shell would be."""
    prefixes = (
        "NATS_",
        "EVENTS_",
        "SSE_EDGE_",
        "COLLECTOR_",
        "ALERT_EVALUATOR_",
        "AGENT",
        "AUTH_",  # the suite sets AUTH_MODE=none; a reader's shell has no AUTH_MODE
        "CORS_",
        "HTTP_",
        "LOG_",
        "DATA_DIR",
    )
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request) -> Iterator[Stack]:
    """What `make run` starts (with the host agent), on free ports."""
    if request.config.getoption("--nats-url"):
        pytest.skip("starts its own nats-server")
    # A free port can be taken by another process before the stack binds it (the machine is
    # shared): then the stack exits at once, and a second set of ports is tried.
    for attempt in range(3):
        directory = tmp_path_factory.mktemp("docs-stack")
        ports = dict(zip(DOC_PORTS, free_ports(len(DOC_PORTS)), strict=True))
        log = directory / "stack.log"
        process = _start_stack(directory, ports, log)
        try:
            if _wait_until_up(process, log) or attempt == 2:
                break
        except BaseException:
            _stop(process)
            raise
        _stop(process)
    try:
        assert process.poll() is None, log.read_text()
        _wait_for_the_agent(process, log, ports["collector"])
        yield Stack(ports, log, directory / "data")
    finally:
        _stop(process)


def _start_stack(directory: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    env = _clean_environment() | {
        "DATA_DIR": str(directory / "data"),
        "SSE_EDGE_PORT": str(ports["edge"]),
        "COLLECTOR_PORT": str(ports["collector"]),
        "ALERT_EVALUATOR_PORT": str(ports["evaluator"]),
        "NATS_PORT": str(ports["nats"]),
        "NATS_MONITOR_PORT": str(ports["monitor"]),
        # The pages show this machine online. On a loaded test machine the agent's heartbeats can
        # fall 30 s behind (the default timeout) and the node flips offline between two examples;
        # on a reader's machine they come every 5 s. No page runs the timeout itself.
        "COLLECTOR_HEARTBEAT_TIMEOUT": "10m",
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "eh_devtools.stack"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def _wait_until_up(process: subprocess.Popen[bytes], log: Path) -> bool:
    deadline = time.monotonic() + 90
    while "Event Handler is up" not in log.read_text():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_the_agent(process: subprocess.Popen[bytes], log: Path, collector_port: int) -> None:
    """As a reader finds it: the host agent has reported this machine by the time they look.

    The agent starts after the services are ready; on a loaded machine its imports and first
    heartbeat can take longer than the 30 s this once allowed; on a reader's idle one, a second.
    Waits for what the page shows: a node brought online by a heartbeat.
    """
    deadline = time.monotonic() + AGENT_TIMEOUT_SECONDS
    url = f"http://127.0.0.1:{collector_port}/api/v1/resources/node"
    with httpx.Client(timeout=30) as client:
        while not any(
            node["state"] == "online" and node["event"]["data"].get("reason") == "heartbeat_received"
            for node in client.get(url).json()["resources"]
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the host agent reported nothing\n{log.read_text()}"
            time.sleep(0.2)


class Background:
    """A block left running, like a command in another terminal; its output goes to a file."""

    def __init__(self, example: Example, command: list[str], directory: Path, env: dict[str, str]) -> None:
        self.example = example
        self.output_path = directory / f"background-{example.line}.out"
        self.errors_path = directory / f"background-{example.line}.err"
        # Only stdout counts: on a terminal curl shows no progress meter, here stderr would get one.
        with self.output_path.open("wb") as output, self.errors_path.open("wb") as errors:
            self.process = subprocess.Popen(command, stdout=output, stderr=errors, env=env, cwd=ROOT)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.errors_path.read_text(errors="replace")

    def wait_until_started(self) -> None:
        """Until its first line (for an event stream: `stream.ready`, sent once the edge has
        registered the client), as a reader sees it before typing the next command."""
        deadline = time.monotonic() + BACKGROUND_TIMEOUT_SECONDS
        while not self._started(self.output()):
            assert self.process.poll() is None, f"{self.example} exited: {self.output()}{self.errors()}"
            assert time.monotonic() < deadline, f"{self.example} printed nothing"
            time.sleep(0.05)

    @staticmethod
    def _started(output: str) -> bool:
        if output.startswith("retry:"):
            return re.search(r"^event: stream\.ready\ndata: .*\n", output, re.MULTILINE) is not None
        return "\n" in output

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def command_of(example: Example, directory: Path) -> list[str]:
    if example.language in ("sh", "bash", "shell", "console"):
        return ["bash", "-eo", "pipefail", "-c", example.code]
    if example.language == "python":
        script = directory / f"example-{example.line}.py"
        script.write_text(example.code)
        return [sys.executable, str(script)]
    raise AssertionError(f"{example}: cannot run a {example.language!r} block")


def _mismatch(example: Example, actual: str) -> str:
    return f"{example}: the output differs from the docs\n--- docs\n{example.code}\n--- actual\n{actual}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_run_as_written(page: Path, stack: Stack, tmp_path: Path):
    env = _clean_environment() | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # Where this stack keeps its NATS identities (the examples that speak NATS read them).
        "DATA_DIR": str(stack.data_dir),
    }
    last_output: str | None = None
    backgrounds: list[Background] = []
    try:
        for example in doc_examples.examples(page):
            localized = Example(**(vars(example) | {"code": stack.localize(example.code)}))
            if example.action == "run" and example.mode == "background":
                backgrounds.append(Background(example, command_of(localized, tmp_path), tmp_path, env))
                backgrounds[-1].wait_until_started()
            elif example.action == "run":
                result = subprocess.run(
                    command_of(localized, tmp_path),
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=ROOT,
                    timeout=RUN_TIMEOUT_SECONDS,
                )
                assert result.returncode == 0, f"{example} failed:\n{result.stdout}\n{result.stderr}"
                last_output = stack.delocalize(result.stdout)
            elif example.mode == "background":
                _expect_background(example, backgrounds[-1], stack)
            elif example.mode == "make-run":
                assert doc_examples.contains(example.code, stack.delocalize(stack.log.read_text())), (
                    _mismatch(example, stack.log.read_text())
                )
            else:
                assert last_output is not None
                assert doc_examples.matches(example.code, last_output), _mismatch(example, last_output)
    finally:
        for background in backgrounds:
            background.stop()


def _expect_background(example: Example, background: Background, stack: Stack) -> None:
    deadline = time.monotonic() + BACKGROUND_TIMEOUT_SECONDS
    while not doc_examples.begins_with(example.code, stack.delocalize(background.output())):
        if time.monotonic() > deadline or background.process.poll() is not None:
            pytest.fail(_mismatch(example, background.output()) + f"\n--- stderr\n{background.errors()}")
        time.sleep(0.1)
    background.stop()


@pytest.mark.slow
def test_the_metrics_reference_names_what_the_services_expose(stack: Stack):
    """The reference is generated from the metric objects; each name is one Prometheus scrapes."""
    exposed: dict[str, set[str]] = {}
    with httpx.Client(timeout=10) as client:
        for service, port_name in (
            ("sse-edge", "edge"),
            ("collector", "collector"),
            ("alert-evaluator", "evaluator"),
        ):
            text = client.get(f"http://127.0.0.1:{stack.ports[port_name]}/metrics").text
            exposed[service] = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    everywhere = set.union(*exposed.values())
    for service, module in (
        ("sse-edge", "sse_edge"),
        ("collector", "collector"),
        ("alert-evaluator", "alert_evaluator"),
    ):
        for family in docs_gen.metric_families(module):
            assert docs_gen.exposed_name(family) in exposed[service], (service, docs_gen.exposed_name(family))
    for family in docs_gen.metric_families("eh_runtime"):
        assert docs_gen.exposed_name(family) in everywhere, docs_gen.exposed_name(family)
    reference = docs_gen.metrics_markdown()
    assert "eventhandler_http_requests_total" in reference
    # No `<name>_created` series (prometheus_client's creation timestamps); a counter may still
    # count things created (`..._consumers_created_total`).
    assert not re.search(r"\w_created\b", reference)


def test_the_deployment_commands_name_what_exists():
    """Docker and kubectl commands cannot run here (no engine, no cluster): what they name must exist."""
    stages = set(
        re.findall(r"^FROM \S+ AS (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE | re.IGNORECASE)
    )
    compose = (ROOT / "compose.yaml").read_text()
    for page in (DOCS / "operations").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        targets = [t for t in re.findall(r"--target (\S+)", text) if not t.startswith("$")]
        for loop in re.findall(
            r"for s in ([a-z -]+); do", text
        ):  # `for s in ...; do docker build --target $s`
            targets += loop.split()
        for target in targets:
            assert target in stages, f"{page.name}: no Dockerfile stage {target}"
        for overlay in re.findall(r"(?:apply|delete) -k ([\w/.-]+)", text) + re.findall(
            r"kubectl kustomize ([\w/.-]+)", text
        ):
            assert (ROOT / overlay / "kustomization.yaml").is_file(), f"{page.name}: no overlay {overlay}"
        for profile in re.findall(r"--profile (\S+)", text):
            assert f"- {profile}" in compose or f"[{profile}]" in compose, (
                f"{page.name}: no profile {profile}"
            )


def test_the_rules_files_the_alerts_guide_shows_are_valid():
    guide = (DOCS / "guide" / "alerts.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```$", guide, re.MULTILINE | re.DOTALL)
    assert blocks
    for block in blocks:
        assert parse_rules(block.encode(), "alerts.md").rules


def test_the_events_the_docs_show_as_json_are_valid_events():
    """A JSON block that is a whole event (not a sketch with `…`) passes the collector's validation."""
    shown = 0
    for page in PAGES:
        for block in re.findall(r"^```json\n(.*?)^```$", page.read_text(encoding="utf-8"), re.M | re.S):
            if "…" in block or "event" not in json.loads(block):
                continue  # a sketch, or another answer (an error body)
            parse_events(block.encode())
            shown += 1
    assert shown >= 1


def test_every_metric_the_docs_name_is_one_a_service_exposes():
    """Names as Prometheus sees them: a counter with `_total`, a histogram's `_bucket`, `_sum`, `_count`."""
    exposed: set[str] = set()
    for package in ("eh_runtime", "sse_edge", "collector", "alert_evaluator"):
        for family in docs_gen.metric_families(package):
            name = docs_gen.exposed_name(family)
            exposed |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    for page in PAGES:
        for name in set(re.findall(r"\beventhandler_[a-z_]+", page.read_text(encoding="utf-8"))):
            assert name in exposed, f"{page.relative_to(ROOT)}: {name} is not a metric any service exposes"


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.MULTILINE))
    for page in PAGES:
        for target in re.findall(r"`make ([a-z][a-z0-9-]*)", page.read_text(encoding="utf-8")):
            assert target in targets, f"{page.relative_to(ROOT)}: make {target}"
