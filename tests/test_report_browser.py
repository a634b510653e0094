"""The report as a person sees it: report.html in headless Chromium (Debian chromium + chromedriver).

Skipped when the browser is not installed, unless CNNBENCH_REQUIRE_BROWSER=1 (set by .ci/run).
"""

from __future__ import annotations

import os

import pytest

from cnnbench.report import build_report
from cnnbench.report.fig_curves import curve_data
from cnnbench.rundir.tables import read_metrics, read_steps
from support.browser import find_browser, inspect, open_page
from support.synthetic_study import SyntheticStudy, write_synthetic_study

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if find_browser() is None:
    if os.environ.get("CNNBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail("CNNBENCH_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed", pytrace=False)
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)

SPEC = SyntheticStudy(
    models=("lenet5", "resnet18", "vgg11"),
    failed=("mnist__vgg11__cosine__s1",),
    missing=("mnist__resnet18__plateau__s1",),
    short=("resnet18",),  # 40 optimiser steps, less than an epoch: curves against steps
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    study = write_synthetic_study(tmp_path_factory.mktemp("browser") / "study", SPEC)
    return build_report(study)


def test_page_renders_every_figure_without_errors_or_network(report, tmp_path):
    shot = tmp_path / "report.png"
    with open_page(report.html) as driver:
        check = inspect(driver, shot)
        figures = _figure_data(driver)
    assert check.title.startswith("cnnbench study report")
    assert check.images == len(report.figures) > 20
    assert check.broken_images == []
    assert check.console_errors == []
    assert check.requests == []  # self-contained: opens from disk or a mail attachment
    assert check.table_rows["results-table"] == len(SPEC.models)
    assert check.table_rows["runs-failed"] == 2
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert check.page_height > 3000  # the whole report, not a blank page
    # the dataset section shows the augmentation figure (the MNIST study's Figure 32)
    augmentation = figures["figure-augmentation"]
    assert (augmentation["rows"], augmentation["draws"], augmentation["seed"]) == ("10", "4", "0")
    assert int(augmentation["width"]) > 100  # decoded and drawn, not a broken image
    # every model's curve figure has more than one training point in each run it draws, read from the
    # figure's data and checked against the run files it was drawn from
    curves = {k: v for k, v in figures.items() if k.startswith("figure-curves-")}
    assert sorted(curves) == [f"figure-curves-{m}" for m in sorted(SPEC.models)]
    axes = set()
    for data in curves.values():
        runs, xs, points = data["runs"].split(","), data["curve-x"].split(","), data["curve-points"].split(",")
        assert len(runs) == len(xs) == len(points) == len(SPEC.schedules)
        for run_id, x, n in zip(runs, xs, points, strict=True):
            run_dir = report.html.parent / "runs" / run_id
            drawn = curve_data(read_metrics(run_dir), read_steps(run_dir))
            assert (drawn.x, drawn.points) == (x, int(n)) and drawn.points > 1, run_id
            axes.add(x)
    assert axes == {"step", "epoch"}  # resnet18 trained 40 steps, the others 9-12 epochs


def test_results_table_sorts_on_a_header_click(report):
    from selenium.webdriver.common.by import By

    with open_page(report.html) as driver:
        table = driver.find_element(By.ID, "results-table")
        headers = table.find_elements(By.CSS_SELECTOR, "thead th")
        labels = [h.text.strip() for h in headers]
        col = next(i for i, label in enumerate(labels) if label.startswith("Test acc"))

        def column():
            cells = table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({col + 1})")
            return [float(c.get_attribute("data-sort")) for c in cells]

        headers[col].click()
        ascending = column()
        assert ascending == sorted(ascending)
        assert headers[col].get_attribute("aria-sort") == "ascending"
        headers[col].click()
        descending = column()
        assert descending == sorted(ascending, reverse=True)
        best = table.find_element(By.CSS_SELECTOR, f"tbody tr:first-child td:nth-child({col + 1})")
        assert "best" in best.get_attribute("class").split()  # the best value is marked


def _figure_data(driver) -> dict[str, dict[str, str]]:
    """id -> data-* attributes (and the rendered width) of every figure of the page that has an id."""
    script = """
        const out = {};
        for (const f of document.querySelectorAll('figure[id]')) {
            const data = {width: String(f.querySelector('img').naturalWidth)};
            for (const a of f.attributes) if (a.name.startsWith('data-')) data[a.name.slice(5)] = a.value;
            out[f.id] = data;
        }
        return out;
    """
    return driver.execute_script(script)
