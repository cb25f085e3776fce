"""The demo's Slack web page in a real browser: approve the OOM incident's remediation.

Playwright drives Debian's Chromium (package ``chromium``, headless; Playwright's own browser
downloads are never used). The demo stack runs in-process — sandbox cluster, Slack emulator,
the real bot and the page — with the demo policy, in which alice approves and bob does not.
A missing Chromium or Playwright skips these tests on a developer machine and fails them
under ``CI=true``.

``SAVE_DEMO_SCREENSHOT=1`` also writes ``docs/demo-page.png`` (the README's picture).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.demo import DemoStack, demo_stack, fire, wait_for_threads
from sandbox.scenario import load_scenario
from tests.e2e.conftest import require_binary

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SCENARIOS = ("cart-oomkilled", "checkout-imagepull", "search-pending", "fraud-scorer-panic")
SCREENSHOT = ROOT / "docs" / "demo-page.png"
WAIT_MS = 60_000  # upper bound only: the approval normally completes in a few seconds
FIX = "set resources deployment/cart"
UNDO = "rollout undo deployment/cart"


def _playwright() -> Any:
    try:
        from playwright import async_api
    except ImportError:
        message = "playwright is not installed (pip install playwright; dev dependency)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    return async_api


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium under Playwright."""
    api = _playwright()
    executable = require_binary("chromium", "chromium")
    async with api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoStack]:
    """The demo stack with a few scenarios' alerts fired and their threads posted."""
    scenarios = [load_scenario(ROOT / "scenarios" / f"{name}.yaml") for name in SCENARIOS]
    async with demo_stack(scenarios, tmp_path / "data", embed_backend="hash") as stack:
        await fire(stack.bot_url, [s.webhook for s in scenarios])
        await wait_for_threads(stack.slack, len(scenarios), replies=1, within=60)
        yield stack


def proposal(thread: Any, command: str) -> Any:
    """The action message proposing ``command`` (not the result reply that repeats it)."""
    return thread.locator(".message", has_text="Proposed remediation").filter(has_text=command)


async def open_oom_thread(browser: Any, demo: DemoStack) -> tuple[Any, Any]:
    """Open the page and the cart OOM incident's thread; return (page, thread pane)."""
    page = await browser.new_page(viewport={"width": 1440, "height": 1000})
    await page.goto(demo.page_url)
    parent = page.locator("#messages .message", has_text="shop/Deployment/cart")
    await parent.filter(has_text="KubePodCrashLooping").locator(".replies").click()
    thread = page.locator("#thread-messages")
    # The rules analyzer proposes both fixes once the investigation is done.
    await _playwright().expect(proposal(thread, FIX)).to_be_visible(timeout=WAIT_MS)
    return page, thread


async def test_alice_approves_the_oom_fix_and_the_thread_reports_it_verified(
    browser: Any, demo: DemoStack
) -> None:
    expect = _playwright().expect
    page, thread = await open_oom_thread(browser, demo)
    action = proposal(thread, FIX)

    # bob is not an approver: the bot refuses him in an ephemeral message, nothing runs.
    await page.select_option("#user", "U0BOB")
    await action.get_by_role("button", name="Approve").click()
    await expect(page.locator("#ephemeral .message")).to_contain_text(
        "You may not decide", timeout=WAIT_MS
    )
    await expect(page.locator("#ephemeral")).to_contain_text("Only visible to you")

    await page.select_option("#user", "U0ALICE")
    await action.get_by_role("button", name="Approve").click()
    await expect(action).to_contain_text("Executed and verified", timeout=WAIT_MS)
    report = thread.locator(".message", has_text="verify:").last
    await expect(report).to_contain_text("Executed and verified", timeout=WAIT_MS)
    await expect(report).to_contain_text("256Mi → 512Mi")
    await expect(action.get_by_role("button", name="Approve")).to_have_count(0)

    # The page only clicked; the bot did the rest: the sandbox cluster really changed.
    deployment = demo.cluster.get_object("Deployment", "shop", "cart")
    assert deployment is not None
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "512Mi"
    clicks = [i for i in demo.page.sent if i.payload["type"] == "block_actions"]
    assert [(i.payload["user"]["id"], i.status) for i in clicks] == [
        ("U0BOB", 200),
        ("U0ALICE", 200),
    ]

    if os.environ.get("SAVE_DEMO_SCREENSHOT") == "1":
        await page.locator("#messages .message.open").scroll_into_view_if_needed()
        await report.scroll_into_view_if_needed()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT))


async def test_reject_modal_shows_the_bots_errors_then_rejects(
    browser: Any, demo: DemoStack
) -> None:
    expect = _playwright().expect
    page, thread = await open_oom_thread(browser, demo)
    action = proposal(thread, UNDO)
    await action.get_by_role("button", name="Reject").click()

    modal = page.locator("#overlay .modal-view")
    await expect(modal).to_contain_text("Reject remediation", timeout=WAIT_MS)
    await modal.get_by_role("button", name="Reject").click()  # no reason typed
    await expect(modal.locator(".error")).to_contain_text("Say in a few words why")

    await modal.locator("textarea").fill("the image rollback loses the cache fix")
    await modal.get_by_role("button", name="Reject").click()
    await expect(modal).to_have_count(0, timeout=WAIT_MS)
    await expect(action).to_contain_text("Rejected", timeout=WAIT_MS)
    await expect(action).to_contain_text("the image rollback loses the cache fix")
    submissions = [i for i in demo.page.sent if i.payload["type"] == "view_submission"]
    assert len(submissions) == 2
    assert '"response_action":"errors"' in submissions[0].body.replace(" ", "")
