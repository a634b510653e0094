"""benchmarks/render.py writes docs/benchmarks.md's "Goals at a glance" from result files: the latest
measured result of each goal, one short row per goal, only between the markers, the same every time."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import render  # noqa: E402
from goals import GOALS  # noqa: E402

ENV = {"smoke": False, "cpu_model": "AMD EPYC", "isa": "AVX-512", "cores": 2, "gpu": None, "git_commit": "abc1234567"}


def _entry(goal: str, text: str, met: bool | None) -> dict:
    return {"goal": goal, "text": text, "met": met, "value": 1.0}


def _write(folder: Path, name: str, date: str, status: str, goals: list[dict], **env) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"part": name, "status": status, "date": date, "env": {**ENV, **env}, "goals": goals,
              "load_before": [0.42, 0.5, 0.6]}  # fmt: skip
    (folder / f"{name}.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path) -> Path:
    cpu, cuda, old = tmp_path / "results" / "cpu", tmp_path / "results" / "cuda", tmp_path / "results" / "cpu-old"
    _write(old, "study", "2026-12-01T00:00:00Z", "ok", [_entry("default-study-time", "408 s (6.8 min)", True)])
    _write(cpu, "study", "2026-12-07T06:00:00Z", "ok", [_entry("default-study-time", "312 s (5.2 min)", True)])
    _write(cpu, "later_smoke", "2026-12-08T00:00:00Z", "ok", [_entry("default-study-time", "7 s", True)], smoke=True)
    _write(cpu, "later_failure", "2026-12-09T00:00:00Z", "failed", [_entry("default-study-time", "boom", False)])
    _write(cpu, "embed", "2026-12-07T06:10:00Z", "partial", [_entry("analysis-10k", "not finished | 120 s", False)])
    gpu = {"gpu": "NVIDIA H100 80GB HBM3", "cores": 16, "isa": "AVX-512", "git_commit": "def", "git_dirty": True}
    _write(cuda, "gpu_epochs", "2026-12-07T07:00:00Z", "ok", [_entry("gpu-epochs", "25× to 90×", None)], **gpu)
    return tmp_path / "results"


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nintro\n\n{render.BEGIN}\nold table\n{render.END}\n\n## History\n\nprose\n")
    return page


def test_one_row_per_goal_with_the_latest_measured_result(results):
    rows = render.render_table(render.load_records(results)).splitlines()
    assert rows[:2] == list(render.HEADER) and len(rows) == 2 + len(GOALS)
    study = next(r for r in rows if "default `cnnbench run`" in r)
    assert "312 s (5.2 min)" in study and "| met |" in study
    assert "2026-12-07, AMD EPYC (AVX-512, 2 cores), load 0.42, `abc1234567`" in study
    assert "[history](#default-study-wall-time)" in study
    embed = next(r for r in rows if "10,000 points" in r)
    assert "not finished \\| 120 s" in embed and "**not met**" in embed  # a partial result shows, escaped
    gpu = next(r for r in rows if "every seed-mnist epoch ≥ 20×" in r)
    assert "NVIDIA H100 80GB HBM3 on AMD EPYC (AVX-512, 16 cores)" in gpu and "`def` + local changes" in gpu
    assert "not judged" in gpu
    never = next(r for r in rows if "resnet18 to 93 %" in r)
    assert "not measured by run_all yet" in never
    by_hand = next(r for r in rows if "the seed's recipe for every model" in r)
    assert "by hand: `recipe_efficiency.py (about 30 minutes)`" in by_hand


def test_only_the_text_between_the_markers_changes_and_a_second_render_changes_nothing(results, tmp_path, capsys):
    page = _page(tmp_path)
    assert render.main(["--results", str(results), "--doc", str(page), "--check"]) == 1
    assert render.main(["--results", str(results), "--doc", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n") and text.endswith(f"{render.END}\n\n## History\n\nprose\n")
    assert "old table" not in text and "312 s (5.2 min)" in text
    assert render.main(["--results", str(results), "--doc", str(page), "--check"]) == 0
    render.main(["--results", str(results), "--doc", str(page)])
    assert page.read_text() == text
    assert "already up to date" in capsys.readouterr().out


def test_a_page_without_the_markers_is_an_error(results, tmp_path):
    page = tmp_path / "plain.md"
    page.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="lacks the markers"):
        render.main(["--results", str(results), "--doc", str(page)])


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_goal_links_to_a_history_section_that_exists():
    anchors = _anchors((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    missing = [g.history for g in GOALS if g.history.startswith("#") and g.history[1:] not in anchors]
    assert not missing, f"docs/benchmarks.md has no section for {missing}"


def test_the_committed_table_is_what_the_committed_results_say():
    assert render.main(["--check"]) == 0, "run: python benchmarks/render.py"
