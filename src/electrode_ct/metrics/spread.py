"""Sub-volume spread of the microstructure metrics: a grid of equal sub-volumes, the
figures of each, and their mean ± std and 95 % t-interval (the ``<key>_std`` and
``<key>_ci95`` companions of ``ect metrics --json`` and the pipeline's metrics.json).

The grid: cubes of ``size_um`` per edge (rounded to whole voxels on each axis), as many
as fit along each axis, the grid centred in the volume (the leftover margin split evenly
and left out). A 2-D image (one slice) is tiled in-plane only. Default edge: half the
shortest extent, at most :data:`MAX_DEFAULT_EDGE` voxels, so a 3-D volume gives at least
2 × 2 × 2 sub-volumes.

Tortuosity is solved with :func:`electrode_ct.metrics.tortuosity.tortuosity` on at most
:data:`MAX_TORTUOSITY_SUBVOLUMES` of those sub-volumes (evenly spread over the grid); a
sub-volume in which the phase does not percolate (τ = inf) is counted, not averaged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.uncertainty import T_METHOD, t_interval

SPREAD_KEYS = ("volume_fraction", "specific_surface_area_per_um",
               "specific_interfacial_area_per_um", "interface_voxel_percent")
"""Metrics keys (each a dict per phase or pair) that gain ``_std`` / ``_ci95``."""

TORTUOSITY_KEYS = ("tortuosity", "effective_diffusivity_ratio")
"""Tortuosity keys (dict per axis) that gain ``_std`` / ``_ci95``."""

SUBVOLUME_OPTION = "--subvolume-um (steps.metrics.subvolume_um)"
"""The option and config key named in sub-volume errors."""

MAX_DEFAULT_EDGE = 256
"""Largest default sub-volume edge, voxels."""

MAX_TORTUOSITY_SUBVOLUMES = 8
"""Most sub-volumes solved for the tortuosity spread, per direction."""


def subvolume_grid(shape: Sequence[int], spacing: Sequence[float], size_um: float | None = None,
                   *, name: str = SUBVOLUME_OPTION) -> tuple[float, list[tuple[slice, ...]]]:
    """The sub-volumes (as slices) of a (z, y, x) volume.

    Parameters
    ----------
    shape : sequence of 3 int
        Volume shape (z, y, x), voxels; z = 1 is a 2-D image.
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    size_um : float, optional
        Sub-volume edge, µm; default half the shortest extent rounded down to whole
        voxels (at most :data:`MAX_DEFAULT_EDGE` voxels), so at least 2 sub-volumes fit.
    name : str
        Option or config key named in errors.

    Returns
    -------
    (float, list of tuple of slice)
        The edge used (µm) and the sub-volumes, in C order of the grid.

    Raises
    ------
    InputError
        An edge <= 0, larger than the volume, or giving fewer than 2 sub-volumes.
    """
    shape = tuple(int(s) for s in shape)
    sp = np.asarray(spacing, dtype=np.float64)
    tiled = [i for i, s in enumerate(shape) if s > 1]
    extent = np.asarray(shape) * sp
    if not tiled:
        raise InputError(f"{name}: a volume of one voxel has no sub-volumes, no spread")
    if size_um is None:
        size_um = float(min(min(shape[i] // 2 * sp[i] for i in tiled),
                            MAX_DEFAULT_EDGE * min(sp[i] for i in tiled)))
    if not np.isfinite(size_um) or size_um <= 0:
        raise InputError(f"{name}: expected a sub-volume edge > 0 µm, got {size_um!r}")
    edge = [max(1, round(size_um / sp[i])) if i in tiled else shape[i] for i in range(3)]
    if any(edge[i] > shape[i] for i in tiled):
        raise InputError(
            f"{name}: a sub-volume of {size_um:g} µm is larger than the volume "
            f"({' x '.join(f'{e:g}' for e in extent)} µm); expected at most half the "
            f"shortest extent ({min(extent[i] for i in tiled) / 2:g} µm)")
    counts = [shape[i] // edge[i] for i in range(3)]
    if int(np.prod(counts)) < 2:
        raise InputError(
            f"{name}: {size_um:g} µm gives one sub-volume, no spread; expected at most half "
            f"the shortest extent ({min(extent[i] for i in tiled) / 2:g} µm)")
    start = [(shape[i] - counts[i] * edge[i]) // 2 for i in range(3)]
    grid = [tuple(slice(start[a] + ix[a] * edge[a], start[a] + (ix[a] + 1) * edge[a])
                  for a in range(3)) for ix in np.ndindex(*counts)]
    return float(size_um), grid


def read_region(src: Any, region: tuple[slice, ...]) -> np.ndarray:
    """The voxels of ``region`` from an array or a block source (``ZarrRef``)."""
    if hasattr(src, "open"):
        return np.asarray(src.open("r")[region])
    return np.asarray(src[region])


def subvolume_figures(src: Any, region: tuple[slice, ...], spacing: Sequence[float],
                      class_map: Mapping[str, int] | None, surface_method: str
                      ) -> dict[str, dict[str, float]]:
    """Volume fractions, specific surfaces (µm⁻¹) and interface voxel % of one sub-volume."""
    from electrode_ct.metrics.fractions import volume_fractions
    from electrode_ct.metrics.quality import interface_percentage
    from electrode_ct.metrics.surface import surface_areas

    labels = read_region(src, region)
    surf = surface_areas(labels, method=surface_method, spacing=tuple(spacing),
                         class_map=class_map)
    return {"volume_fraction": volume_fractions(labels, class_map=class_map),
            "specific_surface_area_per_um": surf["specific_surface_area_per_um"],
            "specific_interfacial_area_per_um": surf["specific_interfacial_area_per_um"],
            "interface_voxel_percent": interface_percentage(labels, class_map=class_map)}


def companions(samples: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, Any]:
    """``<key>_std`` and ``<key>_ci95`` dicts from per-sub-volume values of each figure."""
    out: dict[str, Any] = {}
    for key, per in samples.items():
        ivs = {k: t_interval(v) for k, v in per.items()}
        out[f"{key}_std"] = {k: iv["std"] for k, iv in ivs.items()}
        out[f"{key}_ci95"] = {k: iv["ci95"] for k, iv in ivs.items()}
    return out


def metrics_spread(result: Mapping[str, Any], src: Any, grid: list[tuple[slice, ...]], *,
                   spacing: Sequence[float], class_map: Mapping[str, int] | None,
                   surface_method: str, client: Any = None) -> dict[str, Any]:
    """Companions of :data:`SPREAD_KEYS` over the sub-volumes of ``grid``.

    Parameters
    ----------
    result : mapping
        The whole-volume metrics (their phase/pair keys are the companions' keys; a
        phase absent from a sub-volume counts 0 there).
    src : numpy.ndarray or ZarrRef
        The phase labels.
    grid : list of tuple of slice
        From :func:`subvolume_grid`.
    spacing : sequence of float
        Voxel size (z, y, x), µm.
    class_map : mapping, optional
        Phase names.
    surface_method : str
        As for :func:`electrode_ct.metrics.surface.surface_areas`.
    client : distributed.Client, optional
        One task per sub-volume on the cluster (the engine path); None runs them here.

    Returns
    -------
    dict
        ``<key>_std`` ({name: std or None}) and ``<key>_ci95`` ({name: [lo, hi] or None})
        for each key of :data:`SPREAD_KEYS`.
    """
    args = (tuple(spacing), dict(class_map) if class_map else None, surface_method)
    if client is None:
        figs = [subvolume_figures(src, r, *args) for r in grid]
    else:
        futures = client.map(subvolume_figures, [src] * len(grid), grid,
                             *([a] * len(grid) for a in args), pure=False)
        figs = client.gather(futures)
    samples = {key: {k: [f[key].get(k, 0.0) for f in figs] for k in result[key]}
               for key in SPREAD_KEYS}
    return companions(samples)


def tortuosity_spread(mask: np.ndarray, grid: list[tuple[slice, ...]], axes: Sequence[str], *,
                      spacing: Sequence[float], rtol: float) -> dict[str, Any]:
    """Companions of :data:`TORTUOSITY_KEYS` over at most
    :data:`MAX_TORTUOSITY_SUBVOLUMES` sub-volumes of ``grid``.

    Returns
    -------
    dict
        ``tortuosity_std``, ``tortuosity_ci95``, ``effective_diffusivity_ratio_std``,
        ``effective_diffusivity_ratio_ci95`` (per axis; None with fewer than 2
        percolating sub-volumes) and ``tortuosity_subvolumes``: per axis ``n`` (solved)
        and ``n_percolating``.
    """
    from electrode_ct.metrics.tortuosity import tortuosity

    pick = np.unique(np.linspace(0, len(grid) - 1, min(len(grid), MAX_TORTUOSITY_SUBVOLUMES))
                     .round().astype(int))
    taus: dict[str, list[float]] = {}
    dratio: dict[str, list[float]] = {}
    for ax in axes:
        res = [tortuosity(mask[grid[i]], axis=ax, spacing=tuple(spacing), rtol=rtol)
               for i in pick]
        taus[ax] = [r.tortuosity for r in res]
        dratio[ax] = [r.effective_diffusivity_ratio for r in res]  # 0 where not percolating
    out = companions({"tortuosity": taus, "effective_diffusivity_ratio": dratio})
    out["tortuosity_subvolumes"] = {
        ax: {"n": len(v), "n_percolating": int(np.isfinite(v).sum())} for ax, v in taus.items()}
    return out


def spread_info(size_um: float, grid: list[tuple[slice, ...]]) -> dict[str, Any]:
    """``subvolumes``: edge (µm), shape (voxels), count and the interval's method."""
    return {"size_um": size_um, "shape_voxels": [s.stop - s.start for s in grid[0]],
            "n": len(grid), "method": T_METHOD,
            "note": "a companion is null where fewer than 2 sub-volumes give a finite value "
                    "(e.g. the phase percolates in fewer than 2 sub-volumes)"}
