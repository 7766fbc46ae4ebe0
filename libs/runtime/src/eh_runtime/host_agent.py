"""What the host agent (`python -m collector agent`) is to the tools that sign its token.

The agent lives in the collector's package, and `make run` (in the dev tools) signs a token for
it; neither may import the other, so what both must agree on lives here: the node id the agent
reports by default, where it looks for Docker, and the grant its token needs.
"""

import re
import socket
from typing import Any, Final

from eh_contracts.event_types import EventType
from eh_runtime.auth.token import scope_of

DEFAULT_DOCKER_SOCKET: Final = "/var/run/docker.sock"

NODE_EVENT_TYPES: Final = (EventType.NODE_STATUS, EventType.NODE_METRICS)
"""What a heartbeat stores: the node's status transition and its metrics."""

CONTAINER_EVENT_TYPES: Final = (EventType.CONTAINER_STATUS, EventType.CONTAINER_METRICS)
"""What the agent publishes about the Docker containers of its node."""


def default_node_id() -> str:
    """The host name as a resource id: characters a subject token cannot hold become `-`."""
    return re.sub(r"[^A-Za-z0-9_:-]", "-", socket.gethostname())[:128] or "localhost"


def host_agent_scope(node_id: str, *, containers: bool) -> dict[str, Any]:
    """The `eh` claim of a host agent's token: publish exactly what it sends, nothing else.

    Without containers, only the node's own events about the node itself. With containers, the
    container types too, about any resource: a grant is a cross product of types and resource
    patterns, and containers are named by Docker (any name), not under the node's id, so no
    pattern can say "this node and its containers" only.
    """
    types = NODE_EVENT_TYPES + CONTAINER_EVENT_TYPES if containers else NODE_EVENT_TYPES
    return scope_of(
        publish=[t.value for t in types],
        publish_resources=["*"] if containers else [node_id],
    )
