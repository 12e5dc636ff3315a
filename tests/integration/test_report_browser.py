"""The HTML report in a real Chromium (Debian's, driven by Playwright as in tests/arena/test_browser.py): it
renders with no console errors, its figures load from inline data, every table sorts by any column, and on a
phone-sized viewport the page itself does not scroll sideways (the tables scroll inside their box)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mova_eval.report import Report, write_report
from mova_eval.report.plots import all_figures
from mova_eval.report.tables import breakdowns, layout_table
from tests.unit.test_report_tables import ModelRuns, ReportData, info, model_records

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    data = ReportData([ModelRuns("verse", m, [info(m)], model_records(m, b))
                       for m, b in (("ours-A", 4.0), ("ours-B", 4.4), ("ours-C", 3.5))])
    main = layout_table(data, "mova_table4", published=True)
    bds = breakdowns(data, [c.metric for c in main.columns])
    report = Report("mova-eval report: test", "0", [], data, main, bds, all_figures(main, bds))
    out = tmp_path_factory.mktemp("html")
    write_report(report, out, ["html"])
    return out / "report.html"


@pytest.fixture
def browser():
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def _open(browser, path, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:"))
            else None)
    page.goto(path.as_uri())
    page.wait_for_function("window.movaReportReady === true", timeout=10_000)
    return page, problems


def _groups(page):
    """The IS column's data-v values, per row group (tbody)."""
    return page.eval_on_selector_all('table[data-table="mova_table4"] tbody.rows',
                                     "bs => bs.map(b => Array.from(b.rows).map(r => r.cells[1].getAttribute('data-v')))")


def _column(page, table, idx):
    return page.eval_on_selector_all(f'table[data-table="{table}"] tbody.rows tr',
                                     f"rows => rows.map(r => r.cells[{idx}].getAttribute('data-v'))")


def test_renders_and_sorts(browser, report_file, tmp_path):
    page, problems = _open(browser, report_file, 1280, 900)
    assert page.locator("h1").inner_text().startswith("mova-eval report")
    imgs = page.eval_on_selector_all("img", "xs => xs.map(x => [x.complete, x.naturalWidth])")
    assert imgs and all(done and w > 0 for done, w in imgs)
    assert page.locator('table[data-table="mova_table4"] td.best').count() >= 7

    # sort the IS column (index 1): ascending, then descending; rows sort within their group (ours / published)
    head = page.locator('table[data-table="mova_table4"] thead th').nth(1)
    before = _column(page, "mova_table4", 0)
    head.click()
    assert head.get_attribute("aria-sort") == "ascending"
    groups = _groups(page)
    for values in groups:
        nums = [float(v) for v in values if v]
        assert nums == sorted(nums)
        assert all(v for v in values[: len(nums)])  # empty cells last
    head.click()
    assert head.get_attribute("aria-sort") == "descending"
    groups = _groups(page)
    for values in groups:
        nums = [float(v) for v in values if v]
        assert nums == sorted(nums, reverse=True)
    assert _column(page, "mova_table4", 0) != before
    # the keyboard works too (Enter on a focused header)
    model_head = page.locator('table[data-table="mova_table4"] thead th').nth(0)
    model_head.focus()
    page.keyboard.press("Enter")
    assert model_head.get_attribute("aria-sort") == "ascending"
    # provenance blocks open
    page.locator("details summary").first.click()
    assert "config hash" in page.locator("details").first.inner_text()
    shot = Path(os.environ.get("MOVA_EVAL_SCREENSHOTS", tmp_path)) / "report-desktop.png"
    page.screenshot(path=str(shot), full_page=True)
    assert not problems, problems


def test_phone_viewport(browser, report_file, tmp_path):
    page, problems = _open(browser, report_file, 390, 844)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px on a phone"
    box = page.locator(".scroll").first
    assert box.evaluate("e => e.scrollWidth > e.clientWidth")  # the wide table scrolls inside its box
    shot = Path(os.environ.get("MOVA_EVAL_SCREENSHOTS", tmp_path)) / "report-phone.png"
    page.screenshot(path=str(shot), full_page=False)
    assert not problems, problems
