"""1,000 nodes reporting metrics every second: what the page shows, how late, and its memory.

The edge runs as its own process, as in production. Each node's metrics are stored every second
with the time of publishing as the event's timestamp; the page records, per node card it redraws,
the time from that timestamp to the animation frame that drew it (`window.__eh.latencies`). The
figures (p50/p95/p99, heap before and after) are written to `test-artifacts/dashboard-load.json`
and recorded in bench/RESULTS.md; the test asserts what it must (every card shows the last
value, the heap stays flat), not a wall-clock figure.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dashboard_helpers import ARTIFACTS, free_port, screenshot, wait_live
from nats.js import JetStreamContext
from playwright.async_api import Browser

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.nats_server import die_with_parent
from eh_devtools.readiness import until_ready
from eh_runtime.stream import EVENTS_STREAM

pytestmark = [pytest.mark.nats, pytest.mark.browser, pytest.mark.slow]

NODES = 1000
SECONDS = 16
WARM_UP_SECONDS = 4


def metrics_payload(node: int, second: int) -> bytes:
    data = dict(SEED_EXAMPLES["node_metrics"]["data"])
    data["cpu"] = {"usage": float((node + second * 7) % 100), "cores": 32}
    envelope = {
        "id": f"m-{node}-{second}",
        "event": "node_metrics",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "resource_id": f"node-{node:04d}",
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


async def publish_second(js: JetStreamContext, second: int) -> None:
    """Every node once, in ten bursts spread over the second, as a farm's agents would report."""
    for burst in range(10):
        started = time.monotonic()
        acks = [
            await js.publish_async(
                f"events.node_metrics.node-{node:04d}",
                metrics_payload(node, second),
                stream=EVENTS_STREAM,
                headers={"Nats-Msg-Id": f"m-{node}-{second}"},
            )
            for node in range(burst * NODES // 10, (burst + 1) * NODES // 10)
        ]
        await asyncio.gather(*acks)
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


async def heap_after_gc(cdp) -> float:
    await cdp.send("HeapProfiler.collectGarbage")
    metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize")


def start_edge_process(nats_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = os.environ | {"NATS_URL": nats_url, "SSE_EDGE_PORT": str(port), "LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-m", "sse_edge"], env=env, preexec_fn=die_with_parent), port


async def start_probe(port: int) -> asyncio.subprocess.Process:
    """The baseline: a bare SSE reader of the same events in a process of its own."""
    script = str(Path(__file__).parent / "sse_lag_probe.py")
    path = "/api/v1/events?type=node_metrics"
    return await asyncio.create_subprocess_exec(
        sys.executable, script, str(port), path, stdout=asyncio.subprocess.PIPE
    )


async def stop_probe(process: asyncio.subprocess.Process) -> list[float]:
    process.terminate()
    out, _ = await process.communicate()
    return json.loads(out)


async def test_a_thousand_nodes_every_second(nats_url, js, events_stream, browser: Browser):
    edge, port = start_edge_process(nats_url)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await until_ready(http, timeout=90)
        await publish_second(js, 0)  # the picture the snapshot paints
        context = await browser.new_context(viewport={"width": 1440, "height": 1000})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"http://127.0.0.1:{port}/")
        await wait_live(page, timeout=60_000)
        await page.wait_for_function(
            f"document.querySelectorAll('[data-node]').length === {NODES}", timeout=60_000
        )
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        heaps = []
        probe = None
        for second in range(1, SECONDS + 1):
            await publish_second(js, second)
            if second == WARM_UP_SECONDS:
                await page.evaluate("window.__eh.latencies.length = window.__eh.arrivals.length = 0")
                heaps.append(await heap_after_gc(cdp))
                probe = await start_probe(port)
        await asyncio.sleep(1)  # the last second drawn
        # Read before scrolling: a card scrolled into view is drawn with samples that waited for it.
        latencies = sorted(await page.evaluate("window.__eh.latencies"))
        arrivals = sorted(await page.evaluate("window.__eh.arrivals"))
        assert probe is not None
        bare = sorted(await stop_probe(probe))
        visible = await page.evaluate("window.__eh.visibleNodes")
        # A card off screen is redrawn when it scrolls into view, with the latest values.
        last = NODES - 1
        expected = f"{float((last + SECONDS * 7) % 100):g}%"
        await page.locator(f'[data-node="node-{last:04d}"]').scroll_into_view_if_needed()
        card = page.locator(f'[data-node="node-{last:04d}"] .metric .value').first
        await card.filter(has_text=expected).wait_for(timeout=30_000)
        heaps.append(await heap_after_gc(cdp))
        await screenshot(page, "dashboard-1000-nodes")
        await context.close()
    finally:
        edge.terminate()
        edge.wait(10)

    def quantiles(values: list[float]) -> dict[str, float]:
        at = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "max": 1.0}
        return {name: values[min(len(values) - 1, int(q * len(values)))] for name, q in at.items()}

    figures = {
        "nodes": NODES,
        "events_per_second": NODES,
        "measured_seconds": SECONDS - WARM_UP_SECONDS,
        "samples": len(latencies),
        "cards_on_screen": visible,
        "event_to_screen_ms": quantiles(latencies),
        "event_to_tab_ms": quantiles(arrivals),
        "baseline_event_to_bare_sse_client_ms": quantiles(bare),
        "js_heap_mb_after_gc": {
            "at_warm_up": round(heaps[0] / 2**20, 2),
            "at_end": round(heaps[1] / 2**20, 2),
        },
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard-load.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    assert errors == []
    # Every card on screen redrawn about once a second (only those: the others wait to be seen).
    assert 0 < visible < NODES
    assert len(latencies) >= visible * (SECONDS - WARM_UP_SECONDS) * 0.5
    # Flat memory: the page holds a bounded picture (60 samples per node, 400 recent events).
    assert heaps[1] < heaps[0] * 1.3 + 2 * 2**20
