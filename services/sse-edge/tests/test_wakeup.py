import asyncio

import pytest

from sse_edge.live.wakeup import Wakeup


async def test_set_wakes_the_waiter_and_stays_set_until_cleared():
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    wakeup.set()
    await asyncio.wait_for(waiter, 1)
    assert wakeup.is_set()
    await asyncio.wait_for(wakeup.wait(), 1)  # already set: returns at once
    wakeup.clear()
    again = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0.01)
    assert not again.done()
    again.cancel()


async def test_a_cancelled_wait_leaves_room_for_the_next_one():
    wakeup = Wakeup()
    first = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    wakeup.set()
    await asyncio.wait_for(second, 1)
