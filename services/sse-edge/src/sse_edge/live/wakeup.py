"""A one-waiter `asyncio.Event`, for the two signals every connected client holds.

`asyncio.Event` keeps a deque of waiters (about 600 bytes even when empty); a client's writer
and its replay are each the only waiter on their signal, so a slot for one future is enough.
Same methods, same meaning: `set` wakes the waiter and stays set until `clear`.
"""

import asyncio


class Wakeup:
    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        if self._waiter is not None:
            raise RuntimeError("Wakeup has one waiter at a time")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
