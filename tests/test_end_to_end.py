"""One real study through every layer — data, models, engine, speed, analysis, report — checked in a browser."""

from __future__ import annotations

import csv
import json
import os

import pytest

from conftest import run_cli
from support.browser import check_page, find_browser


@pytest.mark.slow
@pytest.mark.browser
def test_a_real_study_renders_in_a_real_browser(tmp_path, isolated_cache):
    if find_browser() is None:
        if os.environ.get("CNNBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("CNNBENCH_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromedriver are not installed")
    out = tmp_path / "study"
    run_cli(
        "run",
        "--preset",
        "none",
        "--data",
        "synthetic",
        "--models",
        "lenet5,squeezenet1_1",
        "--schedules",
        "cosine,plateau",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--lr",
        "3e-3",
        "--max-train-samples",
        "640",
        "--embed-max-points",
        "200",
        "--onnx",
        "--out",
        str(out),
        "--no-progress",
    )
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(r["onnx_latency_ms"] and r["cpu_latency_ms"] for r in rows)
    analysed = [p.parent.name for p in (out / "runs").glob("*/analysis.json")]
    assert sorted(name.split("__")[1] for name in analysed) == ["lenet5", "squeezenet1_1"]  # best run per model
    analysis = json.loads((out / "runs" / analysed[0] / "analysis.json").read_text())
    assert {"kmeans", "dbscan", "knn_accuracy"} <= set(analysis)
    check = check_page(out / "report.html", tmp_path / "report.png")
    assert check.ok, check
    assert check.table_rows["results-table"] == 2  # one row per model
    html = (out / "report.html").read_text()
    for section in ("Training curves", "Feature analysis", "Accuracy vs. speed", "confusion matrix"):
        assert section in html, section
