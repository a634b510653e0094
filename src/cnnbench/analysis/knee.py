"""Knee (elbow) of a monotone curve, kneedle-style, for the DBSCAN ``eps`` of the k-NN distance curve.

Kneedle (Satopää et al., 2011): scale both axes to [0, 1] and take the point farthest from the
straight line joining the first and the last point, on the side the curve bends to. For the
sorted k-NN distance curve (flat, then a sharp rise at the outliers) that is the point where the
rise starts, the classic DBSCAN ``eps`` heuristic (Ester et al., 1996).
"""

from __future__ import annotations

import numpy as np

from cnnbench.errors import ConfigError


def find_knee(curve: np.ndarray) -> int:
    """Index of the knee of a monotone (increasing or decreasing) curve sampled at equal steps.

    The curve is scaled so that x and y both run over [0, 1]; the knee is the point with the
    largest distance to the chord on the side the curve bends to (below it for a convex curve,
    above it for a concave one). A straight line has no knee: its middle index is returned.

    Args:
        curve: (N,) values, e.g. the sorted distances of every point to its k-th neighbour.

    Returns:
        An index into ``curve``.

    Raises:
        ConfigError: when the curve has fewer than 3 points or non-finite values.
    """
    y = np.asarray(curve, dtype=np.float64).ravel()
    if y.size < 3:
        raise ConfigError(f"find_knee: the curve has {y.size} points; expected at least 3")
    if not np.all(np.isfinite(y)):
        raise ConfigError("find_knee: the curve has NaN or infinite values; expected finite numbers")
    span = y[-1] - y[0]
    if span == 0:
        return int(y.size // 2)
    x = np.linspace(0.0, 1.0, y.size)
    # Scaled so the chord is the diagonal y = x (for a decreasing curve too, as span < 0 flips it).
    yn = (y - y[0]) / span
    diff = x - yn  # > 0 below the chord (convex), < 0 above it (concave)
    # The side the curve bends to is the one with the larger excursion.
    side = diff if diff.max() >= -diff.min() else -diff
    if side.max() <= 1e-12:
        return int(y.size // 2)
    return int(np.argmax(side))
