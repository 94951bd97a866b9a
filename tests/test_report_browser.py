"""The HTML report as a user sees it: `snakemake --report` on the tiny run, opened in headless Chromium
(Debian's `chromium`, driven by Playwright). Every figure the run made is listed under its category, opens as an
image that really loads, has a caption, and the page logs no error. Screenshots are kept as test artifacts in
$PERCEPT_TEST_ARTIFACTS (default: .test-artifacts/ in the checkout).

CI installs chromium and sets PERCEPT_REQUIRE_CHROMIUM=1, so there a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("PERCEPT_TEST_ARTIFACTS", REPO / ".test-artifacts"))


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    why = "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        why = "playwright is not installed (pip install -e '.[test]')"
    if os.environ.get("PERCEPT_REQUIRE_CHROMIUM"):
        pytest.fail(f"PERCEPT_REQUIRE_CHROMIUM is set but {why}")
    pytest.skip(why)


def figure_categories(workdir: Path) -> dict[str, str]:
    """{figure png: report category} from the one figure table, percept.plan's ``Plan.figures`` of the tiny config
    (rules/figures.smk declares each row's PNG as report(results/figures/<name>.png, category=<its category>))."""
    from percept.config import load_config
    from percept.plan import Plan

    out = {}
    for name, row in Plan(load_config(REPO / "tests" / "config.yaml")).figures().items():
        path = f"results/figures/{name}.png"
        if (workdir / path).exists():
            out[path] = row["category"]
    return out


def test_report_renders_every_figure_in_chromium(tiny_run, tiny_report):
    executable = _browser()
    from playwright.sync_api import sync_playwright

    workdir, _, _ = tiny_run
    report = tiny_report
    figures = figure_categories(workdir)
    made = {str(p.relative_to(workdir)) for p in (workdir / "results" / "figures").glob("*.png")}
    assert made and set(figures) == made, f"figures without a report() entry: {made - set(figures)}"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(report.as_uri())
            page.get_by_text("Results", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "report-home.png"))
            for path, category in sorted(figures.items(), key=lambda kv: kv[1]):
                page.goto(report.as_uri())
                page.get_by_text(category, exact=True).first.click()
                row = page.locator("tr", has_text=path)
                row.wait_for(timeout=10_000)
                row.locator('[iconname="eye"]').click()
                img = page.locator("img[src^='data:image/png']").last
                img.wait_for(timeout=10_000)
                width = img.evaluate("e => e.complete ? e.naturalWidth : 0")
                assert width > 300, f"{path}: the image did not load in the report (naturalWidth {width})"
                page.screenshot(path=str(ARTIFACTS / f"report-{Path(path).stem}.png"))
                # the caption (report/*.rst) is shown behind the information icon
                page.goto(report.as_uri())
                page.get_by_text(category, exact=True).first.click()
                page.locator("tr", has_text=path).locator('[iconname="information-circle"]').click()
                page.wait_for_function("() => document.body.innerText.toUpperCase().includes('DESCRIPTION')",
                                       timeout=10_000)
                caption = page.inner_text("body").upper().split("DESCRIPTION", 1)[1]
                assert len(caption.split()) > 15, f"{path}: no caption shown"
        finally:
            browser.close()
    assert not errors, errors
