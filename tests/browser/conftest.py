"""A real stack (NATS, collector, edge, alert evaluator) and a headless Chromium driven by Playwright.

Chromium is Debian's (`make test` installs it when missing); Playwright's own browser download is
not used. Screenshots go to `test-artifacts/` (not versioned) for people to look at.
"""

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

# The helper module beside the tests imports by name.
sys.path.insert(0, str(Path(__file__).parent))

from dashboard_helpers import CHROMIUM, RULES, Stack, free_port

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_client import EventClient
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings


@pytest.fixture
async def stack(nats_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    evaluator_settings = EvaluatorSettings(nats=nats, rules_file=rules, lease_ttl=1, start_from="all")
    async with (
        serving(create_collector(CollectorSettings(nats=nats))) as collector,
        serving(create_evaluator(evaluator_settings)),
    ):
        port = free_port()
        client = EventClient(f"http://127.0.0.1:{port}", collector_url=str(collector.base_url))
        stack = Stack(nats_url, port, None, client)  # type: ignore[arg-type]
        await stack.start_edge()
        try:
            yield stack
        finally:
            with contextlib.suppress(Exception):
                if stack._edge is not None:
                    await stack.stop_edge()
            await client.aclose()


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--enable-precise-memory-info"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"errors in the page: {errors}"
