"""The dashboard in a real browser: Debian's Chromium, headless, driven over the DevTools protocol by Playwright (as the
report's browser test), against uvicorn on 127.0.0.1 with the tiny model. A chat streams tokens and draws its chart,
the strength slider changes the steered answer (0 gives the unsteered text), the prompt picker filters and projects,
markup in prompts and answers stays text; screenshots are kept as test artifacts."""

from __future__ import annotations

import shutil

import pytest

from .conftest import MARKUP

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it where apt works)"
)


def texts(page, which: str) -> str | None:
    """The steering view's answer as the server sent it (the column keeps it once the answer is done)."""
    return page.get_attribute(f"#steer-{which}", "data-text")


def test_chat_steer_and_browse_in_headless_chromium(live_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) drives Chromium")
    requests, errors = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop's screen
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(live_server.url)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)

            # chat: the answer streams in as tokens, each with its bars, and the chart draws one line per trait
            page.fill("#chat-input", "Hello <script>window.injected = 1</script><b>there</b>")
            page.press("#chat-input", "Enter")
            page.wait_for_selector(".msg.assistant[data-done=true]", timeout=60_000)
            assert page.locator(".msg.assistant .tok").count() >= 1
            assert page.locator(".msg.assistant .tok .bar").count() == 2 * page.locator(".msg.assistant .tok").count()
            assert page.locator("#chat-chart svg polyline").count() == 2  # joy and refusal, the run's two traits
            assert "<script>window.injected = 1</script><b>there</b>" in page.inner_text(".msg.user")
            page.screenshot(path=str(tmp_path / "dashboard-chat.png"))

            # steer: strength 0 is the unsteered text; moving the slider changes the steered answer
            page.click("button[data-tab=steer]")
            # the box starts at the run's chosen strength, to 3 figures (and within the server's limit)
            chosen, limit = page.evaluate(
                "fetch('/api/info').then(r => r.json())"
                ".then(i => [i.defaults.steering.strength, i.limits.max_strength])"
            )
            assert float(page.input_value("#steer-strength-value")) == min(float(f"{abs(chosen):.3g}"), limit)
            shown = page.evaluate(
                "import('/static/panels.js').then(m => [m.presetStrength(-0.0573574), m.presetStrength(1.23456), "
                "m.clampStrength(78400, 10), m.clampStrength('x', 10)])"
            )
            assert shown == [0.0574, 1.23, 10, 0]
            page.fill("#steer-input", "How was your day?")
            page.fill("#steer-strength-value", "0")
            page.click("#steer-run")
            page.wait_for_selector("#steer-steered[data-done=true]", timeout=60_000)
            unsteered, at_zero = texts(page, "unsteered"), texts(page, "steered")
            assert at_zero == unsteered
            page.eval_on_selector("#steer-strength", "el => { el.max = '4'; }")
            page.focus("#steer-strength")
            page.keyboard.press("End")  # the slider to its far end: input and change fire as for a drag
            assert page.input_value("#steer-strength-value") == "4"
            page.wait_for_selector("#steer-steered[data-done=true]", timeout=60_000)
            assert texts(page, "steered") != at_zero and texts(page, "unsteered") == unsteered
            assert page.locator("#steer-steered .chart svg polyline").count() == 2
            page.wait_for_selector("#steer-steered[data-scored=true]", timeout=120_000)  # then both are judged
            assert "steering score" in page.inner_text("#steer-steered .scores")
            assert "steering score" in page.inner_text("#steer-unsteered .scores")
            page.screenshot(path=str(tmp_path / "dashboard-steer.png"), full_page=True)
            at_four = texts(page, "steered")  # a strength off the slider's 0.01 grid (a run's chosen one) runs too
            page.eval_on_selector("#steer-strength-value", "el => { el.value = '0.0573574'; }")  # as a preset is set
            page.click("#steer-run")
            page.wait_for_selector("#steer-steered[data-scored=true]", timeout=120_000)
            assert texts(page, "steered") != at_four
            assert "Steered (strength 0.0574," in page.inner_text("#steer-steered h3")  # shown to 3 figures

            # prompt sets: the run's answers, filtered by search; markup in a response is shown as text
            page.click("button[data-tab=browse]")
            page.wait_for_selector(".example")
            page.fill("#set-search", "onerror")
            sync_api.expect(page.locator(".example")).to_have_count(1)  # (the page's CSP forbids eval'd predicates)
            assert page.inner_text(".example pre.response") == MARKUP
            page.click(".example button")
            page.wait_for_selector("#example[data-done=true]", timeout=60_000)
            assert page.locator("#example .tok").count() > 10 and page.locator("#example svg polyline").count() == 2
            page.screenshot(path=str(tmp_path / "dashboard-browse.png"))

            assert page.evaluate("window.injected") is None  # no script from a prompt, a token or a response ran
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits the width
            assert errors == []
            assert all(url.startswith(live_server.url) for url in requests), requests  # nothing from elsewhere
        finally:
            browser.close()
    print(f"\nscreenshots: {tmp_path}")
