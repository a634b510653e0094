"""build_report end to end on study directories written in the documented formats."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from cnnbench.errors import ConfigError, OutputError
from cnnbench.report import build_report
from support.synthetic_study import MODEL_TRAITS, SyntheticStudy, write_synthetic_study

FAILED = "mnist__vgg11__cosine__s1"
SPEC = SyntheticStudy(
    models=("lenet5", "resnet18", "vgg11"),
    failed=(FAILED,),
    missing=("mnist__resnet18__plateau__s1",),
    absent=("mnist__lenet5__plateau__s1",),
)


class _Tables(HTMLParser):
    """Rows of each table's body, by table id, and the text of every cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.headers: dict[str, list[str]] = {}
        self._table: list[str] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table.append(attrs.get("id", ""))
            self.rows.setdefault(self._table[-1], [])
            self.headers.setdefault(self._table[-1], [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows[self._table[-1]].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table.pop()
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[self._table[-1]][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "th" and self._cell is not None:
            self.headers[self._table[-1]].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.rows


def _column(html: str, table: str, header: str) -> list[str]:
    parser = _Tables()
    parser.feed(html)
    j = parser.headers[table].index(header)
    return [row[j] for row in parser.rows[table]]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    study = write_synthetic_study(tmp_path_factory.mktemp("build") / "study", SPEC)
    return study, build_report(study)


def test_writes_every_file_and_markdown_links_resolve(report):
    study, paths = report
    for path in (paths.html, paths.markdown, paths.results_csv, paths.aggregate_csv):
        assert path.is_file() and path.parent == study
    md = paths.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert sorted(study / link for link in links) == sorted(paths.figures)
    for figure in paths.figures:
        assert figure.read_bytes().startswith(b"\x89PNG")
    html = paths.html.read_text()
    assert html.count('<img src="data:image/png;base64,') == len(paths.figures)  # the same figures, embedded
    runs = json.loads(json.dumps(paths.to_dict()))["runs"]
    assert runs["diverged"] == 1 and runs["missing"] == 2
    assert sum(runs.values()) == len(SPEC.run_ids())


def test_results_table_has_one_row_per_model_and_lists_failures(report):
    _, paths = report
    html = paths.html.read_text()
    tables = _tables(html)
    rows = tables["results-table"]
    assert sorted(r[0] for r in rows) == sorted(SPEC.models)
    seeds = _column(html, "results-table", "Seeds")
    accuracy = _column(html, "results-table", "Test acc (%)")
    assert [("±" in a) for a in accuracy] == [s == "2/2" for s in seeds]  # mean ± std where two seeds finished
    assert all(re.fullmatch(r"\d{2}\.\d{2}( ± \d\.\d{2})?", a) for a in accuracy)
    failed = {r[0]: r for r in tables["runs-failed"]}
    assert set(failed) == {FAILED, "mnist__resnet18__plateau__s1", "mnist__lenet5__plateau__s1"}
    assert failed[FAILED][4] == "diverged" and "NaN" in failed[FAILED][-1]
    assert len(tables["runs-all"]) == len(SPEC.run_ids())
    assert "never averaged" in html  # train and test accuracy are kept apart


def test_every_section_of_the_study_is_present(report):
    _, paths = report
    html = paths.html.read_text()
    for anchor in ("study", "results", "comparisons", "schedules", "curves", "pareto", "classes", "features", "models"):
        assert f'<section id="{anchor}">' in html, anchor
    names = {p.stem for p in paths.figures}
    expected = {
        "test-loss-accuracy",
        "train-val-test-accuracy",
        "train-test-time",
        "size-params",
        "epochs-time-per-epoch",
        "time-to-target",
        "schedules",
        "pareto-speed",
        "pareto-size",
        "per-class-accuracy",
        "cluster-scores",
    }
    assert expected <= names
    for model in SPEC.models:
        assert {f"curves-{model}", f"confusion-{model}", f"tsne-{model}"} <= names
    assert "Accuracy vs. GPU throughput" not in html or "pareto-speed" in names
    assert "cnnbench run --data mnist" in html  # the command from study.yaml
    assert "NVIDIA H100 80GB HBM3" in html  # the device from summary.json
    assert "<summary>Library versions</summary>" in html


def test_one_schedule_one_seed_no_gpu_study_says_what_it_skips(tmp_path):
    spec = SyntheticStudy(
        models=("lenet5", "resnet18"), schedules=("cosine",), seeds=(0,), gpu=False, analysis=False, samples=False
    )
    study = write_synthetic_study(tmp_path / "s", spec)
    paths = build_report(study, tmp_path / "out")
    html = paths.html.read_text()
    assert "so the schedule comparison (cosine vs. plateau) is skipped" in html
    assert "speed axis is CPU latency at batch 1 instead" in html
    assert "No feature analysis in these runs" in html
    rows = _tables(html)["results-table"]
    assert len(rows) == 2 and not any("±" in cell for row in rows for cell in row)
    parser = _Tables()
    parser.feed(html)
    assert "GPU img/s" not in parser.headers["results-table"] and "CPU latency (ms)" in parser.headers["results-table"]
    assert {p.stem for p in paths.figures} >= {"pareto-speed", "pareto-size"}
    assert "schedules" not in {p.stem for p in paths.figures}


def test_errors_name_the_flag_or_directory(tmp_path):
    study = write_synthetic_study(
        tmp_path / "s", SyntheticStudy(models=("lenet5",), schedules=("cosine",), seeds=(0,), analysis=False)
    )
    with pytest.raises(ConfigError, match="--out is required when merging 2 study directories"):
        build_report([study, study])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=f"--out {blocker / 'out'}"):
        build_report(study, blocker / "out")


@pytest.mark.slow
def test_report_never_imports_torch(tmp_path):
    study = write_synthetic_study(
        tmp_path / "s", SyntheticStudy(models=("lenet5",), schedules=("cosine",), seeds=(0,), analysis=False)
    )
    code = (
        "import sys; from cnnbench.report import build_report; import cnnbench.cli.report; "
        f"build_report({str(study)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_ten_models_two_schedules_three_seeds(tmp_path):
    # how long it takes is measured in docs/report.md (Speed), not asserted: the machine is shared
    spec = SyntheticStudy(models=tuple(MODEL_TRAITS), seeds=(0, 1, 2))
    study = write_synthetic_study(tmp_path / "big", spec)
    paths = build_report(study)
    assert len(_tables(paths.html.read_text())["results-table"]) == 10
    assert len(paths.figures) >= 40
    assert paths.status_counts and sum(paths.status_counts.values()) == 60


@pytest.mark.slow  # trains the session's engine run once
def test_a_run_written_by_the_engine_reports_its_own_figures(engine_run, tmp_path):
    """The report over a real run directory (conftest ``engine_run``), not only the synthetic formats."""
    import shutil

    from cnnbench.rundir import RunSummary

    runs = tmp_path / "runs"
    shutil.copytree(engine_run, runs / engine_run.name)
    paths = build_report(tmp_path)
    summary = RunSummary.read(engine_run)
    assert paths.status_counts == {"completed": 1}
    names = {p.stem for p in paths.figures}
    assert {"curves-lenet5", "confusion-lenet5"} <= names
    rows = _tables(paths.html.read_text())["results-table"]
    assert [r[0] for r in rows] == ["lenet5"]
    assert f"{100 * summary.test_accuracy:.2f}" in rows[0]  # the engine's figure, as written
