"""The live price page in a real browser: headless Chromium (Debian's) driven by Playwright.

One stack for the module: redis-server, the simulator (no random ticks: every price is set by
a test), and gunicorn serving the page, each a real process on a loopback port. Every wait is
bounded. ``test_screenshots`` writes its pictures to ``artifacts/screenshots/``; with
``UPDATE_SCREENSHOTS=1`` it writes the ones the README shows (``docs/screenshots/``) instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.stack import HEARTBEAT_TIMEOUT, OTHER, PRIMARY, Stack, clock_ms, expected_change, random_walk
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The tracked pictures change only when asked: a test run leaves the work tree clean.
SCREENSHOTS = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "artifacts") / "screenshots"
# Drop the page's socket as a flaky network would, the reconnect 4 s away (full jitter at its top).
DROP_FOR_4S = (
    "const c = window.pledgeClient; c.minReconnectDelay = c.maxReconnectDelay = 4000;"
    " Math.random = () => 1; c._ws.close(4001, 'test drop')"
)

if not CHROMIUM.exists():
    pytest.skip("chromium is not installed at /usr/bin/chromium (make test installs it)", allow_module_level=True)
try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:
    pytest.skip("the playwright package is not installed (requirements-dev.txt)", allow_module_level=True)
if shutil.which("redis-server") is None:
    pytest.skip("redis-server not installed (make test installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=20_000)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, stack):
    """Open the page in a fresh context; records every WebSocket frame the page sends."""
    contexts = []

    def opener(width: int = 1280, height: int = 800, scheme: str = "light") -> tuple[Page, list[str]]:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
        page.goto(stack.url + "/")
        return page, sent

    yield opener
    for context in contexts:
        context.close()


def points(page: Page) -> int:
    return int(page.get_by_test_id("chart").get_attribute("data-points") or 0)


def expect_points(page: Page, count: int, timeout: float = 5_000) -> None:
    expect(page.get_by_test_id("chart")).to_have_attribute("data-points", str(count), timeout=timeout)


def test_screenshots(stack, open_page):
    """Desktop (light) and phone (dark) pictures of the page for the README."""
    last = stack.latest(PRIMARY) or "0.002700"
    for price in random_walk(last, 80, seed=7):
        stack.sim.set_price(PRIMARY, price)
        time.sleep(0.06)
    wait_until(lambda: stack.latest(PRIMARY) == price, 5, what="the last price at the service")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (width, height), scheme in (("desktop", (1280, 800), "light"), ("phone", (390, 844), "dark")):
        page, _ = open_page(width, height, scheme)
        expect(page.get_by_test_id("price")).to_have_text(price)
        expect_points(page, len(stack.history(PRIMARY)))
        page.evaluate("document.fonts.ready")
        page.wait_for_timeout(300)  # let the price flash settle
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_page_shows_price_pushes_and_chart(stack, open_page):
    for price in ("0.002700", "0.002712", "0.002705"):
        stack.push(PRIMARY, price)
    history = stack.history(PRIMARY)

    page, sent = open_page()
    price = page.get_by_test_id("price")
    expect(price).to_have_text("0.002705")
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "live")
    expect_points(page, len(history))
    # The live price is announced to screen readers.
    assert price.locator("xpath=ancestor::*[@aria-live]").count() == 1

    # A new price reaches the page within 2 s, and extends the chart by one point per tick.
    for pushed, new_price in enumerate(("0.002731", "0.002690", "0.002700100"), start=1):
        started = time.monotonic()
        stack.sim.set_price(PRIMARY, new_price)
        expect(price).to_have_text(new_price, timeout=2_000)
        assert time.monotonic() - started < 2.0
        expect_points(page, len(history) + pushed)

    ticks = stack.history(PRIMARY)
    assert points(page) == len(ticks)
    diff, pct = expected_change(ticks[0]["price"], ticks[-1]["price"])
    change = page.get_by_test_id("change")
    expect(change.locator(".diff")).to_have_text(diff)
    expect(change.locator(".pct")).to_have_text(pct)
    expect(page.get_by_test_id("last-tick")).to_have_text(clock_ms(ticks[-1]["ts"]))

    # The crosshair: the tick nearest the pointer, kept through a redraw, hidden on leaving.
    chart = page.get_by_test_id("chart")
    box = chart.bounding_box()
    middle = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 1, middle)
    expect(chart.locator(".hover")).to_have_attribute("visibility", "visible")
    expect(chart.locator(".tip-price")).to_have_text(ticks[0]["price"])
    expect(chart.locator(".tip-time")).to_have_text(clock_ms(ticks[0]["ts"]))
    page.mouse.move(box["x"] + box["width"] - 2, middle)
    expect(chart.locator(".tip-price")).to_have_text(ticks[-1]["price"])
    stack.sim.set_price(PRIMARY, "0.002701")
    expect(chart.locator(".tip-price")).to_have_text("0.002701", timeout=2_000)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 40)
    expect(chart.locator(".hover")).to_have_attribute("visibility", "hidden")

    # The client pings on open and then every HEARTBEAT_TIMEOUT / 4: it outlives the timeout.
    time.sleep(HEARTBEAT_TIMEOUT + 1)
    assert page.evaluate("window.pledgePage.stateLog.map(s => s.state)") == ["connecting", "live"]
    assert sent.count("ping") >= HEARTBEAT_TIMEOUT
    stack.sim.set_price(PRIMARY, "0.002702")
    expect(price).to_have_text("0.002702", timeout=2_000)


def test_reconnects_after_the_service_drops_the_connection(stack, open_page):
    stack.push(PRIMARY, "0.002750")
    page, _ = open_page()
    price = page.get_by_test_id("price")
    expect(price).to_have_text("0.002750")
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "live")
    log_states = "window.pledgePage.stateLog.map(s => s.state)"

    stack.restart_service()  # SIGTERM: the service closes every client with 1001, then a new one starts
    assert "reconnecting" in page.evaluate(log_states)
    stack.service.wait_ready()
    # A price set before the page is back must be in the chart too: pushed or re-read from history.
    stack.push(PRIMARY, "0.002761")
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(price).to_have_text("0.002761", timeout=5_000)
    states = page.evaluate(log_states)
    assert states[-2:] == ["reconnecting", "live"], states

    started = time.monotonic()
    stack.sim.set_price(PRIMARY, "0.002777")
    expect(price).to_have_text("0.002777", timeout=2_000)
    assert time.monotonic() - started < 2.0
    # No hole and no duplicate: exactly the service's history.
    expect_points(page, len(stack.history(PRIMARY)))


def test_symbol_picker_switches_with_the_subscribe_op(stack, open_page):
    stack.push(OTHER, "67012.35")
    stack.push(PRIMARY, "0.002800")
    page, sent = open_page()
    price = page.get_by_test_id("price")
    expect(price).to_have_text("0.002800")

    page.get_by_test_id("symbol-picker").get_by_role("button", name=OTHER).click()
    expect(price).to_have_text("67012.35")
    expect(page.get_by_test_id("symbol")).to_have_text(OTHER)
    expect(page.get_by_test_id("symbol-picker").get_by_role("button", name=OTHER)).to_have_attribute(
        "aria-pressed", "true"
    )
    expect_points(page, len(stack.history(OTHER)))
    ops = [json.loads(frame) for frame in sent if frame.startswith("{")]
    assert {"op": "subscribe", "symbols": [OTHER]} in ops
    assert {"op": "unsubscribe", "symbols": [PRIMARY]} in ops

    # Prices of the other symbol arrive; the unsubscribed one no longer shows.
    stack.sim.set_price(OTHER, "67020.00")
    expect(price).to_have_text("67020.00", timeout=2_000)
    stack.push(PRIMARY, "0.002801")
    stack.push(OTHER, "67019.90")
    expect(price).to_have_text("67019.90", timeout=2_000)
    expect_points(page, len(stack.history(OTHER)))
    assert "#BTC-USDT" in page.url


def test_page_shows_stale_while_the_exchange_is_silent(stack, open_page):
    stack.push(PRIMARY, "0.002900")
    page, _ = open_page()
    badge = page.get_by_test_id("state")
    expect(page.get_by_test_id("price")).to_have_text("0.002900")
    expect(badge).to_have_attribute("data-state", "live")
    stack.sim.control("silent", seconds=4)
    # The service detects the silent exchange and says "price feed interrupted": the page goes
    # stale (keeping the last price), although its own pings are still answered.
    expect(badge).to_have_attribute("data-state", "stale", timeout=10_000)
    expect(page.get_by_test_id("price")).to_have_text("0.002900")
    stack.service.wait_ready(timeout=30)
    stack.sim.set_price(PRIMARY, "0.002901")
    expect(badge).to_have_attribute("data-state", "live", timeout=10_000)
    expect(page.get_by_test_id("price")).to_have_text("0.002901")


def test_reconnect_recovers_missed_prices_in_the_stream_without_rereading_history(stack, open_page):
    """Drop the page's socket, move prices while it is away: on reconnect the server replays
    them (since=), the chart holds every point and the page makes no /price/history request."""
    stack.push(PRIMARY, "0.003100")
    page, _ = open_page()
    price = page.get_by_test_id("price")
    expect(price).to_have_text("0.003100")
    expect_points(page, len(stack.history(PRIMARY)))  # the first open read /price/history
    history_requests: list[str] = []
    socket_urls: list[str] = []
    page.on("request", lambda request: "/price/history" in request.url and history_requests.append(request.url))
    page.on("websocket", lambda ws: socket_urls.append(ws.url))
    # A long backoff, then drop the socket as a flaky network would: prices move meanwhile.
    page.evaluate(DROP_FOR_4S)
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "reconnecting")
    for value in ("0.003101", "0.003099", "0.003105"):
        stack.push(PRIMARY, value)
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(price).to_have_text("0.003105", timeout=5_000)
    expect_points(page, len(stack.history(PRIMARY)))
    assert socket_urls and "since=" in socket_urls[-1], socket_urls
    stack.sim.set_price(PRIMARY, "0.003106")
    expect(price).to_have_text("0.003106", timeout=2_000)
    expect_points(page, len(stack.history(PRIMARY)))
    chart = page.evaluate("window.pledgePage.page.ticks.map(t => t.seq)")
    assert chart == [str(t["seq"]) for t in stack.history(PRIMARY)][-len(chart) :]
    assert history_requests == [], history_requests


def test_a_page_left_open_follows_a_sequence_reset_and_recovery_across_one(stack, open_page):
    """The exchange restarts the sequence (a lower seq, 35 s later by its clock): the open page
    shows the next price at once, without a reload; a reconnect holding a position from before
    a reset gets "not recovered" and the new sequence's snapshot. Last in the module: the
    simulator's clock stays ahead afterwards."""
    stack.push(PRIMARY, "0.003200")
    page, _ = open_page()
    price, seq = page.get_by_test_id("price"), page.get_by_test_id("seq")
    expect(price).to_have_text("0.003200")
    assert int(seq.inner_text()) > 1000

    stack.sim.control("sequence-reset", symbol=PRIMARY, start=1)
    stack.push(PRIMARY, "0.003150")  # returns once the service serves it
    served = time.monotonic()
    expect(price).to_have_text("0.003150", timeout=2_000)
    assert time.monotonic() - served < 2.0
    expect(seq).to_have_text("1")
    expect_points(page, 1)  # the chart starts again with the new sequence
    stack.sim.set_price(PRIMARY, "0.003151")
    expect(price).to_have_text("0.003151", timeout=2_000)
    expect_points(page, 2)

    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(str(payload))))
    page.evaluate(DROP_FOR_4S)
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "reconnecting")
    stack.sim.control("sequence-reset", symbol=PRIMARY, start=1)
    stack.push(PRIMARY, "0.003160")
    expect(page.get_by_test_id("state")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(price).to_have_text("0.003160", timeout=5_000)
    expect(seq).to_have_text("1")
    statuses = [json.loads(frame) for frame in received if '"code":2' in frame]
    assert statuses == [{"code": 2, "data": "not recovered", "symbol": PRIMARY}], statuses
    stack.sim.set_price(PRIMARY, "0.003161")
    expect(price).to_have_text("0.003161", timeout=2_000)
