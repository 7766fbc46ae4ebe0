"""A cluster of real `nats-server` processes with JetStream on loopback, for fault tests.

Each server has its own store, client port and cluster port (free ports picked at creation, kept
across restarts, so clients and routes reconnect to the same addresses). A test kills a server
(SIGKILL), finds the leader of a stream, and starts a server again on the same store.
"""

import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Self

from eh_devtools.nats_server import NatsServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsCluster:
    def __init__(self, base_dir: Path, size: int = 3, name: str = "eh-test") -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.servers = [
            NatsServer(
                store_dir=base_dir / f"n{i}" / "jetstream",
                port=free_port(),
                monitor_port=free_port(),
                server_name=f"n{i}",
                cluster_name=name,
                cluster_port=cluster_ports[i],
                routes=[f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i],
                # One set of identities for the whole cluster, as in production: a client failing
                # over to another server keeps its credentials.
                identities_file=base_dir / "identities.json",
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every server's client URL, comma-separated (what `NATS_URL` takes for a cluster)."""
        return ",".join(server.url for server in self.servers)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, timeout: float = 30.0) -> Self:
        for server in self.servers:
            server.start(timeout)
        self.wait_for_meta_leader(timeout)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def server(self, name: str) -> NatsServer:
        return next(server for server in self.servers if server.server_name == name)

    def wait_for_meta_leader(self, timeout: float = 30.0) -> str:
        """Block until the cluster elected its JetStream meta leader; returns its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for server in self.servers:
                if not server.running:
                    continue
                meta = self._jsz(server).get("meta_cluster")
                leader = meta.get("leader") if isinstance(meta, dict) else None
                if leader:
                    return str(leader)
            time.sleep(0.1)
        raise TimeoutError("no JetStream meta leader elected")

    def _jsz(self, server: NatsServer) -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"{server.monitor_url}/jsz", timeout=2) as response:  # noqa: S310
                answer: dict[str, object] = json.loads(response.read())
                return answer
        except OSError:
            return {}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
