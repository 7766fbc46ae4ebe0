"""Containers of the local Docker engine, as `container_status` and `container_metrics` events.

Talks to the engine's HTTP API over its Unix socket (no Docker SDK needed). The conversions are
pure functions, tested on the engine's documented response shapes.
"""

import re
from typing import Any, Final

import httpx

_MIB: Final = 2**20
_STATES: Final = {
    "created": "created",
    "running": "running",
    "paused": "paused",
    "restarting": "restarting",
    "removing": "removed",
    "exited": "exited",
    "dead": "dead",
}
_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")
_TOKEN = re.compile(r"^[A-Za-z0-9_:-]{1,128}$")


def container_id(container: dict[str, Any]) -> str:
    """The container's name when it is a valid resource id, else its short id."""
    for name in container.get("Names") or []:
        candidate = str(name).lstrip("/")
        if _TOKEN.fullmatch(candidate):
            return candidate
    return str(container["Id"])[:12]


def container_status_event(container: dict[str, Any], node_id: str) -> dict[str, Any]:
    """A `container_status` event from one entry of `GET /containers/json?all=1`."""
    data: dict[str, Any] = {
        "new_state": _STATES.get(str(container.get("State", "")), "unknown"),
        "node_id": node_id,
    }
    exited = _EXIT_CODE.search(str(container.get("Status", "")))
    if exited:
        data["exit_code"] = int(exited[1])
    labels = container.get("Labels") or {}
    pipeline = labels.get("eventhandler.pipeline_id") or labels.get("pipeline_id")
    if pipeline and _TOKEN.fullmatch(str(pipeline)):
        data["pipeline_id"] = str(pipeline)
    return {"event": "container_status", "resource_id": container_id(container), "data": data}


def container_metrics_data(stats: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a `container_metrics` event from `GET /containers/{id}/stats?stream=false`."""
    cpu_stats, previous = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu_stats.get("cpu_usage") or {}).get("total_usage", 0) - (
        previous.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu_stats.get("system_cpu_usage", 0) - previous.get("system_cpu_usage", 0)
    cores = (
        cpu_stats.get("online_cpus") or len((cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    )
    usage = cpu_delta / system_delta * cores * 100 if system_delta > 0 and cpu_delta > 0 else 0.0
    data: dict[str, Any] = {"cpu": {"usage": round(usage, 2), "limit": float(cores * 100)}}
    memory = stats.get("memory_stats") or {}
    if "usage" in memory:
        inactive = (memory.get("stats") or {}).get("inactive_file", 0)
        data["memory"] = {"usage": round(max(0, memory["usage"] - inactive) / _MIB, 1)}
        if memory.get("limit"):
            data["memory"]["limit"] = round(memory["limit"] / _MIB, 1)
    networks = (stats.get("networks") or {}).values()
    if networks:
        data["network"] = {
            key: sum(int(n.get(key, 0)) for n in networks)
            for key in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
        }
    io = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    if io:
        data["block_io"] = {
            "read_bytes": sum(int(e.get("value", 0)) for e in io if str(e.get("op", "")).lower() == "read"),
            "write_bytes": sum(int(e.get("value", 0)) for e in io if str(e.get("op", "")).lower() == "write"),
        }
    return data


class DockerEngine:
    """The engine's API over its Unix socket."""

    def __init__(self, socket_path: str, timeout: float = 5.0) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path), base_url="http://docker", timeout=timeout
        )

    async def containers(self) -> list[dict[str, Any]]:
        response = await self._client.get("/containers/json", params={"all": "1"})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def stats(self, container: str) -> dict[str, Any]:
        response = await self._client.get(f"/containers/{container}/stats", params={"stream": "false"})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def close(self) -> None:
        await self._client.aclose()
