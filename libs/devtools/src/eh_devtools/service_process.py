"""A service run as a process of its own (`python -m <module>`), to be killed like a real one."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self

import httpx

from eh_devtools.nats_cluster import free_port
from eh_devtools.nats_server import die_with_parent
from eh_devtools.readiness import until_ready


class ServiceProcess:
    def __init__(self, module: str, env_prefix: str, env: dict[str, str], log_file: Path) -> None:
        self.module = module
        self.port = free_port()
        self.env = os.environ | env | {f"{env_prefix}HOST": "127.0.0.1", f"{env_prefix}PORT": str(self.port)}
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        with self.log_file.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        return self

    async def ready(self, timeout: float = 30.0) -> None:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            await until_ready(client, timeout)

    def signal(self, signum: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL and reap: no drain, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
