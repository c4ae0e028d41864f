"""Interface areas of the phases of a label volume, by three named methods.

Methods and their known biases (measured on analytic shapes, see ``docs/metrics.md`` and
``tests/test_surface.py``):

``face``
    Face counting: every voxel face between two different phases counts with its area
    (the product of the two other voxel sizes). Exact for interfaces aligned with the
    axes; for an interface of unit normal n it counts |n_x| + |n_y| + |n_z| times the true
    area (√2 for a 45° plane, √3 for a (1, 1, 1) plane) — 3/2 on average over all
    orientations, so a sphere comes out ~1.5× too large. Resolution does not remove
    this bias.
``marching_cubes``
    Area of the triangulated 0.5-isosurface of the phase indicator
    (``skimage.measure.marching_cubes``' triangulation with the voxel spacing, summed as a
    histogram of cube configurations times their areas: :mod:`._cubes`). On a binary
    indicator the triangles follow the voxel staircase: a sphere comes out ~2–5 % too
    large (less at higher resolution), a 45° plane ~4 % too large, axis-aligned planes
    exact.
``gradient``
    ∫|∇χ_σ| dV, with χ_σ the phase indicator smoothed by a Gaussian of σ voxels
    (default 1) and the gradient by central differences with the spacing (a diffuse-
    interface / co-area estimate). Nearly orientation-independent: planes within ~1 %,
    spheres slightly low (−2 to −4 % at R = 10–20 voxels, from the smoothing of a
    curved surface); thin features (< ~2σ) are under-counted.

The interface voxel percentage (share of voxels with a face neighbour of another phase,
per phase pair) is :func:`electrode_ct.metrics.quality.interface_percentage`.

Interfaces with the volume border are never counted. The area between two phases a and
b is obtained from surface areas only: A_ab = (S_a + S_b − S_a∪b) / 2, an identity for
any number of phases, so every method gives pair areas consistent with its phase areas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from electrode_ct.errors import InputError
from electrode_ct.metrics import _cubes
from electrode_ct.metrics._phase import label_array
from electrode_ct.metrics.fractions import phase_keys
from electrode_ct.volume import as_spacing

METHODS = ("face", "marching_cubes", "gradient")
"""Names of the surface-area methods."""


Region = tuple[tuple[slice, ...], tuple[bool, ...], tuple[bool, ...]]
"""Where a block lies: its interior in the region read, and per axis whether it is on the
volume's lower / upper face."""


def whole(shape: tuple[int, ...]) -> Region:
    """The :data:`Region` of a whole volume (one block)."""
    return tuple(slice(0, n) for n in shape), (True,) * 3, (True,) * 3


def gradient_halo(sigma: float) -> int:
    """Voxels of halo the ``gradient`` method needs: the Gaussian's radius plus one."""
    return int(4.0 * float(sigma) + 0.5) + 1


def _gradient_sum(mask: np.ndarray, spacing: tuple[float, float, float], sigma: float,
                  interior: tuple[slice, ...]) -> float:
    chi = ndimage.gaussian_filter(mask.astype(np.float32), sigma=sigma, mode="nearest")
    sq = np.zeros(mask.shape, np.float32)
    for ax in range(3):
        if mask.shape[ax] < 2:  # a single slice has no gradient across it
            continue
        g = np.gradient(chi, spacing[ax], axis=ax)
        sq += g * g
    return float(np.sqrt(sq, out=sq)[interior].sum(dtype=np.float64))


def _union(labels: np.ndarray, group: tuple[int, ...]) -> np.ndarray:
    mask = labels == group[0]
    for v in group[1:]:
        mask |= labels == v
    return mask


def region_statistics(labels: np.ndarray, groups: list[tuple[int, ...]], *, method: str,
                      where: Region, spacing: tuple[float, float, float],
                      sigma: float = 1.0) -> list[Any]:
    """Additive statistics of the boundary of each group of phases within a block.

    Parameters
    ----------
    labels : numpy.ndarray
        Labels of the region read: the block plus a halo (1 voxel for ``face`` and
        ``marching_cubes``, :func:`gradient_halo` for ``gradient``).
    groups : list of tuple of int
        Label values making up each region whose boundary is measured.
    method : {"face", "marching_cubes", "gradient"}
    where : Region
        The block in ``labels`` (:func:`whole` for a whole volume).
    spacing : tuple of 3 float
        Voxel size (z, y, x) in µm.
    sigma : float
        Smoothing of the ``gradient`` method, in voxels.

    Returns
    -------
    list
        One statistic per group: cell histograms (``marching_cubes``), face counts per
        axis (``face``), integer arrays that add exactly over blocks; the interior sum of
        the gradient magnitude (``gradient``, float). :func:`statistic_area` turns a
        (summed) statistic into an area.
    """
    interior, lower, upper = where
    if method == "gradient":
        return [_gradient_sum(_union(labels, g), spacing, sigma, interior) for g in groups]
    if method == "face":
        sub = labels[tuple(slice(i.start, i.stop + (0 if up else 1))
                           for i, up in zip(interior, upper, strict=True))]
        extent = tuple(i.stop - i.start for i in interior)
        return [_cubes.face_counts(_union(sub, g), extent) for g in groups]
    cells = _cubes.padded_cells(labels, interior, lower, upper)
    border = _cubes.border_count(tuple(n - 1 for n in cells.shape), lower, upper)
    config: dict[int, np.ndarray] = {}
    out = []
    for g in groups:
        for v in g:
            if v not in config:
                config[v] = _cubes.configurations(cells == v)
        union = config[g[0]].copy()
        for v in g[1:]:
            union |= config[v]
        out.append(_cubes.cube_histogram(union, border))
    return out


def statistic_area(stat: Any, *, method: str, spacing: tuple[float, float, float]) -> float:
    """Area in µm² of a :func:`region_statistics` statistic (summed over blocks)."""
    if method == "face":
        return _cubes.face_area(stat, spacing)
    if method == "marching_cubes":
        return _cubes.marching_cubes_area(stat, spacing)
    return float(stat * np.prod(spacing))


def phase_surface_area(
    mask: Any,
    *,
    method: str = "marching_cubes",
    spacing: float | Iterable[float] | None = None,
    sigma: float = 1.0,
) -> float:
    """Area of the boundary of a region (inside the volume), in µm².

    Parameters
    ----------
    mask : numpy.ndarray of bool
        Region (z, y, x); a 2-D array is one slice.
    method : {"face", "marching_cubes", "gradient"}
        Estimator (see the module docstring for each one's bias).
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in µm (default 1).
    sigma : float
        Gaussian smoothing of the ``gradient`` method, in voxels.

    Returns
    -------
    float
        Interface area in µm² (borders of the volume are not counted).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4, 4), bool); m[:2] = True      # a plane z = 2 of 4 × 4 voxels
    >>> phase_surface_area(m, method="face", spacing=0.5)
    4.0
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise InputError(f"mask: expected a 2-D or 3-D array, got shape {m.shape}")
    sp3 = as_spacing(spacing, name="spacing")
    check_method(method, sigma)
    (stat,) = region_statistics(m.view(np.uint8), [(1,)], method=method, where=whole(m.shape),
                                spacing=sp3, sigma=float(sigma))
    return statistic_area(stat, method=method, spacing=sp3)


def check_method(method: str, sigma: float = 1.0) -> None:
    """Refuse an unknown method or a non-positive ``sigma`` (one line naming it)."""
    if method not in METHODS:
        raise InputError(f"surface method: expected one of {', '.join(METHODS)}, "
                         f"got {method!r}")
    if method == "gradient" and not sigma > 0:
        raise InputError(f"sigma: expected a positive number of voxels, got {sigma!r}")


def phase_groups(n: int, *, pairs: bool = True) -> list[tuple[int, ...]]:
    """Indices of the phases, then of every pair (i < j) when ``pairs``."""
    singles: list[tuple[int, ...]] = [(i,) for i in range(n)]
    return singles + ([(i, j) for i in range(n) for j in range(i + 1, n)] if pairs else [])


def assemble(areas: list[float], keys: list[str], total: float, *, method: str,
             pairs: bool = True) -> dict[str, Any]:
    """The :func:`surface_areas` result from the areas of :func:`phase_groups` (µm²) and
    the total volume (µm³)."""
    n = len(keys)
    phase = dict(zip(keys, areas[:n], strict=True))
    out: dict[str, Any] = {
        "method": method,
        "total_volume_um3": total,
        "area_um2": phase,
        "specific_surface_area_per_um": {k: s / total for k, s in phase.items()},
    }
    if pairs:
        inter: dict[str, float] = {}
        for (i, j), s_u in zip(phase_groups(n)[n:], areas[n:], strict=True):
            inter[f"{keys[i]}|{keys[j]}"] = max(0.0, 0.5 * (phase[keys[i]] + phase[keys[j]]
                                                            - s_u))
        out["interfacial_area_um2"] = inter
        out["specific_interfacial_area_per_um"] = {k: v / total for k, v in inter.items()}
    return out


def surface_areas(
    labels: Any,
    *,
    method: str = "marching_cubes",
    spacing: float | Iterable[float] | None = None,
    class_map: Mapping[str, int] | None = None,
    values: Iterable[int] | None = None,
    pairs: bool = True,
    sigma: float = 1.0,
) -> dict[str, Any]:
    """Surface area of every phase and interfacial area of every phase pair.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x).
    method : {"face", "marching_cubes", "gradient"}
        Estimator (see the module docstring for each one's bias).
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in µm (default 1: areas in voxel faces).
    class_map : mapping, optional
        name -> value, for the keys.
    values : iterable of int, optional
        Phases to report (default: the values present).
    pairs : bool
        Also compute the interfacial area of every pair (one more surface per pair).
    sigma : float
        Smoothing of the ``gradient`` method, in voxels.

    Returns
    -------
    dict
        ``method``; ``total_volume_um3``; ``area_um2`` ({phase: area of its interface with
        all other phases, µm²}); ``specific_surface_area_per_um`` ({phase: that area per
        TOTAL volume, µm⁻¹}); with ``pairs``: ``interfacial_area_um2`` and
        ``specific_interfacial_area_per_um`` keyed ``"a|b"``. Phase keys are class names or
        values as strings.
    """
    a = label_array(labels)
    if a.ndim == 2:
        a = a[None]
    sp3 = as_spacing(spacing, name="spacing")
    check_method(method, sigma)
    vals = np.unique(a) if values is None else np.asarray(list(values), dtype=np.int64)
    groups = [tuple(int(vals[i]) for i in g) for g in phase_groups(len(vals), pairs=pairs)]
    stats = region_statistics(a, groups, method=method, where=whole(a.shape), spacing=sp3,
                              sigma=float(sigma))
    areas = [statistic_area(st, method=method, spacing=sp3) for st in stats]
    return assemble(areas, phase_keys(vals, class_map), float(a.size * np.prod(sp3)),
                    method=method, pairs=pairs)
