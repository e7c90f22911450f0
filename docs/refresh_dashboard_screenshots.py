"""Take the screenshots of docs/dashboard.md: `tl-traits serve` over a run folder, driven in headless Chromium.

    python docs/refresh_dashboard_screenshots.py [RUN_FOLDER]      # default: out (what `make demo` writes)

Needs the [serve] extra, playwright (dev extra) and Debian's chromium. Writes docs/dashboard-chat.png,
docs/dashboard-steer.png and docs/dashboard-browse.png (1366 px wide, a laptop's screen).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHAT = ["How was your day?", "I failed my driving test this morning."]
STEER_PROMPT = "How was your day?"
STEER_VECTOR, STEER_STRENGTH = "emotion-joy.mean_diff", 0.3


def main(folder: str = "out") -> None:
    from playwright.sync_api import sync_playwright

    from tl_traits.app.serve.dashboard import build_dashboard
    from tl_traits.app.serve.server import BackgroundServer
    from tl_traits.core.progress import Stages

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    with Stages() as stages:
        dashboard = build_dashboard([folder], stages=stages)
    with BackgroundServer(dashboard) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 860})
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        for i, message in enumerate(CHAT, start=1):
            page.fill("#chat-input", message)
            page.press("#chat-input", "Enter")
            page.wait_for_selector(f".msg.assistant:nth-of-type({2 * i})[data-done=true]", timeout=300_000)
        time.sleep(0.5)
        page.screenshot(path=str(DOCS / "dashboard-chat.png"), full_page=True)

        page.click("button[data-tab=steer]")
        page.fill("#steer-input", STEER_PROMPT)
        if not dashboard.catalog.defaults.get("steering") and STEER_VECTOR in dashboard.catalog.vectors:
            page.select_option("#steer-vector", STEER_VECTOR)  # no run setting to start from: joy at STEER_STRENGTH
            page.fill("#steer-strength-value", str(STEER_STRENGTH))
        page.click("#steer-run")
        page.wait_for_selector("#steer-steered[data-scored=true]", timeout=600_000)
        time.sleep(0.5)
        page.screenshot(path=str(DOCS / "dashboard-steer.png"), full_page=True)

        page.click("button[data-tab=browse]")
        page.wait_for_selector(".example")
        note = page.locator("#set-filters select[data-label=note]")
        if note.count():
            note.select_option("harmful")
            time.sleep(1)
        page.locator(".example button").first.click()
        page.wait_for_selector("#example[data-done=true]", timeout=300_000)
        time.sleep(0.5)
        page.screenshot(path=str(DOCS / "dashboard-browse.png"))
        browser.close()
    print(f"screenshots: {DOCS}/dashboard-{{chat,steer,browse}}.png")


if __name__ == "__main__":
    main(*sys.argv[1:2])
