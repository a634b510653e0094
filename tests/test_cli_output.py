"""Output that reads well anywhere: plain lines into a pipe or a log, rounded figures, nothing folded."""

from __future__ import annotations

import json

import pytest

from cnnbench.cli.common import plain_table, print_fields
from cnnbench.cli.eval import eval_fields
from conftest import run_cli


@pytest.mark.slow
def test_piped_models_prints_one_plain_line_per_model_with_whole_names():
    proc = run_cli("models")
    lines = proc.stdout.splitlines()
    names = [m["name"] for m in json.loads(run_cli("models", "--json").stdout)["models"]]
    assert lines[1].split() == ["model", "source", "params", "default", "input", "groups"]
    rows = lines[2:]
    assert [r.split()[0] for r in rows] == names  # one line per model, the name whole
    assert "mobilenet_v3_large" in names and not any(set(r) & set("│┃━─") for r in lines)
    starts = {r.index(r.split()[1]) for r in rows}  # the source column starts at one offset: aligned
    assert len(starts) == 1
    # the note on stderr is not folded at 80 columns either
    assert len(proc.stderr.strip().splitlines()) == 1 and len(proc.stderr.strip()) > 80


def test_plain_table_aligns_columns_and_keeps_long_values_whole():
    text = plain_table("title", ["a", "long header"], [["x" * 130, "1"], ["y", "two\nlines"]])
    lines = text.splitlines()
    assert lines[0] == "title" and lines[2] == "x" * 130 + "  1"
    assert lines[3] == "y" + " " * 131 + "two lines" and lines[1].index("long header") == 132


def test_eval_figures_are_rounded_as_the_report_rounds_them_one_per_line(capsys):
    result = {
        "checkpoint": "run/checkpoint/best.pt",
        "dataset": "mnist",
        "split": "test",
        "samples": 10000,
        "accuracy": 0.98765432,
        "loss": 1.1917850952148437,
        "top5": 0.99990001,
        "mean_class_accuracy": None,
        "seconds": 12.3456,
        "batch_size": 32,
        "device": "cpu",
    }
    print_fields("run on mnist (test)", eval_fields(result))  # stdout is not a terminal here
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run on mnist (test)"
    figures = dict(line.rsplit("  ", 1) for line in lines[1:])
    figures = {k.strip(): v for k, v in figures.items()}
    assert figures == {
        "accuracy (%)": "98.77",
        "top-5 (%)": "99.99",
        "mean class accuracy (%)": "—",
        "loss": "1.1918",
        "samples": "10,000",
        "seconds": "12.3",
        "batch size": "32",
        "device": "cpu",
    }


def test_eval_figures_on_a_terminal_one_row_when_wide_one_per_line_when_narrow(capsys, monkeypatch):
    import os

    import cnnbench.cli.common as common

    fields = [("accuracy (%)", "98.77"), ("loss", "1.1918")]
    monkeypatch.setattr(common, "is_terminal", lambda stream=None: True)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((80, 24)))
    common.print_fields("t", fields)
    assert capsys.readouterr().out.splitlines()[1:] == ["accuracy (%)  98.77", "loss          1.1918"]
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((160, 24)))
    monkeypatch.setenv("COLUMNS", "160")
    common.print_fields("t", fields)
    table = capsys.readouterr().out
    assert "┃ accuracy (%) ┃ loss   ┃" in table and "│ 98.77        │ 1.1918 │" in table


@pytest.mark.slow
def test_train_json_keeps_stdout_for_the_object_and_says_its_progress_on_stderr(tmp_path, isolated_cache):
    """With --json, train printed nothing on stderr: no range-test line, no pick, no epoch lines."""
    proc = run_cli("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--max-train-samples", "256",
                   "--lr-find-steps", "20", "--out", str(tmp_path / "r"), "--json")  # fmt: skip
    summary = json.loads(proc.stdout)  # stdout is the object alone
    assert summary["status"] == "completed"
    assert "learning-rate range test (20 steps)" in proc.stderr and f"picked lr {summary['lr']:.3g}" in proc.stderr
    assert "lenet5 epoch 1:" in proc.stderr and "test accuracy" in proc.stderr
