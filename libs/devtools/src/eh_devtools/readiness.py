"""Waiting for a service started as its own process to answer `/readyz` with 200."""

import asyncio
import time

import httpx


async def until_ready(client: httpx.AsyncClient, timeout: float = 30.0) -> None:
    """Poll `/readyz` on `client`'s base URL; connection errors mean "not yet".

    Raises:
        TimeoutError: when the service is not ready within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{client.base_url} not ready after {timeout:.0f} s")
        await asyncio.sleep(0.1)
