"""Particle-size distributions from a morphology table (number- and volume-weighted)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError

QUANTILES = (0.1, 0.5, 0.9)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: Any) -> np.ndarray:
    """Quantiles of ``values`` weighted by ``weights`` (midpoint cumulative interpolation).

    With equal weights this is the Hazen plotting position; a single value is returned
    for every quantile. NaN when there is no value.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if v.size == 0 or w.sum() <= 0:
        return np.full(q.shape, np.nan)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(q, cum, v)


def _summary(d: np.ndarray, w: np.ndarray) -> dict[str, float]:
    d10, d50, d90 = weighted_quantiles(d, w, QUANTILES)
    mean = float(np.sum(d * w) / np.sum(w)) if w.sum() > 0 else float("nan")
    return {"mean_um": mean, "d10_um": float(d10), "d50_um": float(d50), "d90_um": float(d90)}


def _figures(d: np.ndarray) -> np.ndarray:
    """Number- then volume-weighted mean, d10, d50, d90 (µm) of diameters ``d``."""
    out = []
    for w in (np.ones_like(d), np.pi / 6.0 * d**3):
        out.extend(_summary(d, w).values())
    return np.asarray(out)


def size_intervals(dist: dict[str, Any], diameters: np.ndarray, *, n_boot: int,
                   seed: int = 0) -> dict[str, Any]:
    """Add bootstrap ``<key>_std`` and ``<key>_ci95`` to a :func:`size_distribution` result.

    Parameters
    ----------
    dist : dict
        A :func:`size_distribution` result (changed in place and returned).
    diameters : numpy.ndarray
        The kept equivalent diameters (µm), one per particle.
    n_boot : int
        Bootstrap resamples over particles (>= 1).
    seed : int
        Resampling seed.

    Returns
    -------
    dict
        ``dist`` with, in ``number`` and ``volume`` and at the top level (volume-weighted),
        ``mean_um_std``, ``mean_um_ci95`` … ``d90_um_ci95`` (µm; None for fewer than 2
        particles) and ``bootstrap``: ``{"n", "seed", "method"}``.
    """
    from electrode_ct.uncertainty import BOOTSTRAP_METHOD, bootstrap_intervals, check_bootstrap

    n_boot = check_bootstrap(n_boot)
    d = np.asarray(diameters, dtype=np.float64)
    std, ci = bootstrap_intervals(d, _figures, n_boot=n_boot, seed=seed) or (None, None)
    keys = ("mean_um", "d10_um", "d50_um", "d90_um")
    for j, weight in enumerate(("number", "volume")):
        for i, key in enumerate(keys):
            k = 4 * j + i
            dist[weight][f"{key}_std"] = None if std is None else float(std[k])
            dist[weight][f"{key}_ci95"] = None if ci is None else [float(ci[k, 0]),
                                                                   float(ci[k, 1])]
    dist.update({k: v for k, v in dist["volume"].items() if k.endswith(("_std", "_ci95"))})
    dist["bootstrap"] = {"n": n_boot, "seed": int(seed), "method": BOOTSTRAP_METHOD}
    return dist


def size_distribution(
    table: pd.DataFrame,
    *,
    min_diameter_um: float = 0.0,
    bins: int | np.ndarray = 30,
    exclude_border: bool = False,
    bootstrap: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Number- and volume-weighted equivalent-diameter distribution of a particle table.

    Parameters
    ----------
    table : pandas.DataFrame
        A morphology table with ``equivalent_diameter_um`` (and ``touches_border`` when
        ``exclude_border``).
    min_diameter_um : float
        Particles with a smaller equivalent diameter (µm) are left out (resolution limit).
    bins : int or array
        Number of histogram bins between the smallest and largest kept diameter, or the
        bin edges in µm.
    exclude_border : bool
        Leave out particles that touch the volume border.
    bootstrap : int, optional
        Bootstrap resamples over particles for the ``_std`` / ``_ci95`` companions
        (:func:`size_intervals`); None leaves them out.
    seed : int
        Bootstrap seed.

    Returns
    -------
    dict
        ``n_particles`` (kept), ``n_excluded``, ``min_diameter_um``; ``number`` and
        ``volume``: each ``{"mean_um", "d10_um", "d50_um", "d90_um"}``; top-level
        ``mean_um, d10_um, d50_um, d90_um`` repeat the **volume-weighted** values (the
        laser-diffraction convention); ``histogram``: ``edges_um``,
        ``number_fraction``, ``volume_fraction``. Empty tables give NaN statistics.

    Raises
    ------
    InputError
        When the table has no ``equivalent_diameter_um`` column or the cut is negative.
    """
    if "equivalent_diameter_um" not in table.columns:
        raise InputError("table: no 'equivalent_diameter_um' column (not a morphology table?)")
    if not np.isfinite(min_diameter_um) or min_diameter_um < 0:
        raise InputError(f"min_diameter_um: expected a number >= 0 µm, got {min_diameter_um}")
    d_all = table["equivalent_diameter_um"].to_numpy(dtype=np.float64)
    keep = np.isfinite(d_all) & (d_all >= min_diameter_um)
    if exclude_border and "touches_border" in table.columns:
        keep &= ~table["touches_border"].to_numpy(dtype=bool)
    d = d_all[keep]
    vol = np.pi / 6.0 * d**3
    number = _summary(d, np.ones_like(d))
    volume = _summary(d, vol)
    if d.size:
        edges = np.asarray(bins, dtype=np.float64) if np.ndim(bins) else np.linspace(
            d.min(), d.max() if d.max() > d.min() else d.min() + 1.0, int(bins) + 1)
        n_hist = np.histogram(d, edges)[0].astype(np.float64)
        v_hist = np.histogram(d, edges, weights=vol)[0]
        n_frac = n_hist / max(n_hist.sum(), 1.0)
        v_frac = v_hist / v_hist.sum() if v_hist.sum() > 0 else v_hist
    else:
        edges, n_frac, v_frac = np.zeros(0), np.zeros(0), np.zeros(0)
    dist = {
        "n_particles": int(d.size),
        "n_excluded": int(d_all.size - d.size),
        "min_diameter_um": float(min_diameter_um),
        **volume,
        "number": number,
        "volume": volume,
        "histogram": {
            "edges_um": edges.tolist(),
            "number_fraction": n_frac.tolist(),
            "volume_fraction": v_frac.tolist(),
        },
    }
    return dist if bootstrap is None else size_intervals(dist, d, n_boot=bootstrap, seed=seed)


def psd_summary(table: pd.DataFrame, n_boot: int, seed: int = 0) -> dict[str, Any] | None:
    """:func:`size_distribution` with bootstrap intervals and without its histogram (the
    ``size_distribution`` of ``ect measure --json`` and the pipeline's measure summary);
    None for a table without ``equivalent_diameter_um``."""
    if "equivalent_diameter_um" not in table.columns:
        return None
    dist = size_distribution(table, bootstrap=n_boot, seed=seed)
    dist.pop("histogram")
    return dist


def plot_size_distribution(
    dist: dict[str, Any], *, path: str | os.PathLike[str] | None = None, ax: Any = None
) -> Any:
    """Plot a :func:`size_distribution` result: number and volume fractions per bin.

    Parameters
    ----------
    dist : dict
        Output of :func:`size_distribution`.
    path : path-like, optional
        Save the figure there (PNG/SVG/PDF by extension, written atomically).
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from electrode_ct.io._atomic import atomic_path

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    hist = dist["histogram"]
    edges = np.asarray(hist["edges_um"])
    if edges.size > 1:
        width = np.diff(edges)
        ax.bar(edges[:-1], hist["number_fraction"], width=width, align="edge", alpha=0.5,
               label="number")
        ax.bar(edges[:-1], hist["volume_fraction"], width=width, align="edge", alpha=0.5,
               label="volume")
        for key, style in (("d10_um", ":"), ("d50_um", "--"), ("d90_um", ":")):
            ax.axvline(dist["volume"][key], color="k", linestyle=style, linewidth=1)
            ci = dist["volume"].get(f"{key}_ci95")
            if ci:  # the bootstrap interval as a band
                ax.axvspan(ci[0], ci[1], color="k", alpha=0.12, lw=0)
    ax.set_xlabel("equivalent diameter (µm)")
    ax.set_ylabel("fraction")
    ci = dist["volume"].get("d50_um_ci95")
    ax.set_title(f"{dist['n_particles']} particles, volume d50 = {dist['volume']['d50_um']:.3g} µm"
                 + (f" [{ci[0]:.3g}, {ci[1]:.3g}] (95 % bootstrap, grey bands)" if ci else ""))
    ax.legend()
    if path is not None:
        suffix = os.path.splitext(os.fspath(path))[1] or ".png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix.lstrip("."), dpi=120, bbox_inches="tight")
    return fig
