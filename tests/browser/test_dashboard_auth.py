"""The dashboard with HTTP auth on: a token in a cookie or the page's URL, and nothing without one.

EventSource cannot set headers, so the page's stream carries the token the way a browser can: the
`eh_token` cookie, or `?access_token=` given once in the page's URL (the page keeps it for the tab).
"""

from datetime import timedelta

import pytest
from dashboard_helpers import Stack, screenshot, wait_live
from fastapi import FastAPI
from playwright.async_api import Browser, Page

from eh_runtime.auth.token import sign_token
from eh_runtime.settings import AuthSettings, NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = [pytest.mark.nats, pytest.mark.browser]

SECRET = "dashboard-auth-test-secret-0123456789abcdef"
EVERYTHING = {"subscribe": {"types": ["*"], "resources": ["*"]}}


def edge_with_auth(stack: Stack) -> FastAPI:
    settings = EdgeSettings(
        nats=NatsSettings(url=stack.nats_url, reconnect_wait=0.05),
        retry=timedelta(milliseconds=200),
        shutdown_spread=timedelta(milliseconds=500),
        auth=AuthSettings(mode="jwt", secret=SECRET),
    )
    return create_edge(settings)


@pytest.fixture
async def secured(stack: Stack) -> Stack:
    await stack.stop_edge()
    stack.new_edge_app = lambda: edge_with_auth(stack)  # type: ignore[method-assign]
    await stack.start_edge()
    return stack


def node_status(node: str, state: str) -> dict:
    return {
        "event": "node_status",
        "resource_id": node,
        "data": {"new_state": state, "reason": "heartbeat_received", "details": {"ip": "10.0.0.7"}},
    }


async def test_a_token_in_a_cookie_opens_the_stream(secured: Stack, browser: Browser):
    token = sign_token(SECRET, "operator-1", EVERYTHING)
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    await context.add_cookies([{"name": "eh_token", "value": token, "url": secured.url}])
    page = await context.new_page()
    try:
        await page.goto(secured.url)
        await wait_live(page)
        await secured.client.publish(node_status("node-auth", "online"))
        card = page.locator('[data-node="node-auth"]')
        await card.wait_for()
        assert await card.locator(".pill").inner_text() == "online"
        await screenshot(page, "dashboard-auth-cookie")
    finally:
        await context.close()


async def test_a_token_in_the_url_opens_the_stream_and_leaves_the_address(secured: Stack, page: Page):
    token = sign_token(SECRET, "operator-2", EVERYTHING)
    await page.goto(f"{secured.url}?access_token={token}")
    await wait_live(page)
    assert "access_token" not in page.url  # not left in the address bar, history or bookmarks
    await secured.client.publish(node_status("node-url", "online"))
    await page.locator('[data-node="node-url"]').wait_for()


async def test_without_a_token_the_page_never_goes_live(secured: Stack, page: Page):
    await page.goto(secured.url)
    # The page says why it is not live, instead of reconnecting forever in silence.
    await page.locator("#connection").filter(has_text="Not authorized").wait_for()
    assert await page.locator("#connection").get_attribute("data-state") != "live"
    await screenshot(page, "dashboard-auth-missing")
