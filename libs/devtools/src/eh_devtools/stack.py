"""`make run`: a local NATS with JetStream and the three services, supervised as one.

Starts nats-server (data under `.data/`, unless `NATS_URL` names a server to use instead) with one
NATS identity per service (passwords generated into `.data/nats/` on first start; an anonymous
client is refused), provisions the `EVENTS` stream and the buckets as the admin, starts the
services, each with its own identity, waits until each answers `/readyz`, and
prints their URLs. Then the host agent (`python -m collector agent`) reports this machine to the
collector, unless `AGENT=0`. Ctrl-C or SIGTERM stops everything: services first (they drain), then NATS.
Children also get SIGTERM from the kernel if this process dies, so none is left orphaned.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from eh_devtools.nats_server import NatsServer, die_with_parent
from eh_devtools.provisioning import provision_all
from eh_runtime.settings import StreamSettings

_READY_TIMEOUT_SECONDS: Final = 60.0
_STOP_TIMEOUT_SECONDS: Final = 20.0


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


class Stack:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.data_dir = Path(environ.get("DATA_DIR", ".data")).resolve()
        self.nats: NatsServer | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False

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
        env = {**self.environ, "AGENT_COLLECTOR_URL": self.url_of(collector), "LOG_FORMAT": "console"}
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
