"""The agent's loop: every AGENT_INTERVAL, a heartbeat with this machine's metrics, and the states and
stats of its Docker containers when a Docker engine is there.

The collector keeps only real transitions, so the agent simply reports every container's current
state each time; a container that disappeared is reported `removed` once. When the collector is
unreachable the agent logs it and tries again at the next interval: samples are not queued, since
a fresh one follows.
"""

import asyncio
import contextlib
import os
import signal
from typing import Any

import httpx
import structlog

from collector.agent.docker_engine import DockerEngine, container_metrics_data, container_status_event
from collector.agent.host_sampler import HostSampler, primary_ip
from collector.agent.settings import AgentSettings

log = structlog.get_logger(__name__)


class Agent:
    def __init__(self, settings: AgentSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.sampler = HostSampler()
        self.docker = DockerEngine(settings.docker_socket) if os.path.exists(settings.docker_socket) else None
        self._containers: set[str] = set()

    async def report_once(self) -> dict[str, Any]:
        """One round: heartbeat with metrics, then containers. Returns the heartbeat's answer."""
        body: dict[str, Any] = {"metrics": self.sampler.sample()}
        ip = primary_ip()
        if ip is not None:
            body["ip"] = ip
        response = await self.client.post(f"/api/v1/nodes/{self.settings.node_id}/heartbeat", json=body)
        if response.status_code >= 400:
            log.warning("heartbeat refused", status=response.status_code, body=response.text[:300])
        if self.docker is not None:
            await self._report_containers(self.docker)
        answer: dict[str, Any] = response.json()
        return answer

    async def _report_containers(self, docker: DockerEngine) -> None:
        try:
            containers = await docker.containers()
        except httpx.HTTPError as error:
            log.warning("docker engine unreachable", socket=self.settings.docker_socket, error=str(error))
            return
        events = [container_status_event(c, self.settings.node_id) for c in containers]
        seen = {e["resource_id"] for e in events}
        events += [
            {
                "event": "container_status",
                "resource_id": gone,
                "data": {"new_state": "removed", "node_id": self.settings.node_id},
            }
            for gone in sorted(self._containers - seen)
        ]
        self._containers = seen
        for container, status in zip(containers, events, strict=False):
            if container.get("State") == "running":
                with contextlib.suppress(httpx.HTTPError):
                    data = container_metrics_data(await docker.stats(str(container["Id"])))
                    events.append(
                        {"event": "container_metrics", "resource_id": status["resource_id"], "data": data}
                    )
        if events:
            response = await self.client.post("/api/v1/events", json=events)
            if response.status_code not in (202, 207):
                log.warning("container events refused", status=response.status_code, body=response.text[:300])

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "agent started",
            node_id=self.settings.node_id,
            collector=self.settings.collector_url,
            docker=self.docker is not None,
        )
        interval = self.settings.interval.total_seconds()
        while not stop.is_set():
            try:
                await self.report_once()
            except httpx.HTTPError as error:
                log.warning(
                    "collector unreachable; next try at the next interval",
                    error=f"{type(error).__name__}: {error}",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        if self.docker is not None:
            await self.docker.close()
        log.info("agent stopped")


async def run_agent(settings: AgentSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    timeout = settings.request_timeout.total_seconds()
    async with httpx.AsyncClient(base_url=settings.collector_url, timeout=timeout) as client:
        await Agent(settings, client).run(stop)
