"""Uncertainty of the % flawed: across sub-volumes and along the flawed-slices sweep.

The binomial (Wilson) interval of the whole scan's % flawed is
:func:`electrode_ct.uncertainty.percent_interval`. Here:

- :func:`percent_flawed_subvolumes`: the particles are assigned to the cubes of the
  metrics' sub-volume grid (:func:`electrode_ct.metrics.spread.subvolume_grid`) by their
  centroid; the % flawed of every cube holding at least one particle gives a mean ± std
  and a Student t-interval (the spread of the figure across the electrode, which the
  binomial interval, counting particles as independent, does not see).
- :func:`sweep_intervals`: the Wilson interval of the % flawed of every rule "at least m
  of the particle's slices flawed" (:func:`electrode_ct.cracks.cnn_model.m_sweep`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.uncertainty import T_METHOD, t_interval, wilson_interval

SUBVOLUME_OPTION = "--subvolume-um (steps.cracks.subvolume_um)"
"""The option and config key named in sub-volume errors."""


def percent_flawed_subvolumes(flawed: Any, centroids: np.ndarray, shape: Sequence[int],
                              spacing: Sequence[float], size_um: float | None = None, *,
                              name: str = SUBVOLUME_OPTION) -> dict[str, Any]:
    """% flawed per sub-volume and its t-interval over the sub-volumes.

    Parameters
    ----------
    flawed : array-like of bool
        Call per particle.
    centroids : numpy.ndarray
        ``(n, 3)`` particle centroids (z, y, x), voxels.
    shape : sequence of 3 int
        Volume shape, voxels.
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    size_um : float, optional
        Sub-volume edge, µm (default: half the shortest extent, at most 256 voxels).
    name : str
        Option named in errors.

    Returns
    -------
    dict
        ``mean``, ``std``, ``ci95`` (in %, the t-interval clipped to [0, 100]; None with
        fewer than 2 sub-volumes holding particles), ``n`` (such sub-volumes), ``n_grid``
        (all of them), ``size_um``, ``percent_flawed`` and ``n_particles`` per sub-volume
        with particles, ``method``.

    Raises
    ------
    InputError
        An edge <= 0, larger than the volume or giving one sub-volume.
    """
    from electrode_ct.metrics.spread import subvolume_grid

    f = np.asarray(flawed, bool).ravel()
    c = np.asarray(centroids, np.float64).reshape(-1, 3)
    size, grid = subvolume_grid(shape, spacing, size_um, name=name)
    pct, count = [], []
    for region in grid:
        inside = np.ones(len(c), bool)
        for a, sl in enumerate(region):
            inside &= (c[:, a] >= sl.start - 0.5) & (c[:, a] < sl.stop - 0.5)
        if inside.any():
            pct.append(float(100.0 * f[inside].mean()))
            count.append(int(inside.sum()))
    ti = t_interval(pct)
    if ti["ci95"] is not None:  # a percentage: the interval clipped to [0, 100]
        ti["ci95"] = [max(0.0, ti["ci95"][0]), min(100.0, ti["ci95"][1])]
    return {**ti, "n_grid": len(grid), "size_um": size, "percent_flawed": pct,
            "n_particles": count, "method": T_METHOD + ", clipped to [0, 100] %; sub-volumes "
            "without a particle centroid left out"}


def sweep_intervals(sweep: Mapping[int, float], n_particles: int) -> dict[int, list[float] | None]:
    """Wilson 95 % interval (in %) of every point of a flawed-slices sweep.

    Parameters
    ----------
    sweep : mapping
        ``m -> % flawed`` (:func:`~electrode_ct.cracks.cnn_model.m_sweep`).
    n_particles : int
        Particles classified.
    """
    return {int(m): wilson_interval(int(round(p * n_particles / 100.0)), n_particles)
            for m, p in sweep.items()}
