"""The main job's report page: built from files alone, and rendered in headless Chromium with no outside requests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tl_traits.app.report import PAGE_SIZE, ReportError, build_report, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_needs_a_finished_run(tmp_path):
    with pytest.raises(ReportError, match="tl-traits run --out"):
        build_report(tmp_path)


def test_report_sections_and_a_single_circuitsvis_bundle(tiny_run_dir):
    page = build_report(tiny_run_dir).html
    for heading in (
        "Overview",
        "emotion/joy",
        "alignment/refusal",
        "Methods",
        "Steering",
        "Group comparison",
        "Per-token projections",
        "Prompt browser",
    ):
        assert f">{heading}" in page, heading
    assert page.count("var CircuitsVis") == 1  # the 1.3 MB bundle once, however many token views
    assert page.count("CircuitsVis.render(") >= 2
    assert page.count("data:image/png;base64,") == 6  # layers x2, sweep x2, groups by judge and by note
    assert "<script src=" not in page and "sourceMappingURL" not in page
    # the reader can check each judge against the text: every example answer carries its three scores
    assert "steering score" in page and page.count("<td class='scores'>") >= 4 and "rel. " in page


def _browser_copy(tiny_run_dir: Path, tmp_path: Path, n: int) -> Path:
    """A copy of the run whose request set has n rows, one of them carrying markup in its response."""
    out = tmp_path / "out"
    shutil.copytree(tiny_run_dir, out)
    rows = [json.loads(x) for x in (out / "results" / "requests.jsonl").read_text().splitlines()]
    many = []
    for i in range(n):
        row = dict(
            rows[i % len(rows)],
            id=f"x{i:03d}",
            group="refused" if i % 3 == 0 else "answered",
            note="harmful: test" if i % 3 == 0 else "benign: test",
        )
        many.append(row)
    many[1]["response"] = "</script><script>window.injected = 1</script><b>bold?</b>"
    (out / "results" / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in many))
    write_report(out)
    return out / "report.html"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it where apt works)"
)
def test_report_renders_offline_in_headless_chromium(tiny_run_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) drives Chromium")
    report = _browser_copy(tiny_run_dir, tmp_path, 120)
    requests, errors = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("networkidle")
        try:
            assert requests == [report.as_uri()]  # nothing outside the page itself
            assert errors == []
            assert page.evaluate("window.injected") is None  # response text stays text
            assert len(page.inner_text("body")) > 2000
            # every plot decoded, every circuitsvis view rendered into its div
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 100)")
            rendered = page.evaluate(
                "[...document.querySelectorAll('[id^=circuits-vis]')].map(d => d.childElementCount)"
            )
            assert rendered and all(n > 0 for n in rendered)
            # the prompt browser: 120 prompts paginate by PAGE_SIZE; filters narrow and reset the page
            assert page.locator(".card").count() == PAGE_SIZE
            assert page.inner_text("#page-label") == "page 1 of 3"
            page.click("#next")
            assert page.inner_text("#page-label") == "page 2 of 3"
            assert page.locator(".card").first.inner_text().startswith("x050")
            page.select_option("#f-group", "refused")
            assert page.inner_text("#f-count") == "40 of 120 prompts"
            assert page.inner_text("#page-label") == "page 1 of 1" and not page.is_visible("#pager")
            page.select_option("#f-group", "all")
            page.select_option("#f-note", "benign")
            assert page.inner_text("#f-count") == "80 of 120 prompts"
            page.fill("#f-text", "bold?")
            assert page.locator(".card").count() == 1
            assert "</script><script>window.injected = 1</script>" in page.locator(".card pre").nth(1).inner_text()
        finally:
            browser.close()
