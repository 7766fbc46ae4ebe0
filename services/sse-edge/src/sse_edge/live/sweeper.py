"""One periodic pass over every client, instead of two timers per client.

Heartbeats and send timeouts are both "has this client's writer done something lately": a timer
per client per wait would cost a timer handle on every write and park (tens of thousands a second
under load) and one live timer per idle connection. A single sweep every fraction of a second
marks heartbeats due, aborts writes that have been stuck longer than the send timeout, and
notices sockets the client closed (where the transport is known; else a task waits on `receive`).
"""

import asyncio
import time

import structlog

from sse_edge.live.fanout import FanoutIndex

log = structlog.get_logger(__name__)


async def sweep_clients(index: FanoutIndex, heartbeat_seconds: float, send_timeout_seconds: float) -> None:
    period = max(0.05, min(0.5, heartbeat_seconds / 4, send_timeout_seconds / 4))
    while True:
        await asyncio.sleep(period)
        sweep_once(index, time.monotonic(), heartbeat_seconds, send_timeout_seconds)


def sweep_once(index: FanoutIndex, now: float, heartbeat_seconds: float, send_timeout_seconds: float) -> None:
    for client in index:
        if client.close_reason is not None:
            continue
        if client.socket_closed:
            client.close("disconnected")
            continue
        started = client.write_started
        if started and now - started > send_timeout_seconds:
            client.close("send_timeout")
            log.warning("sse client stalled, disconnected", peer=client.peer, timeout_s=send_timeout_seconds)
            client.abort()
        elif not started and now - client.last_write >= heartbeat_seconds:
            client.request_heartbeat()
