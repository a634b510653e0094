"""find_knee: the kneedle-style elbow detector behind the DBSCAN eps."""

import numpy as np
import pytest

from cnnbench.analysis.knee import find_knee
from cnnbench.errors import ConfigError


def test_piecewise_linear_knee_is_found_exactly():
    # flat slope 0.001 for 800 points, then slope 0.05: the bend is at index 799
    x = np.arange(1000)
    curve = np.where(x < 800, 0.001 * x, 0.001 * 799 + 0.05 * (x - 799))
    assert find_knee(curve) == 799


def test_sorted_knn_like_curve_knee_sits_where_the_rise_starts():
    rng = np.random.default_rng(0)
    inliers = np.sort(rng.uniform(0.9, 1.1, 950))  # dense points: k-distance near 1
    outliers = np.sort(rng.uniform(2.0, 10.0, 50))  # sparse points: the sharp rise
    curve = np.concatenate([inliers, outliers])
    knee = find_knee(curve)
    assert 940 <= knee <= 955, knee


@pytest.mark.parametrize("flip", [False, True])
def test_concave_and_decreasing_curves(flip):
    x = np.linspace(0, 1, 501)
    curve = np.minimum(10 * x, 1.0 + 0.1 * x)  # concave: steep rise, knee at x = 1/9.9
    if flip:
        curve = curve[::-1]
    expected = int(round((1 / 9.9) * 500))
    knee = find_knee(curve)
    assert abs((500 - knee if flip else knee) - expected) <= 2


def test_straight_line_and_constant_curves_return_the_middle():
    assert find_knee(np.linspace(0, 1, 101)) == 50
    assert find_knee(np.ones(11)) == 5


def test_bad_curves_name_the_problem():
    with pytest.raises(ConfigError, match="at least 3"):
        find_knee(np.array([1.0, 2.0]))
    with pytest.raises(ConfigError, match="NaN"):
        find_knee(np.array([1.0, np.nan, 3.0, 4.0]))
