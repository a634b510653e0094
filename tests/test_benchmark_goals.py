"""benchmarks/embed.py judges issue 19's goals by the stages a study pays per model."""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def embed_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "embed.py"
    spec = importlib.util.spec_from_file_location("embed_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_1000_points_goal_leaves_out_feature_extraction_and_the_once_per_process_imports(embed_benchmark):
    secs = {"model": 2.0, "data": 0.1, "features": 1.3, "imports": 1.1, "tsne": 1.2, "total": 6.9}
    (line,) = embed_benchmark.goal_lines(1000, secs)
    assert "2.40 s (met; imports 1.1 s besides" in line
    (line,) = embed_benchmark.goal_lines(1000, {**secs, "total": 7.6})
    assert "3.10 s (NOT met" in line


def test_10000_points_goal_is_the_whole_analysis(embed_benchmark):
    assert embed_benchmark.goal_lines(10000, {"total": 44.0})[0].endswith("44.0 s (met)")
    assert embed_benchmark.goal_lines(10000, {"total": 46.0})[0].endswith("(NOT met)")
    assert embed_benchmark.goal_lines(5000, {"total": 46.0}) == []
