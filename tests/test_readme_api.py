"""The README's Python API example, run exactly as it stands there; then what it wrote, read back."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest

import cnnbench
from cnnbench.rundir import RunSummary
from conftest import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    """The Python block between the README's ``python-api`` markers."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- python-api:start -->\n```python\n(.*?)```\n<!-- python-api:end -->", text, re.S)
    assert match, "README.md lost its <!-- python-api:start/end --> markers around a ```python block"
    return match.group(1)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run the snippet in an empty directory (it writes my-study/ where it runs); its stdout."""
    root = tmp_path_factory.mktemp("readme-api")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CNNBENCH_CACHE", str(root / "cache"))
        mp.setenv("CNNBENCH_DATA", str(root / "data-home"))
        with contextlib.redirect_stdout(out):
            exec(compile(readme_snippet(), "README.md", "exec"), {"__name__": "readme_api"})
        yield root / "my-study", out.getvalue()


def test_the_snippet_trains_summarises_and_reports(ran):
    study, printed = ran
    run = study / "runs" / "lenet5"
    summary = RunSummary.read(run)
    assert summary.ok and summary.model == "lenet5" and summary.dataset == "mnist-sample"
    assert summary.test_accuracy > 0.3 and summary.params == 44_426  # chance is 0.1
    assert f"lenet5: {summary.status}, test accuracy {summary.test_accuracy:.2%}, 44,426 params" in printed
    assert f"open {study / 'report.html'}" in printed or "open my-study/report.html" in printed
    assert (study / "report.html").stat().st_size > 10_000
    with (study / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["status"]) for r in rows] == [("lenet5", summary.status)]
    assert float(rows[0]["test_accuracy"]) == pytest.approx(summary.test_accuracy)


def test_run_summary_names_every_key_fit_writes_and_round_trips(ran):
    run = ran[0] / "runs" / "lenet5"
    on_disk = json.loads((run / "summary.json").read_text())
    summary = RunSummary.read(run)
    assert summary.extra == {}, f"summary.json keys RunSummary does not name: {sorted(summary.extra)}"
    assert summary.to_dict() == on_disk
    newer = RunSummary.from_dict({**on_disk, "new_figure": 1.5})  # a newer writer's key is kept, not lost
    assert newer.extra == {"new_figure": 1.5} and newer.to_dict()["new_figure"] == 1.5
    assert dataclasses.replace(summary, status="diverged").ok is False


def test_run_summary_errors_name_the_file(tmp_path):
    from cnnbench.errors import ResultsError

    with pytest.raises(ResultsError, match="summary.json does not exist"):
        RunSummary.read(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match=r"summary.json: not a run summary: expected a JSON object"):
        RunSummary.read(tmp_path)
    (tmp_path / "summary.json").write_text('{"model": "lenet5"}')
    with pytest.raises(ResultsError, match="dataset, status missing"):
        RunSummary.read(tmp_path)


@pytest.mark.slow  # calls fit (the suite's rule), though fit refuses before any work
def test_fit_given_a_mapping_or_anything_but_a_train_config_names_the_argument_and_the_type(tmp_path):
    with pytest.raises(TypeError) as err:
        cnnbench.fit({"model": "lenet5", "data": "synthetic"}, tmp_path / "run")  # was AttributeError: 'dict' ...
    assert str(err.value) == (
        "cnnbench.fit: cfg is a dict, expected a cnnbench.TrainConfig; build one from the mapping with "
        "cnnbench.TrainConfig(**cfg) (TrainConfig takes the training options as keywords: model=..., data=..., "
        "epochs=...; fit itself takes none)"
    )
    with pytest.raises(TypeError, match=r"^cnnbench.fit: cfg is None, expected a cnnbench.TrainConfig, e.g. "):
        cnnbench.fit(None, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.slow
def test_top_level_names_load_lazily():
    import subprocess
    import sys

    code = (
        "import sys, cnnbench; assert 'torch' not in sys.modules; cnnbench.RunSummary; print(sorted(cnnbench.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "fit" in out and "build_report" in out and "TrainConfig" in out
    assert cnnbench.fit is __import__("cnnbench.engine.fit", fromlist=["fit"]).fit
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cnnbench.nope  # noqa: B018


@pytest.mark.slow
def test_piped_eval_of_the_run_prints_rounded_figures_one_per_line(ran):
    run = ran[0] / "runs" / "lenet5"
    summary = RunSummary.read(run)
    proc = run_cli("eval", str(run), "--device", "cpu", env={"CNNBENCH_CACHE": str(ran[0].parent / "cache")})
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("on mnist-sample (test)")
    figures = {k.strip(): v for k, v in (line.rsplit("  ", 1) for line in lines[1:])}
    assert figures["accuracy (%)"] == f"{summary.test_accuracy * 100:.2f}"
    assert re.fullmatch(r"\d+\.\d{4}", figures["loss"]) and figures["samples"] == f"{summary.test_samples:,}"
