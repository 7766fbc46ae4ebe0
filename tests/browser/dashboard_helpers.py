"""What the browser tests share: the stack they drive, screenshots, waits."""

import shutil
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from playwright.async_api import Page

from eh_client import EventClient
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Quick to fire and to resolve, so that a test sees both within seconds.
RULES = """
rules:
  - name: cpu_hot
    event: node_metrics
    condition: cpu.usage > 90
    for: 0s
    level: critical
    category: resource
    title: CPU hot on {resource_id}
    message: Node {resource_id} CPU at {value:.0f}%, above {threshold}%
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    nats_url: str
    edge_port: int
    edge_app: FastAPI
    client: EventClient
    _edge: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}/"

    def new_edge_app(self) -> FastAPI:
        settings = EdgeSettings(
            nats=NatsSettings(url=self.nats_url, reconnect_wait=0.05),
            retry=timedelta(milliseconds=200),
            shutdown_spread=timedelta(milliseconds=500),
        )
        return create_edge(settings)

    async def stop_edge(self) -> None:
        await self._edge.__aexit__(None, None, None)
        self._edge = None

    async def start_edge(self) -> None:
        self.edge_app = self.new_edge_app()
        self._edge = serving(self.edge_app, port=self.edge_port)
        await self._edge.__aenter__()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def wait_live(page: Page, timeout: float = 15_000) -> None:
    await page.wait_for_selector('#connection[data-state="live"]', timeout=timeout)
