"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium, Playwright.

What this proves that the kernel-side tests cannot: the ipywidgets front end renders
the panels, and a choice made in the rendered dropdown reaches the kernel and changes
which profile the next ``%%llm`` cell uses.

The notebooks are copied (with ``config/``) to a temporary folder first; the lab edits
the copies only. Screenshots go to ``tests/artifacts/`` (git-ignored). Without Chromium
or Playwright the tests skip — except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    ARTIFACTS,
    JupyterLab,
    LabNotebook,
    cell_index,
    chromium_context,
    copy_demo_project,
    require_browser,
    running_lab,
)

pytestmark = pytest.mark.slow

PICKER_NOTEBOOK = "02_providers_and_picker.ipynb"
DASHBOARD_NOTEBOOK = "03_usage_dashboard.ipynb"


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_browser()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_demo_project(tmp_path_factory.mktemp("lab-root"))


@pytest.fixture(scope="module")
def lab(
    chromium: str, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterLab]:
    with running_lab(project, tmp_path_factory.mktemp("lab-home")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(tmp_path_factory.mktemp("chromium-profile"), chromium) as context:
        yield context


@pytest.fixture
def page(browser: Any, lab: JupyterLab) -> Iterator[Any]:
    page = browser.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        page.close()


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def _selected(select: Any) -> str:
    text: str = select.evaluate("s => s.options[s.selectedIndex].text")
    return text.replace("\xa0", " ")  # ipywidgets writes option labels with nbsp


def test_picker_choice_in_the_browser_switches_the_next_llm_cell(
    page: Any, lab: JupyterLab, project: Path
) -> None:
    source = project / PICKER_NOTEBOOK
    picker_at = cell_index(source, "ProviderPicker()")
    ask_at = cell_index(source, "%%llm\nWho are you?")
    assert ask_at > picker_at

    nb = LabNotebook(page)
    nb.open(lab, PICKER_NOTEBOOK)
    nb.run_range(picker_at)
    picker = nb.run(picker_at)

    # The panel is drawn by the ipywidgets front end: a real <select> with the profiles.
    dropdown = picker.locator(".widget-dropdown", has_text="Profile").locator("select").first
    dropdown.wait_for(state="visible")
    options = dropdown.locator("option").all_text_contents()
    fast = [o for o in options if o.startswith("demo_fast")]
    assert fast, options
    assert _selected(dropdown).startswith("demo —"), _selected(dropdown)

    dropdown.select_option(label=fast[0])
    # The kernel answers the choice in the panel's status line: wait for that round trip.
    picker.locator(".widget-html", has_text="using demo_fast").wait_for(state="visible")

    answer = nb.run(ask_at)
    text = answer.locator(".jp-OutputArea").inner_text()
    assert "mock-2 here" in text, text
    assert re.search(r"demo_fast · mock-2 · ~\d+→\d+ tokens", text), text
    assert "mock-1" not in text, text

    picker.scroll_into_view_if_needed()
    shot = _screenshot(page, "picker.png")
    assert shot.stat().st_size > 10_000


def test_dashboard_renders_its_plot_and_table_in_the_browser(
    page: Any, lab: JupyterLab, project: Path
) -> None:
    source = project / DASHBOARD_NOTEBOOK
    dashboard_at = cell_index(source, "UsageDashboard(")

    nb = LabNotebook(page)
    nb.open(lab, DASHBOARD_NOTEBOOK)
    nb.run_range(dashboard_at)
    dashboard = nb.run(dashboard_at)

    # The plot is an Image widget: a decoded PNG with a real size, not a broken icon.
    image = dashboard.locator(".jupyter-widgets img, img.widget-image").first
    image.wait_for(state="visible")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 100", arg=image.element_handle()
    )
    width = image.evaluate("img => img.naturalWidth")
    assert width > 100

    # The summary table (an HTML widget) has a row per profile the notebook called
    # (the cell groups by profile), with dollar costs.
    table = dashboard.locator(".widget-html table").first
    table.wait_for(state="visible")
    rows = [r.split("\t") for r in table.inner_text().splitlines()]
    # A styled table (llmnb.usage.table): units in the headers, the index name ("profile")
    # on a header row of its own.
    header = rows[0]
    assert "calls" in header and any(c.startswith("cost") for c in header), header
    assert any(r[0] == "profile" for r in rows[:2]), rows[:2]
    profiles = {r[0] for r in rows[1:]}
    assert {"demo", "demo_fast", "router", "openai_http"} <= profiles, rows
    assert any(cell.startswith("$") for r in rows[1:] for cell in r), rows

    # A taller window, the panel's top edge at the top: totals, plot and table in one shot.
    page.set_viewport_size({"width": 1280, "height": 1500})
    dashboard.locator(".jp-OutputArea").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    shot = _screenshot(page, "dashboard.png")
    assert shot.stat().st_size > 10_000
