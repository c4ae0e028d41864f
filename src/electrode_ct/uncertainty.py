"""Confidence intervals for the published figures: the t-interval of a mean over
sub-volumes, the percentile bootstrap over particles and the Wilson binomial interval.

Every interval is two-sided at ``level`` (default 95 %). A figure with too few samples
for a spread gets ``None`` (JSON ``null``) and a note saying why, never a bare NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError

LEVEL = 0.95
"""Two-sided confidence level of every ``*_ci95`` companion."""

DEFAULT_BOOTSTRAP = 1000
"""Bootstrap resamples when ``--bootstrap`` is not given."""

T_METHOD = ("mean ± sample std (ddof 1) over sub-volumes; ci95 = mean ± t(0.975, n−1)·std/√n "
            "(Student t-interval, sub-volumes taken as independent samples)")
BOOTSTRAP_METHOD = ("percentile bootstrap over particles (resampled with replacement, "
                    "seeded); ci95 = 2.5 and 97.5 percentiles of the resampled statistic")
NO_SPREAD = "no interval: fewer than 2 samples"
WILSON_METHOD = "Wilson score interval (no continuity correction) of the binomial proportion"


def t_interval(values: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """Mean, sample standard deviation and t-interval of the mean.

    Parameters
    ----------
    values : sequence of float
        One figure per sub-volume (any unit; NaN/inf values are left out).
    level : float
        Two-sided confidence level.

    Returns
    -------
    dict
        ``mean``, ``std`` (ddof 1), ``ci95`` ([lo, hi], same unit as ``values``) and ``n``
        (finite values used); ``std`` and ``ci95`` are None with fewer than 2 values.
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1)) * std / np.sqrt(v.size)
    return {"mean": mean, "std": std, "ci95": [float(mean - half), float(mean + half)],
            "n": int(v.size)}


def wilson_interval(k: int, n: int, level: float = LEVEL) -> list[float] | None:
    """Wilson score interval of a binomial proportion, in percent.

    Parameters
    ----------
    k, n : int
        Successes (e.g. flawed particles) and trials (particles).
    level : float
        Two-sided confidence level.

    Returns
    -------
    [lo, hi] or None
        Bounds in % (0–100); None when ``n`` is 0.
    """
    from scipy import stats

    if n <= 0:
        return None
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)]


def check_bootstrap(n: int, *, name: str = "--bootstrap") -> int:
    """A bootstrap count: a whole number >= 1, else :class:`InputError`."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InputError(f"{name}: expected a number of resamples >= 1 (default "
                         f"{DEFAULT_BOOTSTRAP}), got {n!r}")
    return int(n)


def bootstrap_intervals(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    level: float = LEVEL,
    name: str = "--bootstrap",
) -> tuple[np.ndarray | None, np.ndarray] | None:
    """Bootstrap standard errors and percentile intervals of a vector statistic.

    Parameters
    ----------
    values : numpy.ndarray
        The sample (one value per particle).
    statistic : callable
        Maps a resampled sample to a 1-D array of figures (e.g. d10, d50, d90, mean).
    n_boot : int
        Number of resamples (>= 1).
    seed : int
        Seed of the resampling (results are reproducible).
    level : float
        Two-sided confidence level.
    name : str
        Option named in the error for a bad ``n_boot``.

    Returns
    -------
    (numpy.ndarray or None, numpy.ndarray) or None
        The standard deviation of the resampled figures (ddof 1; None for one
        resample) and the ``(n_figures, 2)`` array of [lo, hi]; None for fewer than 2
        values.
    """
    n_boot = check_bootstrap(n_boot, name=name)
    v = np.asarray(values)
    if v.shape[0] < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = np.stack([np.asarray(statistic(v[rng.integers(0, v.shape[0], v.shape[0])]),
                                 dtype=np.float64) for _ in range(n_boot)])
    alpha = (1.0 - level) / 2
    ci = np.stack([np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)],
                  axis=-1)
    return (draws.std(axis=0, ddof=1) if n_boot > 1 else None), ci


def interval_text(value: Any, std: float | None = None, ci: Sequence[float] | None = None,
                  fmt: str = ".4g", why: str = NO_SPREAD) -> str:
    """``value ± std [lo, hi]`` for a text line or a report cell; ``value (why)`` where
    there is no interval, so a figure is never shown bare."""
    if value is None:
        return f"– ({why})"
    if isinstance(value, str) or not np.isfinite(value):  # "inf" from JSON, τ = inf
        return f"{value} (the phase does not percolate)"
    text = f"{value:{fmt}}"
    if std is not None:
        text += f" ± {std:{fmt}}"
    if ci is None:
        return f"{text} ({why})"
    return f"{text} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def percent_interval(k: int, n: int, *, key: str) -> dict[str, Any]:
    """``<key>_std`` (binomial, √(p(1−p)/n), in %), ``<key>_ci95`` (Wilson, in %) and
    ``<key>_interval`` (the method) of the percentage ``100·k/n``; None when ``n`` is 0."""
    std = None if n <= 0 else float(100.0 * np.sqrt((k / n) * (1 - k / n) / n))
    return {f"{key}_std": std, f"{key}_ci95": wilson_interval(k, n),
            f"{key}_interval": WILSON_METHOD}
