from datetime import timedelta

import pytest
from nats.js.api import StorageType, StreamConfig

from eh_runtime.settings import StreamSettings
from eh_runtime.stream import (
    EVENTS_STREAM,
    StreamConfigConflict,
    ensure_events_stream,
    events_stream_exists,
)

pytestmark = pytest.mark.nats


async def test_creates_the_events_stream_from_settings(js):
    assert not await events_stream_exists(js)
    settings = StreamSettings(
        max_age=timedelta(days=2), max_bytes=1 << 20, duplicate_window=timedelta(seconds=30)
    )
    await ensure_events_stream(js, settings)
    info = await js.stream_info(EVENTS_STREAM)
    assert info.config.subjects == ["events.>"]
    assert info.config.storage == StorageType.FILE
    assert info.config.max_age == 2 * 86400
    assert info.config.max_bytes == 1 << 20
    assert info.config.duplicate_window == 30
    assert info.config.allow_msg_ttl is True
    assert info.config.allow_atomic is True
    assert await events_stream_exists(js)


async def test_enables_atomic_batches_on_a_stream_made_before_them(js):
    await js.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["events.>"], allow_msg_ttl=True))
    info = await ensure_events_stream(js, StreamSettings())
    assert info.config.allow_atomic is True


async def test_is_idempotent(js):
    settings = StreamSettings()
    first = await ensure_events_stream(js, settings)
    second = await ensure_events_stream(js, settings)
    assert second.created == first.created
    assert second.config.max_age == first.config.max_age


async def test_updates_limits_and_keeps_the_data(js):
    await ensure_events_stream(js, StreamSettings(max_age=timedelta(days=1)))
    for i in range(5):
        await js.publish(f"events.system_log.log-{i}", b"{}")
    info = await ensure_events_stream(
        js, StreamSettings(max_age=timedelta(days=3), duplicate_window=timedelta(seconds=5))
    )
    assert info.config.max_age == 3 * 86400
    assert info.config.duplicate_window == 5
    assert info.state.messages == 5


async def test_refuses_to_recreate_a_stream_with_other_storage(js):
    await js.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["events.>"], storage=StorageType.MEMORY))
    await js.publish("events.system_log.keep-me", b"{}")
    with pytest.raises(StreamConfigConflict, match="never deletes data"):
        await ensure_events_stream(js, StreamSettings())
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1
