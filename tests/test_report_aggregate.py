"""Mean ± std over seeds, schedule selection, and the results table built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnbench.report.aggregate import Stat, aggregate, select_schedules
from cnnbench.report.records import FIGURES, RunRecord
from cnnbench.report.tables import fmt_number, fmt_stat, results_columns, results_table


def _run(model, schedule, seed, status="completed", **figures):
    values = dict.fromkeys(FIGURES)
    values.update(figures)
    return RunRecord(
        run_id=f"mnist__{model}__{schedule}__s{seed}",
        dataset="mnist",
        model=model,
        schedule=schedule,
        seed=seed,
        status=status,
        error=None if status == "completed" else "boom",
        figures=values,
        path=None,
        study_dir=Path("."),
    )


def test_stat_is_mean_and_sample_std_ignoring_missing_values():
    s = Stat.of([0.90, 0.92, None, 0.94, float("nan")])
    assert s.n == 3
    assert s.mean == pytest.approx(0.92)
    assert s.std == pytest.approx(0.02)  # ddof = 1
    one = Stat.of([0.5])
    assert (one.mean, one.std, one.n) == (0.5, None, 1)
    assert Stat.of([None]) == Stat(None, None, 0)


def test_failed_runs_are_counted_but_never_averaged():
    runs = [
        _run("a", "cosine", 0, test_accuracy=0.9),
        _run("a", "cosine", 1, test_accuracy=0.8),
        _run("a", "cosine", 2, status="diverged", test_accuracy=0.1),
    ]
    (row,) = aggregate(runs)
    assert (row.runs, row.ok, row.seeds) == (3, 2, (0, 1))
    assert row.statuses == {"completed": 2, "diverged": 1}
    assert row.mean("test_accuracy") == pytest.approx(0.85)


def test_schedule_is_chosen_on_validation_never_on_test():
    runs = [
        _run("a", "cosine", 0, best_val_accuracy=0.95, test_accuracy=0.99),
        _run("a", "plateau", 0, best_val_accuracy=0.97, test_accuracy=0.90),
        _run("b", "cosine", 0, status="failed"),
        _run("b", "plateau", 0, best_val_accuracy=0.5, test_accuracy=0.5),
    ]
    chosen = select_schedules(aggregate(runs))
    assert chosen[("mnist", "a")].schedule == "plateau"
    assert chosen[("mnist", "b")].schedule == "plateau"  # a finished row beats a failed one


def test_results_table_marks_best_and_drops_unmeasured_columns():
    runs = [
        _run("a", "c", 0, test_accuracy=0.990, params=1000, test_loss=0.05),
        _run("a", "c", 1, test_accuracy=0.994, params=1000, test_loss=0.04),
        _run("b", "c", 0, test_accuracy=0.991, params=500, test_loss=0.06),
        _run("b", "c", 1, test_accuracy=0.992, params=500, test_loss=0.07),
    ]
    rows = aggregate(runs)
    table, omitted = results_table("t", rows, results_columns(0.99, 32), show_schedule=False)
    labels = [c.label for c in table.columns]
    assert labels[:2] == ["Model", "Seeds"]
    assert "Test acc (%)" in labels and "Params" in labels and "Test loss" in labels
    assert "GPU img/s" not in labels and any(s.key == "gpu_throughput" for s in omitted)
    acc = labels.index("Test acc (%)")
    params = labels.index("Params")
    loss = labels.index("Test loss")
    a, b = table.rows
    assert (a[acc].best, b[acc].best) == (True, False)
    # ≈ only where a test stands behind it (test_report_significance.py); seed spread alone marks nothing
    assert not any(cell.tie for row in table.rows for cell in row)
    assert b[params].best and not a[params].best  # fewer parameters is better
    assert a[loss].best  # lower loss is better
    assert a[acc].text == "99.20 ± 0.28"
    assert a[acc].sort == pytest.approx(0.992)


def test_formatting():
    assert fmt_number(11_689_512, "count") == "11.7 M"
    assert fmt_number(0.5e9, "count") == "500 M"
    assert fmt_number(12345.6, "ips") == "12,346"
    assert fmt_stat(Stat(44.7, 0.0, 2), "mb") == "44.7"  # sizes never carry a seed spread
    assert fmt_stat(Stat(None, None, 0), "pct") == ""


def test_epochs_to_the_target_is_shown_once_when_every_run_stopped_there():
    """Runs that stop at their target trained exactly their epochs to it: one "Epochs" column, not two
    equal ones; a run that trained on past the target keeps both."""
    stopped = [
        _run("a", "c", 0, test_accuracy=0.95, epochs_run=1.5, epochs_to_target=1.5),
        _run("b", "c", 0, test_accuracy=0.96, epochs_run=2.5, epochs_to_target=2.5),
    ]
    labels = [c.label for c in results_table("t", aggregate(stopped), results_columns(0.95, 32), False)[0].columns]
    assert "Epochs" in labels and "Epochs to 95 %" not in labels
    trained_on = [*stopped[:1], _run("b", "c", 0, test_accuracy=0.96, epochs_run=4, epochs_to_target=2.5)]
    table, omitted = results_table("t", aggregate(trained_on), results_columns(0.95, 32), False)
    assert {"Epochs", "Epochs to 95 %"} <= {c.label for c in table.columns}
    assert not any(s.key == "epochs_to_target" for s in omitted)  # measured: never listed as "not measured"
