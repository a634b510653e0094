"""Confidence intervals and paired tests for accuracies measured on one test set (docs/report.md).

Pure functions over numbers and boolean arrays: no run directories, no torch. scipy gives the exact
binomial and the t distribution; it is imported inside the functions, so importing this module is free.

Two sources of chance move a reported accuracy: which images happen to be in the test set, and
which seed the training ran with. One seed measures only the first (a Wilson interval, McNemar's
exact test between two models on the same images); several seeds measure both (a t interval or
test whose variance adds the spread over seeds to the spread over images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LEVEL = 0.95  # confidence level of every interval
ALPHA = 0.05  # a difference "holds" when its Holm-adjusted p-value is below this

WILSON = "Wilson score interval over the test images"
SEEDS_AND_IMAGES = "t interval over seeds and test images"
SEEDS = "t interval over seeds"
MCNEMAR = "exact McNemar test"
PAIRED_SEEDS_IMAGES = "paired t test over seeds and test images"
WELCH = "Welch t test over seeds"


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval and how it was computed."""

    low: float
    high: float
    method: str  # one of the constants above
    level: float = LEVEL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedTest:
    """A two-sided test of "a and b are equally good" on the same test images.

    ``difference`` is a - b in the unit of the figure compared (accuracy as a fraction, or steps).
    """

    method: str
    difference: float
    p_value: float
    only_a: int | None = None  # McNemar: images a got right and b wrong
    only_b: int | None = None  # ... and b right, a wrong
    seeds: int = 1  # seeds paired (McNemar: one)
    images: int | None = None  # test images each side was scored on
    df: float | None = None  # degrees of freedom of a t test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_interval(successes: int, trials: int, level: float = LEVEL) -> Interval:
    """The Wilson score interval of a proportion ``successes / trials``.

    Preferred to the normal (Wald) interval: it stays inside [0, 1] and keeps its coverage near 0 % and
    100 % accuracy, where a good classifier on a small test set lives.

    Raises:
        ValueError: ``trials`` < 1 or ``successes`` outside [0, trials].
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"Wilson interval of {successes}/{trials}: expected 0 ≤ successes ≤ trials, trials ≥ 1")
    z = _normal_quantile(level)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # at 0 or N successes one side is exact: rounding must not push it past the observed value
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high, WILSON, level)


def student_interval(
    values: Sequence[float], level: float = LEVEL, bounds: tuple[float, float] | None = None
) -> Interval:
    """mean ± t(n-1) · s / √n over ``values`` (one per seed): how far the mean of another set of seeds may fall.

    Args:
        bounds: where the figure can lie (``(0, inf)`` for steps); the interval is clipped to it.

    Raises:
        ValueError: fewer than two values.
    """
    xs = np.asarray(values, dtype=np.float64)
    if xs.size < 2:
        raise ValueError(f"a t interval needs at least two values, got {xs.size}")
    half = _t_quantile(level, xs.size - 1) * float(xs.std(ddof=1)) / math.sqrt(xs.size)
    return _clipped(float(xs.mean()), half, SEEDS, level, bounds)


def seeds_images_interval(
    per_seed: Sequence[float], image_variance: float, images: int, level: float = LEVEL
) -> Interval:
    """The interval of a mean accuracy over several seeds, scored on the same ``images`` test images.

    Var(mean) = s²_seeds / S + v_images / N: the spread of the per-seed accuracies, plus the spread of
    the per-image accuracy (averaged over seeds) that another draw of test images would bring. The sum
    counts the seed × image interaction twice, so the interval is slightly conservative. The t quantile
    takes Welch–Satterthwaite degrees of freedom: with 2 or 3 seeds and a large seed spread it is wide,
    as it should be; when the (well-measured) image part dominates it approaches the normal quantile.

    Args:
        per_seed: test accuracy of each seed (S ≥ 2).
        image_variance: variance over images of the seed-averaged correctness (ddof 1); p̄(1 − p̄)
            bounds it from above when the per-image predictions are not known.
        images: N.

    Raises:
        ValueError: fewer than two seeds or no images.
    """
    xs = np.asarray(per_seed, dtype=np.float64)
    if xs.size < 2 or images < 1:
        raise ValueError(f"an interval over seeds and images needs ≥ 2 seeds and ≥ 1 image ({xs.size}, {images})")
    seed_part = float(xs.var(ddof=1)) / xs.size
    image_part = max(0.0, float(image_variance)) / images
    df = _satterthwaite((seed_part, xs.size - 1), (image_part, images - 1))
    variance = seed_part + image_part
    half = _t_quantile(level, df) * math.sqrt(variance) if variance > 0 else 0.0
    return _clipped(float(xs.mean()), half, SEEDS_AND_IMAGES, level, (0.0, 1.0))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """McNemar's exact test for two classifiers scored on the same images (Dietterich 1998).

    Only the images where the two disagree carry information: b = a right and b wrong, c = the reverse.
    Under "equally good" each of the b + c is a fair coin, so p is the two-sided exact binomial test
    of b successes in b + c trials at 1/2. No discordant image: nothing tells them apart, p = 1.

    Args:
        correct_a, correct_b: (N,) booleans, image i right or wrong, the same images in the same order.

    Raises:
        ValueError: the arrays differ in shape.
    """
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"McNemar's test needs two (N,) arrays of the same images, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = float(binomtest(only_a, n, 0.5).pvalue) if n else 1.0
    diff = (only_a - only_b) / a.size if a.size else 0.0
    return PairedTest(MCNEMAR, diff, min(1.0, p), only_a, only_b, seeds=1, images=int(a.size))


def seeds_images_test(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """Two models trained with the same S ≥ 2 seeds, each seed scored on the same N images.

    X[s, i] = (a right) - (b right) on seed s and image i; the test is t = mean(X) / √V with
    V = var_s(mean_i X) / S + var_i(mean_s X) / N: paired by seed (a seed's runs share their data
    order) and by image (the images are the same), and generalising over both — to other seeds and to
    other test images. The same variance as :func:`seeds_images_interval`, conservative for the same
    reason; Welch–Satterthwaite degrees of freedom.

    Args:
        correct_a, correct_b: (S, N) booleans, row s the same seed in both.

    Raises:
        ValueError: shapes differ, or fewer than two seeds.
    """
    from scipy.stats import t as student_t

    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"a test over seeds and images needs two (S ≥ 2, N ≥ 2) arrays, got {a.shape} and {b.shape}")
    x = a - b
    seeds, images = x.shape
    mean = float(x.mean())
    seed_part = float(x.mean(axis=1).var(ddof=1)) / seeds
    image_part = float(x.mean(axis=0).var(ddof=1)) / images
    variance = seed_part + image_part
    df = _satterthwaite((seed_part, seeds - 1), (image_part, images - 1))
    if variance <= 0:  # every image and seed the same difference: none at all, or a total one
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * student_t.sf(abs(mean) / math.sqrt(variance), df))
    return PairedTest(PAIRED_SEEDS_IMAGES, mean, min(1.0, p), seeds=seeds, images=images, df=df)


def welch_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Welch's two-sample t test: figures measured once per seed (steps to a target), not per image.

    Raises:
        ValueError: fewer than two values on a side.
    """
    from scipy.stats import t as student_t

    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"Welch's test needs at least two values on each side, got {xa.size} and {xb.size}")
    diff = float(xa.mean() - xb.mean())
    va, vb = float(xa.var(ddof=1)) / xa.size, float(xb.var(ddof=1)) / xb.size
    df = _satterthwaite((va, xa.size - 1), (vb, xb.size - 1))
    if va + vb <= 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(2 * student_t.sf(abs(diff) / math.sqrt(va + vb), df))
    return PairedTest(WELCH, diff, min(1.0, p), seeds=min(xa.size, xb.size), df=df)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the p-values, in the given order, adjusted for testing them together.

    Rejecting every adjusted p below α keeps the chance of any false "difference" in the family
    below α, whatever the dependence between the tests (Holm 1979); uniformly better than Bonferroni.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def format_p(p: float) -> str:
    """``p < 1e-6``, ``p = 3.2e-05``, ``p = 0.003``, ``p = 0.41``, ``p = 1``: two significant digits."""
    if p < 1e-6:
        return "p < 1e-6"
    if p >= 0.9995:
        return "p = 1"
    return f"p = {p:.2g}" if p >= 1e-3 else f"p = {p:.1e}"


def _clipped(mean: float, half: float, method: str, level: float, bounds: tuple[float, float] | None) -> Interval:
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Interval(low, high, method, level)


def _satterthwaite(*parts: tuple[float, int]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of variance estimates, each (value, its df)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / df for v, df in parts if df > 0)
    if total <= 0 or denom <= 0:
        return float(max(df for _, df in parts))
    return total * total / denom


def _normal_quantile(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def _t_quantile(level: float, df: float) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2, df))
