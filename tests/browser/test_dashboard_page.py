"""The dashboard in Chromium: the plot grid leaves no empty cell at any width."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, expect

from labelloop import review
from test_calibrate_workflow import overconfident_project

pytestmark = pytest.mark.browser

# Every row of plots: its figures' left and right edges, and the grid's own width.
ROWS = """() => {
  const grid = document.querySelector('.plots');
  const box = grid.getBoundingClientRect();
  const rows = {};
  for (const figure of grid.querySelectorAll('figure.plot')) {
    const r = figure.getBoundingClientRect();
    (rows[Math.round(r.top)] ??= []).push([r.left, r.right]);
  }
  return {left: box.left, right: box.right, rows: Object.values(rows)};
}"""


@pytest.mark.parametrize("extra_plots", [0, 1])
def test_plot_rows_fill_the_grid(make_project, fast_password_hashing, page: Page, extra_plots):
    from labelloop.server import create_app
    from labelloop.testing.server import serve_app

    project = overconfident_project(make_project)
    folder = project.path / "plots"
    project.calibrate(budget=0.3, plots_dir=folder)
    for i in range(extra_plots):  # e.g. learning curves saved beside the calibration plots
        shutil.copy(folder / "reliability.png", folder / f"curves-{i}.png")
    review.add_user(project, "admin", role="admin", password="admin-password")
    with serve_app(create_app(project)) as base:
        page.goto(f"{base}/login?next=/dashboard")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "admin-password")
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{base}/dashboard")
        expect(page.locator("figure.plot")).to_have_count(3 + extra_plots)
        expect(page.locator("#calibration-plots")).to_contain_text("threshold")
        for width in (1400, 1000, 720, 420):
            page.set_viewport_size({"width": width, "height": 900})
            layout = page.evaluate(ROWS)
            assert sum(len(row) for row in layout["rows"]) == 3 + extra_plots
            for row in layout["rows"]:
                # The row starts at the grid's left edge and ends at its right edge.
                assert abs(min(left for left, _ in row) - layout["left"]) <= 1, (width, layout)
                assert abs(max(right for _, right in row) - layout["right"]) <= 1, (width, layout)
