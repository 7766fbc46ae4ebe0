"""The dashboard in Chromium against a real stack: snapshot then live, node cards, alerts, restarts."""

import asyncio

import pytest
from dashboard_helpers import Stack, screenshot, wait_live
from playwright.async_api import Browser, Page

from eh_contracts.examples import SEED_EXAMPLES

pytestmark = [pytest.mark.nats, pytest.mark.browser]


def metrics(node: str, cpu: float, gpu: float | None = 30.5) -> dict:
    data = dict(SEED_EXAMPLES["node_metrics"]["data"])
    data["cpu"] = {"usage": cpu, "cores": 16, "temperature": 61}
    if gpu is None:
        data.pop("gpu")
    else:
        data["gpu"] = {"usage": gpu, "memory_used": 4096, "temperature": 70}
    return {"event": "node_metrics", "resource_id": node, "data": data}


def node_status(node: str, state: str) -> dict:
    return {
        "event": "node_status",
        "resource_id": node,
        "data": {"new_state": state, "reason": "heartbeat_received", "details": {"ip": "10.0.0.7"}},
    }


def log(n: int) -> dict:
    return {
        "event": "system_log",
        "resource_id": "log-1",
        "data": SEED_EXAMPLES["system_log"]["data"] | {"message": f"line {n}"},
    }


async def recent_seqs(page: Page) -> list[int]:
    return await page.evaluate("window.__eh.farm.recent.map((r) => r.seq)")


async def test_the_page_paints_the_farm_from_the_snapshot_then_follows_it_live(stack: Stack, page: Page):
    # Before the page opens: a farm with history. The snapshot brings its latest state.
    await stack.client.publish(node_status("node-a", "online"), node_status("node-b", "online"))
    await stack.client.publish(
        [metrics("node-a", 20 + i) for i in range(5)] + [metrics("node-b", 55, gpu=None)]
    )
    pipeline = {
        "event": "pipeline_status",
        "resource_id": "pipeline-7",
        "data": SEED_EXAMPLES["pipeline_status"]["data"] | {"old_status": "queued", "new_status": "running"},
    }
    progress = {
        "event": "pipeline_progress",
        "resource_id": "pipeline-7",
        "data": SEED_EXAMPLES["pipeline_progress"]["data"],
    }
    container = {
        "event": "container_status",
        "resource_id": "build-7-1",
        "data": SEED_EXAMPLES["container_status"]["data"]
        | {"old_state": "created", "new_state": "running", "node_id": "node-a"},
    }
    await stack.client.publish(pipeline, progress, container)
    await page.goto(stack.url)
    await wait_live(page)
    card = page.locator('[data-node="node-a"]')
    await card.locator(".metric .value").first.filter(has_text="24%").wait_for()
    assert await card.locator(".pill").inner_text() == "online"
    assert await card.locator(".chip").inner_text() == "build-7-1"
    step = await page.locator('[data-pipeline="pipeline-7"] .step').inner_text()
    assert step == "step 3/5 · build running · on node-001"
    # Live: a posted event shows in the table and moves the card.
    posted = await stack.client.publish(metrics("node-a", 88.5))
    await card.locator(".metric .value").first.filter(has_text="88.5%").wait_for()
    row = page.locator(f'#events tr[data-seq="{posted.events[0].seq}"]')
    await row.wait_for()
    assert "node_metrics" in await row.inner_text()
    await stack.client.publish(node_status("node-b", "offline"))
    await page.locator('[data-node="node-b"].offline').wait_for()
    await screenshot(page, "dashboard-overview")


async def test_an_alert_fires_then_resolves(stack: Stack, page: Page):
    await page.goto(stack.url)
    await wait_live(page)
    await stack.client.publish(metrics("node-hot", 97))
    alert = page.locator('[data-alert="cpu_hot:node-hot"]')
    await alert.locator(".pill.state-firing").wait_for(timeout=15_000)
    assert "CPU hot on node-hot" in await alert.inner_text()
    assert await page.locator("#alert-count").inner_text() == "1"
    await screenshot(page, "dashboard-alert-firing")
    await stack.client.publish(metrics("node-hot", 12))
    await alert.locator(".pill.state-resolved").wait_for(timeout=15_000)
    assert await page.locator("#alert-count").inner_text() == "0"
    await screenshot(page, "dashboard-alert-resolved")


async def test_an_edge_restart_loses_and_repeats_nothing(stack: Stack, page: Page):
    await page.goto(stack.url)
    await wait_live(page)
    published = (await stack.client.publish([log(i) for i in range(10)])).events
    await page.wait_for_function("window.__eh.farm.recent.length >= 10")
    await stack.stop_edge()  # graceful: stream.shutdown, then the socket closes
    await page.locator('#connection[data-state="reconnecting"]').wait_for()
    await screenshot(page, "dashboard-reconnecting")
    published += (await stack.client.publish([log(i) for i in range(10, 20)])).events
    await stack.start_edge()
    published += (await stack.client.publish([log(i) for i in range(20, 30)])).events
    await page.wait_for_function("window.__eh.farm.recent.length >= 30", timeout=20_000)
    await wait_live(page)
    assert await recent_seqs(page) == [e.seq for e in published]
    # The table is drawn at the next animation frame after the events arrive, not with them.
    await page.wait_for_function("document.querySelectorAll('#events tbody tr[data-seq]').length >= 30")
    rows = await page.locator("#events tbody tr[data-seq]").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.seq))"
    )
    assert rows == [e.seq for e in reversed(published)]
    assert await page.evaluate("window.__eh.status.connections") == 2


async def test_two_tabs_share_one_connection(stack: Stack, browser: Browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    first, second = await context.new_page(), await context.new_page()
    for tab in (first, second):
        await tab.goto(stack.url)
        await wait_live(tab)
    assert len(stack.edge_app.state.fanout) == 1  # one stream for the browser, not one per tab
    posted = await stack.client.publish(metrics("node-shared", 42))
    for tab in (first, second):
        await tab.locator('[data-node="node-shared"]').wait_for()
        assert await recent_seqs(tab) == [posted.events[0].seq]
    await screenshot(second, "dashboard-second-tab")
    await context.close()


async def test_a_reload_resumes_after_the_last_event_seen(stack: Stack, page: Page):
    await page.goto(stack.url)
    await wait_live(page)
    first = (await stack.client.publish([log(i) for i in range(5)])).events
    await page.wait_for_function("window.__eh.farm.recent.length >= 5")
    await page.reload()
    await wait_live(page)
    status = await page.evaluate("window.__eh.status")
    # Either a new worker resumed from what the page saved, or the old one (still alive) kept going.
    assert status["resumedFrom"] in (first[-1].seq, None)
    later = (await stack.client.publish([log(i) for i in range(5, 8)])).events
    await page.wait_for_function("window.__eh.farm.recent.length >= 8")
    assert await recent_seqs(page) == [e.seq for e in first + later]
    # The unloaded page's worker may take a moment to let go of its stream; then one is left.
    async with asyncio.timeout(10):
        while len(stack.edge_app.state.fanout) != 1:
            await asyncio.sleep(0.05)


async def test_a_gap_is_shown(stack: Stack, page: Page, js):
    """Events that expired while the page was away are announced on the page, not hidden."""
    await page.goto(stack.url)
    await wait_live(page)
    await stack.client.publish([log(i) for i in range(3)])
    await page.wait_for_function("window.__eh.farm.recent.length >= 3")
    await stack.stop_edge()
    missed = (await stack.client.publish([log(i) for i in range(3, 6)])).events
    await js.purge_stream("EVENTS", keep=1)  # retention, sped up: only the newest event is left
    await stack.start_edge()
    await page.locator("#notices .notice.gap").wait_for(timeout=20_000)
    text = await page.locator("#notices").inner_text()
    assert f"events {missed[0].seq}\u2013{missed[1].seq} expired" in text
    await page.wait_for_function(f"window.__eh.farm.lastEventId === {missed[2].seq}")
    marker = page.locator("#events tbody tr.marker")
    assert await marker.inner_text() == f"2 events expired here ({missed[0].seq}\u2013{missed[1].seq})"
    await screenshot(page, "dashboard-gap")
