"""`make run`: a local NATS with JetStream and the three services, supervised as one.

Starts nats-server (data under `.data/`, unless `NATS_URL` names a server to use instead) with one
NATS identity per service (passwords generated into `.data/nats/` on first start; an anonymous
client is refused), provisions the `EVENTS` stream and the buckets as the admin, starts the
services, each with its own identity, waits until each answers `/readyz`, and
prints their URLs. Then the host agent (`python -m collector agent`) reports this machine to the
collector, unless `AGENT=0`; under `AUTH_MODE=jwt` with `AUTH_SECRET`, with a token signed for it
(see `sign_agent_token`). Ctrl-C or SIGTERM stops everything: services first (they drain), then NATS.
Children also get SIGTERM from the kernel if this process dies, so none is left orphaned.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import httpx

from eh_devtools.nats_server import NatsServer, die_with_parent
from eh_devtools.provisioning import provision_all
from eh_devtools.secret_files import write_secret_file
from eh_runtime.auth.token import sign_token
from eh_runtime.host_agent import DEFAULT_DOCKER_SOCKET, default_node_id, host_agent_scope
from eh_runtime.settings import StreamSettings

_READY_TIMEOUT_SECONDS: Final = 60.0
_STOP_TIMEOUT_SECONDS: Final = 20.0
AGENT_TOKEN_TTL: Final = timedelta(hours=12)
"""Short enough that a token copied out of `.data/` soon stops working; the stack renews it at
half its life, for as long as `make run` runs (the agent reads the file again when it changes)."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_variable: str
    default_port: int


SERVICES: Final = (
    ServiceSpec("sse-edge", "sse_edge", "SSE_EDGE_PORT", 8000),
    ServiceSpec("collector", "collector", "COLLECTOR_PORT", 8001),
    ServiceSpec("alert-evaluator", "alert_evaluator", "ALERT_EVALUATOR_PORT", 8002),
)


def sign_agent_token(environ: Mapping[str, str]) -> str:
    """A token for the host agent `make run` starts, signed with AUTH_SECRET as `eh token` signs.

    Its subject names the agent and its node; it may publish exactly what the agent sends: the
    node's status and metrics (about this node only), and the container types when the agent
    will find a Docker engine (about any resource: see `host_agent_scope`). Issuer and audience
    are the ones the services check (AUTH_ISSUER, AUTH_AUDIENCE).

    Raises:
        ValueError: AUTH_SECRET is not set.
    """
    secret = environ.get("AUTH_SECRET")
    if not secret:
        raise ValueError("AUTH_SECRET is not set: it signs the host agent's token")
    node_id = environ.get("AGENT_NODE_ID") or default_node_id()
    containers = os.path.exists(environ.get("AGENT_DOCKER_SOCKET") or DEFAULT_DOCKER_SOCKET)
    return sign_token(
        secret,
        f"host-agent:{node_id}",
        host_agent_scope(node_id, containers=containers),
        ttl_seconds=AGENT_TOKEN_TTL.total_seconds(),
        audience=environ.get("AUTH_AUDIENCE") or "event-handler",
        issuer=environ.get("AUTH_ISSUER") or None,
    )


class Stack:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.data_dir = Path(environ.get("DATA_DIR", ".data")).resolve()
        self.nats: NatsServer | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False
        self.agent_token_file: Path | None = None
        self._agent_token_renewal = 0.0

    def port(self, variable: str, default: int) -> int:
        return int(self.environ.get(variable, default))

    def start_nats(self) -> str:
        external = self.environ.get("NATS_URL")
        if external:
            print(f"using the NATS server at {external} (NATS_URL is set)", flush=True)
            return external
        self.nats = NatsServer(
            store_dir=self.data_dir / "nats" / "jetstream",
            port=self.port("NATS_PORT", 4222),
            monitor_port=self.port("NATS_MONITOR_PORT", 8222),
            sync_interval=self.environ.get("NATS_SYNC_INTERVAL") or None,
            log_file=self.data_dir / "nats" / "nats-server.log",
        )
        self.nats.start()
        return self.nats.url

    def nats_environment(self, spec: ServiceSpec, nats_url: str) -> dict[str, str]:
        """How `spec` reaches NATS: with its own identity on the local server (never the admin's)."""
        if self.nats is None or self.nats.credentials is None:
            return {"NATS_URL": nats_url}
        return {
            "NATS_URL": self.nats.anonymous_url,
            "NATS_USER": spec.name,
            "NATS_PASSWORD": self.nats.credentials.passwords[spec.name],
        }

    def start_services(self, nats_url: str) -> None:
        for spec in SERVICES:
            env = {
                # Development: HTTP auth off unless asked for (each service warns at start and on
                # /readyz). Set AUTH_MODE=jwt and AUTH_SECRET to run the stack with tokens.
                "AUTH_MODE": "none",
                **self.environ,
                **self.nats_environment(spec, nats_url),
                spec.port_variable: str(self.port(spec.port_variable, spec.default_port)),
                "LOG_FORMAT": self.environ.get("LOG_FORMAT", "console"),
            }
            self.processes[spec.name] = subprocess.Popen(
                [sys.executable, "-m", spec.module],
                env=env,
                # Own session: Ctrl-C reaches only this supervisor, which stops the services
                # first and NATS last, so the services can drain.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            print(f"started {spec.name} (pid {self.processes[spec.name].pid})", flush=True)

    def wait_ready(self) -> None:
        pending = {spec.name: self.url_of(spec) for spec in SERVICES}
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        with httpx.Client(timeout=1.0) as client:
            while pending:
                if self.stop_requested:
                    return
                for name, url in list(pending.items()):
                    if self.processes[name].poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {self.processes[name].returncode} while starting"
                        )
                    try:
                        if client.get(f"{url}/readyz").status_code == 200:
                            del pending[name]
                    except httpx.TransportError:
                        pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {_READY_TIMEOUT_SECONDS}s: {', '.join(pending)}")
                time.sleep(0.1)

    def start_agent(self) -> None:
        """This machine as a node of the farm: heartbeats and metrics, containers if Docker runs."""
        if self.environ.get("AGENT", "1").strip().lower() in ("0", "false", "no", "off", ""):
            return
        collector = next(spec for spec in SERVICES if spec.name == "collector")
        env = {
            **self.environ,
            **self.agent_credentials(),
            "AGENT_COLLECTOR_URL": self.url_of(collector),
            "LOG_FORMAT": "console",
        }
        self.processes["agent"] = subprocess.Popen(
            [sys.executable, "-m", "collector", "agent"],
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        print(
            f"started agent (pid {self.processes['agent'].pid}): this machine reports to the collector",
            flush=True,
        )

    def agent_credentials(self) -> dict[str, str]:
        """The agent's token file under `AUTH_MODE=jwt`, signed here unless one was given."""
        if self.environ.get("AUTH_MODE") != "jwt" or self.environ.get("AGENT_TOKEN"):
            return {}
        if self.environ.get("AGENT_TOKEN_FILE"):
            return {}
        if not self.environ.get("AUTH_SECRET"):
            print(
                "AUTH_MODE=jwt without AUTH_SECRET: make run cannot sign the host agent's token; "
                "give it one with AGENT_TOKEN_FILE (or AGENT=0)",
                flush=True,
            )
            return {}
        self.agent_token_file = self.data_dir / "agent" / "token"
        self.renew_agent_token()
        return {"AGENT_TOKEN_FILE": str(self.agent_token_file)}

    def renew_agent_token(self) -> None:
        """Write a fresh token, whole (a new file renamed over the old one), readable by us only."""
        assert self.agent_token_file is not None
        write_secret_file(self.agent_token_file, sign_agent_token(self.environ) + "\n")
        self._agent_token_renewal = time.monotonic() + AGENT_TOKEN_TTL.total_seconds() / 2

    def url_of(self, spec: ServiceSpec) -> str:
        return f"http://localhost:{self.port(spec.port_variable, spec.default_port)}"

    def print_urls(self, nats_url: str) -> None:
        edge, collector, evaluator = (self.url_of(s) for s in SERVICES)
        lines = [
            "",
            "Event Handler is up:",
            f"  sse-edge         {edge}/api/v1/events   (docs {edge}/docs)",
            f"  collector        {collector}/api/v1/events   (docs {collector}/docs)",
            f"  alert-evaluator  {evaluator}/readyz",
            f"  NATS             {self.nats.anonymous_url if self.nats else nats_url}",
        ]
        if self.nats is not None and self.nats.credentials is not None:
            identities = self.nats.store_dir.parent / f"{self.nats.store_dir.name}.identities.json"
            lines.append(
                f"  NATS identities  {identities} (one per service, a reader, a producer, the admin)"
            )
        if self.nats is not None and self.nats.monitor_url:
            lines.append(f"  NATS monitoring  {self.nats.monitor_url}")
        if self.agent_token_file is not None:
            hours = AGENT_TOKEN_TTL.total_seconds() / 3600
            lines.append(
                f"  agent token      {self.agent_token_file} (signed with AUTH_SECRET for {hours:g} h, "
                "renewed while this runs)"
            )
        if self.environ.get("AUTH_MODE", "none") == "none":
            lines += [
                "",
                "  WARNING: HTTP auth is OFF (AUTH_MODE=none): anyone who reaches these ports may read",
                "  and publish everything. Development only.",
            ]
        lines += ["Ctrl-C stops everything.", ""]
        print("\n".join(lines), flush=True)

    def supervise(self) -> int:
        """Block until a stop is requested (0) or a child exits on its own (1)."""
        while not self.stop_requested:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the stack", flush=True)
                    return 1
            if self.nats is not None and not self.nats.running:
                print("nats-server exited; stopping the stack", flush=True)
                return 1
            if self.agent_token_file is not None and time.monotonic() > self._agent_token_renewal:
                try:
                    self.renew_agent_token()
                except OSError as error:
                    print(f"cannot renew the agent's token ({error}); trying again in a minute", flush=True)
                    self._agent_token_renewal = time.monotonic() + 60
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it", flush=True)
                process.kill()
                process.wait()
        if self.nats is not None:
            self.nats.stop()
        print("stopped", flush=True)


async def provision(nats_url: str, settings: StreamSettings) -> None:
    """As the admin (the services' own identities may not create streams or buckets)."""
    stored = await provision_all(nats_url, settings)
    print(f"stream EVENTS: {stored} events stored; buckets provisioned", flush=True)


def main() -> int:
    stack = Stack(dict(os.environ))

    def request_stop(_signum: int, _frame: object) -> None:
        stack.stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    status = 1
    try:
        nats_url = stack.start_nats()
        asyncio.run(provision(nats_url, StreamSettings()))
        stack.start_services(nats_url)
        stack.wait_ready()
        if not stack.stop_requested:
            stack.start_agent()
            stack.print_urls(nats_url)
        status = stack.supervise()
    except (RuntimeError, TimeoutError, OSError) as error:
        print(f"make run failed: {error}", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
