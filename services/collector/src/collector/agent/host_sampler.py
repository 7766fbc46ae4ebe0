"""A sample of the machine the agent runs on, as the `data` of a `node_metrics` event.

Sizes are MiB, network counters are rates (bytes per second since the previous sample), as the
`node_metrics` schema says. What the machine cannot tell (temperature without sensors, connections
without the right to list them) is left out rather than invented.
"""

import contextlib
import socket
import time
from typing import Any, Final

import psutil

_MIB: Final = 2**20
_CPU_SENSORS: Final = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "acpitz")


class HostSampler:
    def __init__(self, disk_path: str = "/") -> None:
        self.disk_path = disk_path
        self._last_net: tuple[float, int, int] | None = None
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self.sample()  # and the network counters

    def sample(self) -> dict[str, Any]:
        cpu: dict[str, Any] = {"usage": psutil.cpu_percent(interval=None), "cores": psutil.cpu_count() or 1}
        temperature = cpu_temperature()
        if temperature is not None:
            cpu["temperature"] = temperature
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self.disk_path)
        metrics: dict[str, Any] = {
            "cpu": cpu,
            "memory": {
                "total": round(memory.total / _MIB, 1),
                "used": round((memory.total - memory.available) / _MIB, 1),
                "free": round(memory.available / _MIB, 1),
            },
            "disk": {
                "total": round(disk.total / _MIB, 1),
                "used": round(disk.used / _MIB, 1),
                "free": round(disk.free / _MIB, 1),
            },
        }
        network = self._network_rates()
        if network is not None:
            metrics["network"] = network
        return metrics

    def _network_rates(self) -> dict[str, Any] | None:
        counters = psutil.net_io_counters()
        now = time.monotonic()
        last, self._last_net = self._last_net, (now, counters.bytes_recv, counters.bytes_sent)
        if last is None or now <= last[0]:
            return None
        elapsed = now - last[0]
        network: dict[str, Any] = {
            "in_bytes": round(max(0, counters.bytes_recv - last[1]) / elapsed, 1),
            "out_bytes": round(max(0, counters.bytes_sent - last[2]) / elapsed, 1),
        }
        with contextlib.suppress(psutil.AccessDenied, OSError):
            network["connections"] = len(psutil.net_connections(kind="inet"))
        return network


def cpu_temperature() -> float | None:
    """Average of the CPU sensors' current readings, degrees Celsius; None without sensors."""
    read = getattr(psutil, "sensors_temperatures", None)
    sensors = read() if read is not None else {}
    for name in (*_CPU_SENSORS, *sensors):
        readings = [r.current for r in sensors.get(name, []) if r.current]
        if readings:
            return round(float(sum(readings)) / len(readings), 1)
    return None


def primary_ip() -> str | None:
    """The first IPv4 address of an interface that is up and not loopback."""
    stats = psutil.net_if_stats()
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None
