import math

import pytest

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.early_stopping import EarlyStopping
from cnnbench.engine.schedules import PlateauState, ScheduleSpec, build_schedule_spec, lr_at


def test_warmup_then_cosine_is_continuous_and_ends_at_min_lr():
    spec = ScheduleSpec(
        "cosine",
        base_lr=0.1,
        total_steps=1000,
        steps_per_epoch=100,
        warmup_steps=200,
        warmup_start_lr=1e-6,
        min_lr=1e-4,
    )
    lrs = [lr_at(s, spec) for s in range(1000)]
    assert lrs[0] == pytest.approx(1e-6 + (0.1 - 1e-6) / 200)
    assert lrs[199] == pytest.approx(0.1)  # last warm-up step reaches the peak
    assert all(b > a for a, b in zip(lrs[:199], lrs[1:200], strict=True))  # warm-up rises
    assert all(b <= a for a, b in zip(lrs[200:], lrs[201:], strict=False))  # cosine falls
    assert lrs[200] == pytest.approx(0.1)
    assert lr_at(1000, spec) == pytest.approx(1e-4)
    assert lrs[600] == pytest.approx(1e-4 + 0.5 * (0.1 - 1e-4), rel=1e-6)  # halfway through the cosine


def test_mnist_study_warmup_five_epochs_from_1e6():
    cfg = TrainConfig(lr=1e-3, warmup_epochs=5, warmup_start_lr=1e-6, schedule="plateau", epochs=50)
    spec = build_schedule_spec(cfg, steps_per_epoch=10)
    assert spec.warmup_steps == 50
    assert lr_at(0, spec) < 1e-4 and lr_at(49, spec) == pytest.approx(1e-3)


def test_plateau_reduces_by_factor_and_stops_after_the_cap():
    p = PlateauState(factor=0.1, patience=2, max_reductions=3)
    spec = ScheduleSpec("plateau", base_lr=1.0, total_steps=100, steps_per_epoch=1)
    reductions = []
    p.update(0.5)
    for _ in range(20):  # never improves again
        reductions.append(p.update(0.4))
    assert sum(reductions) == 3  # capped
    assert reductions[:3] == [False, False, True]  # patience 2: the third bad epoch reduces
    assert lr_at(50, spec, p.scale) == pytest.approx(1e-3)


def test_plateau_improvement_resets_patience():
    p = PlateauState(factor=0.5, patience=1, max_reductions=10)
    assert [p.update(v) for v in (0.1, 0.2, 0.2, 0.3, 0.3, 0.3)] == [False, False, False, False, False, True]


def test_step_schedule_decays_every_step_size_epochs():
    spec = ScheduleSpec("step", base_lr=1.0, total_steps=300, steps_per_epoch=10, step_size_epochs=10, step_gamma=0.5)
    assert lr_at(99, spec) == 1.0 and lr_at(100, spec) == 0.5 and lr_at(250, spec) == 0.25


def test_onecycle_peaks_at_pct_start_and_decays():
    spec = ScheduleSpec("onecycle", base_lr=1.0, total_steps=100, steps_per_epoch=10)
    lrs = [lr_at(s, spec) for s in range(100)]
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 30
    assert lrs[0] == pytest.approx(1 / 25) and lrs[-1] < 1e-3


def test_none_is_constant():
    spec = ScheduleSpec("none", base_lr=0.3, total_steps=10, steps_per_epoch=1)
    assert {lr_at(s, spec) for s in range(10)} == {0.3}


def test_early_stopping_tracks_best_and_stops_after_patience():
    es = EarlyStopping(patience=2, mode="max")
    flags = [es.update(v, e) for e, v in enumerate([0.5, 0.7, 0.6, 0.69, 0.65], start=1)]
    assert flags == [True, True, False, False, False]
    assert es.best == 0.7 and es.best_epoch == 2 and es.should_stop


def test_early_stopping_on_loss_and_nan():
    es = EarlyStopping(patience=None, mode="min")
    assert es.update(1.0, 1) and es.update(0.5, 2) and not es.update(math.nan, 3)
    assert es.best_epoch == 2 and not es.should_stop
