"""cnnbench.report.stats against hand computations, scipy's own tests, and the properties each method claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from cnnbench.report.stats import (
    MCNEMAR,
    SEEDS_AND_IMAGES,
    WILSON,
    format_p,
    holm,
    mcnemar_exact,
    seeds_images_interval,
    seeds_images_test,
    student_interval,
    welch_test,
    wilson_interval,
)


def test_wilson_interval_of_920_out_of_1000_matches_the_hand_computation():
    # p = 0.92, n = 1000, z = 1.9599640 (z² = 3.8414588):
    #   centre = (0.92 + z²/2000) / (1 + z²/1000) = 0.9219207 / 1.0038415 = 0.9183928
    #   half   = z · √(0.92·0.08/1000 + z²/4e6) / 1.0038415 = 1.9599640 · 0.0086348 / 1.0038415 = 0.0168592
    #   → [0.9015336, 0.9352520]
    interval = wilson_interval(920, 1000)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.9015, 0.9353)
    assert interval.low == pytest.approx(0.9015336, abs=1e-7) and interval.high == pytest.approx(0.9352520, abs=1e-7)
    assert (interval.method, interval.level) == (WILSON, 0.95)


def test_wilson_interval_stays_in_range_at_the_edges_and_refuses_nonsense():
    zero, full = wilson_interval(0, 50), wilson_interval(50, 50)
    assert zero.low == 0.0 and 0 < zero.high < 0.1
    assert full.high == 1.0 and 0.9 < full.low < 1.0
    assert wilson_interval(1000, 1000).low == pytest.approx(1 - wilson_interval(0, 1000).high)  # symmetric
    with pytest.raises(ValueError, match="trials ≥ 1"):
        wilson_interval(3, 0)
    with pytest.raises(ValueError, match="0 ≤ successes ≤ trials"):
        wilson_interval(11, 10)


def test_wilson_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    truth, n = 0.92, 1000
    draws = rng.binomial(n, truth, size=4000)
    covered = np.mean([wilson_interval(int(k), n).low <= truth <= wilson_interval(int(k), n).high for k in draws])
    assert 0.935 <= covered <= 0.965


def _pair(only_a: int, only_b: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classifiers' correctness on the same images, with the given counts, in a shuffled order."""
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    order = np.random.default_rng(1).permutation(len(a))
    return a[order], b[order]


def test_mcnemar_exact_is_the_binomial_test_on_the_discordant_images():
    a, b = _pair(only_a=21, only_b=8, both=900, neither=71)
    test = mcnemar_exact(a, b)
    assert (test.only_a, test.only_b, test.images, test.method) == (21, 8, 1000, MCNEMAR)
    assert test.p_value == pytest.approx(sp.binomtest(21, 29, 0.5).pvalue, rel=1e-12)
    assert test.difference == pytest.approx(a.mean() - b.mean())
    assert mcnemar_exact(b, a).p_value == pytest.approx(test.p_value)  # two-sided: the order does not matter
    assert test.p_value < 0.05  # 21 vs 8 of 29 disagreements


def test_identical_predictions_give_p_1():
    a, _ = _pair(only_a=30, only_b=0, both=900, neither=70)
    assert mcnemar_exact(a, a).p_value == 1.0
    assert mcnemar_exact(a, a).only_a == mcnemar_exact(a, a).only_b == 0
    seeds = np.stack([a, np.roll(a, 3), np.roll(a, 7)])
    assert seeds_images_test(seeds, seeds).p_value == 1.0
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(a, a[:-1])


def test_seeds_images_test_reduces_to_a_one_sample_t_test_in_each_limit():
    rng = np.random.default_rng(2)
    a1, b1 = rng.random(500) < 0.9, rng.random(500) < 0.85
    # no seed spread (every seed the same per-image outcome): a paired t test over the images
    a, b = np.stack([a1] * 3), np.stack([b1] * 3)
    test = seeds_images_test(a, b)
    assert test.p_value == pytest.approx(sp.ttest_1samp(a1.astype(float) - b1, 0).pvalue, rel=1e-9)
    assert test.df == pytest.approx(499)
    # no image spread (within a seed, every image the same difference): a t test over the seeds
    per_seed = np.array([1, 1, 0, 1])
    a, b = np.repeat(per_seed[:, None], 200, axis=1).astype(bool), np.zeros((4, 200), dtype=bool)
    a[2] = True  # seed 2: both right everywhere (difference 0); the others: a right, b wrong
    b[2] = True
    test = seeds_images_test(a, b)
    assert test.p_value == pytest.approx(sp.ttest_1samp(per_seed, 0).pvalue, rel=1e-9)
    assert (test.seeds, test.images) == (4, 200)


def test_seeds_images_test_separates_a_trained_from_an_untrained_model_and_not_two_alike():
    rng = np.random.default_rng(3)
    trained, untrained, twin = (rng.random((3, 1000)) < p for p in (0.9, 0.1, 0.9))
    assert seeds_images_test(trained, untrained).p_value < 1e-6
    assert seeds_images_test(trained, untrained).difference == pytest.approx(trained.mean() - untrained.mean())
    assert seeds_images_test(trained, twin).p_value > 0.05
    with pytest.raises(ValueError, match="S ≥ 2"):
        seeds_images_test(trained[:1], untrained[:1])


def test_holm_matches_a_hand_adjustment():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    assert holm([0.02]) == [0.02]


def test_interval_over_seeds_and_images_adds_both_spreads():
    per_seed = [0.91, 0.93, 0.92]
    # no image variance: the t interval over seeds
    only_seeds = seeds_images_interval(per_seed, 0.0, 1000)
    assert (only_seeds.low, only_seeds.high) == pytest.approx(
        sp.t.interval(0.95, 2, 0.92, np.std(per_seed, ddof=1) / 3**0.5)
    )
    # with the images' variance too, never narrower than the images' own normal interval around the mean
    # (it may be narrower than the seeds-only one: the well-measured image part raises the degrees of freedom)
    both = seeds_images_interval(per_seed, 0.92 * 0.08, 1000)
    half_images = 1.96 * math.sqrt(0.92 * 0.08 / 1000)
    assert both.low < 0.92 - half_images and both.high > 0.92 + half_images and both.method == SEEDS_AND_IMAGES
    # no seed spread: a t interval with (almost) the images' normal half-width
    flat = seeds_images_interval([0.92, 0.92], 0.92 * 0.08, 1000)
    assert flat.high - 0.92 == pytest.approx(1.96 * math.sqrt(0.92 * 0.08 / 1000), rel=0.01)
    with pytest.raises(ValueError, match="≥ 2 seeds"):
        seeds_images_interval([0.9], 0.1, 1000)


def test_student_interval_and_welch_test_match_scipy():
    steps_a, steps_b = [120.0, 150.0, 135.0], [300.0, 280.0, 330.0, 310.0]
    interval = student_interval(steps_a, bounds=(0.0, math.inf))
    sem = np.std(steps_a, ddof=1) / 3**0.5
    assert (interval.low, interval.high) == pytest.approx(sp.t.interval(0.95, 2, np.mean(steps_a), sem))
    assert student_interval([1.0, 9.0], bounds=(0.0, math.inf)).low == 0.0  # steps are never negative
    test = welch_test(steps_a, steps_b)
    assert test.p_value == pytest.approx(sp.ttest_ind(steps_a, steps_b, equal_var=False).pvalue, rel=1e-9)
    assert test.difference == pytest.approx(np.mean(steps_a) - np.mean(steps_b))
    assert welch_test([5.0, 5.0], [5.0, 5.0]).p_value == 1.0
    with pytest.raises(ValueError, match="at least two"):
        welch_test([1.0], [2.0, 3.0])


def test_p_values_print_with_two_significant_digits():
    assert [format_p(p) for p in (3e-9, 3.21e-5, 0.0031, 0.4149, 0.9999)] == [
        "p < 1e-6",
        "p = 3.2e-05",
        "p = 0.0031",
        "p = 0.41",
        "p = 1",
    ]
