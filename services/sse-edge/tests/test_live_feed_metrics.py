"""The live feed's metrics, read at scrape time from the plain ints the feed keeps per event."""

import asyncio
import re

from nats.aio.msg import Msg
from prometheus_client import REGISTRY, generate_latest

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION
from eh_devtools.pytest_plugin import store_event
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.feed import LiveFeed
from sse_edge.live.recent_events import RecentEvents


def scraped(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not exposed"
    return float(found[1])


async def test_the_scrape_counts_the_feeds_events_its_last_sequence_and_lag(edge, js):
    before = scraped((await edge.get("/metrics")).text, "eventhandler_edge_feed_events_total")
    stored = [
        await store_event(js, SEED_EXAMPLES["node_metrics"] | {"resource_id": "node-1", "id": f"m-{n}"})
        for n in range(5)
    ]
    async with asyncio.timeout(10):
        while True:
            text = (await edge.get("/metrics")).text
            if scraped(text, "eventhandler_edge_feed_last_sequence") == stored[-1]:
                break
            await asyncio.sleep(0.02)
    assert scraped(text, "eventhandler_edge_feed_events_total") - before == 5
    assert scraped(text, "eventhandler_edge_feed_lag_events") == 0
    assert "eventhandler_edge_feed_events_created" not in text  # no series doubling every scrape


async def test_the_lag_is_the_consumers_pending_count_of_the_last_delivery():
    feed = LiveFeed(FanoutIndex(1 << 20), RecentEvents(0))
    msg = Msg(
        _client=None,  # type: ignore[arg-type]
        subject="events.node_metrics.node-1",
        reply="$JS.ACK.EVENTS.live.1.41.41.1700000000000000000.12",
        data=b'{"id":"m-1"}',
        headers={ENVELOPE_HEADER: ENVELOPE_VERSION},
    )
    await feed._on_message(msg)
    text = generate_latest(REGISTRY).decode()
    assert scraped(text, "eventhandler_edge_feed_last_sequence") == 41
    assert scraped(text, "eventhandler_edge_feed_lag_events") == 12
