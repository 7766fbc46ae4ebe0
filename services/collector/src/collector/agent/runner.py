"""The agent's loop: every AGENT_INTERVAL, a heartbeat with this machine's metrics, and the states and
stats of its Docker containers when a Docker engine is there.

The collector keeps only real transitions, so the agent simply reports every container's current
state each time; a container that disappeared is reported `removed` once. When the collector is
unreachable, or refuses the agent's token, the agent logs it (once, until the outcome changes) and
tries again at the next interval: samples are not queued, since a fresh one follows.
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
from collector.agent.report_log import ReportLog, describe_failure
from collector.agent.settings import AgentSettings
from collector.agent.token_file import TokenFile
from eh_client import EventClient, EventHandlerError

log = structlog.get_logger(__name__)


class Agent:
    """Reports through the client library: heartbeats, and container events with ids of their own,
    so that a retried post never stores one twice."""

    def __init__(self, settings: AgentSettings, client: EventClient) -> None:
        self.settings = settings
        self.client = client
        self.sampler = HostSampler()
        self.docker = DockerEngine(settings.docker_socket) if os.path.exists(settings.docker_socket) else None
        self._containers: set[str] = set()
        self.token_file = TokenFile(settings.token_file) if settings.token_file else None
        self.report_log = ReportLog()
        self._token_file_error: str | None = None

    async def report_once(self) -> dict[str, Any]:
        """One round: heartbeat with metrics, then containers. Returns the heartbeat's answer."""
        answer = await self.client.heartbeat(
            self.settings.node_id, metrics=self.sampler.sample(), ip=primary_ip()
        )
        if self.docker is not None:
            await self._report_containers(self.docker)
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
            # One retry at most: a fresh sample follows at the next interval anyway.
            result = await self.client.publish(events, retries=1)
            for rejected in result.rejected:
                log.warning(
                    "container event refused",
                    resource_id=events[rejected.index]["resource_id"],
                    status=rejected.status,
                    errors=list(rejected.errors) or rejected.error,
                )

    def _use_renewed_token(self) -> None:
        if self.token_file is None:
            return
        try:
            token = self.token_file.renewed()
        except OSError as error:
            if self._token_file_error != str(error):  # once, not every round
                log.warning(
                    "token file unreadable; the last token read is kept",
                    path=str(self.token_file.path),
                    error=str(error),
                )
            self._token_file_error = str(error)
            return
        self._token_file_error = None
        if token is not None:
            self.client.set_token(token)

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "agent started",
            node_id=self.settings.node_id,
            collector=self.settings.collector_url,
            docker=self.docker is not None,
        )
        interval = self.settings.interval.total_seconds()
        while not stop.is_set():
            self._use_renewed_token()
            try:
                await self.report_once()
            except (httpx.HTTPError, EventHandlerError) as error:
                has_token = self.settings.token is not None or self.token_file is not None
                self.report_log.failed(*describe_failure(error, has_token=has_token))
            else:
                self.report_log.succeeded()
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
    token = settings.token.get_secret_value() if settings.token else None
    async with EventClient(collector_url=settings.collector_url, timeout=timeout, token=token) as client:
        await Agent(settings, client).run(stop)
