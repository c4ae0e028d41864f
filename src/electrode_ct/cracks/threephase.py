"""3-phase particle segmentation: solid / internal flaw / exterior, and crack measurements.

Inside each healed particle mask (cracks and voids included), voxels darker than an
in-mask threshold are *flaw* (crack or void), the others *solid*; everything outside the
masks is *exterior*. The threshold is computed once over the masks of the particles
being split (triangle by default: the solid peak with the long dark tail of the flaws),
on the grey volume (optionally smoothed by a Gaussian of ``sigma`` voxels: smoothing
widens thin cracks and moves the triangle cut towards the solid peak, so it is off by
default).
Voxels in the outermost layer of a mask are flaw only when they are not part of the
original particle labels (a crack cut out by the instance segmentation), because the
point-spread function darkens every particle's surface.

All per-particle measurements are ``bincount`` reductions over the whole volume:
crack volume and fraction, crack surface area (voxel faces between flaw and solid of the
same particle), main crack orientation (the normal of the crack voxels' best-fit plane:
the eigenvector of the smallest eigenvalue of their covariance) and the mean distance
of the crack voxels to the particle surface.

On noisy, blurred scans the voxel split is not a volume measurement (a crack a voxel or
two wide is blurred over several voxels, partly above and partly below any threshold);
the integral estimate of :mod:`electrode_ct.cracks.pvolume` is added as
``crack_volume_pv_um3`` / ``crack_volume_fraction_pv``: use those for crack volumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks.pvolume import PV_COLUMNS, crack_volume_pv
from electrode_ct.errors import InputError
from electrode_ct.volume import as_spacing

PHASES = {"exterior": 0, "solid": 1, "flaw": 2}
"""Values of the 3-phase label volume."""

THREEPHASE_COLUMNS = (
    "crack_voxels", "crack_volume_um3", "crack_volume_fraction", "crack_surface_um2",
    "crack_normal_z", "crack_normal_y", "crack_normal_x", "crack_tilt_deg",
    "crack_depth_um", *PV_COLUMNS,
)
"""Table columns added by :func:`three_phase`."""


MASK_BINS = 256
"""Grouped-histogram bins of the in-mask threshold's criterion."""


def in_mask_threshold(values: np.ndarray, *, method: str = "triangle") -> float:
    """Grey threshold between flaw and solid from the in-mask grey values.

    Parameters
    ----------
    values : numpy.ndarray
        Grey values inside the healed masks (1-D).
    method : str
        Any two-class method of :func:`electrode_ct.segment.threshold.threshold_values`
        (``triangle``, ``otsu``, ``li``) or a number given as text (manual threshold).
    """
    from electrode_ct.histogram import image_histogram, value_range

    if values.size == 0 or _manual(method) is not None:
        return in_mask_threshold_histogram(None, (np.inf, -np.inf), method=method)
    rng = value_range(values)
    hist = image_histogram(values) if rng[0] < rng[1] else None
    return in_mask_threshold_histogram(hist, rng, method=method)


def _manual(method: str) -> float | None:
    """A manual threshold given as text, else None."""
    try:
        return float(method)
    except ValueError:
        return None


def in_mask_threshold_histogram(hist: tuple[np.ndarray, Any] | None,
                                value_range: tuple[float, float], *,
                                method: str = "triangle") -> float:
    """:func:`in_mask_threshold` from the in-mask values' fine histogram
    (:func:`electrode_ct.histogram.image_histogram`'s counts and bins, e.g. summed over
    blocks) and their range; identical to it on the values themselves."""
    from electrode_ct.segment.threshold import cuts_from_histogram

    manual = _manual(method)
    if manual is not None:
        return manual
    if not value_range[0] <= value_range[1]:
        raise InputError("three-phase: no voxels inside the particle masks")
    use = hist if value_range[0] < value_range[1] else None
    return float(cuts_from_histogram(use, value_range, method=method, nbins=MASK_BINS)[0])


def _crack_area(phases: np.ndarray, healed: np.ndarray, part_row: np.ndarray, n: int,
                sp: tuple[float, float, float]) -> np.ndarray:
    """Flaw/solid face area (µm²) of each row's particle: faces between a flaw and a
    solid voxel of the same particle, along each axis."""
    area = np.zeros(n)
    face = (sp[1] * sp[2], sp[0] * sp[2], sp[0] * sp[1])
    for a in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[a], hi[a] = slice(0, -1), slice(1, None)
        pa, pb = phases[tuple(lo)], phases[tuple(hi)]
        same = healed[tuple(lo)] == healed[tuple(hi)]
        edge = same & (((pa == 2) & (pb == 1)) | ((pa == 1) & (pb == 2)))
        r = part_row[tuple(lo)][edge]
        r = r[r >= 0]
        area += np.bincount(r, minlength=n) * face[a]
    return area


def _crack_normals(fr: np.ndarray, coords: tuple[np.ndarray, ...], count: np.ndarray,
                   sp: tuple[float, float, float]) -> np.ndarray:
    """Unit normal (n, 3) of each particle's crack best-fit plane (covariance of the crack
    voxel positions in µm), z component ≥ 0; NaN under 3 crack voxels."""
    n = len(count)
    pos = [c.astype(np.float64) * s for c, s in zip(coords, sp, strict=True)]
    cnt = np.maximum(count, 1)
    mean = np.stack([np.bincount(fr, weights=p, minlength=n) / cnt for p in pos], axis=1)
    cov = np.empty((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            c = np.bincount(fr, weights=pos[i] * pos[j], minlength=n) / cnt - mean[:, i] * mean[
                :, j]
            cov[:, i, j] = cov[:, j, i] = c
    cov[:, np.arange(3), np.arange(3)] += np.asarray(sp) ** 2 / 12.0
    _, vec = np.linalg.eigh(cov)
    normal = vec[:, :, 0]
    normal *= np.where(normal[:, :1] < 0, -1.0, 1.0)
    normal[count < 3] = np.nan
    return normal


def three_phase(grey: np.ndarray, healed: np.ndarray, ids: np.ndarray, *,
                labels: np.ndarray | None = None,
                spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
                method: str = "triangle", sigma: float = 0.0,
                threshold: float | None = None, reference: np.ndarray | None = None,
                fine: np.ndarray | None = None,
                integral: bool = True) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Split the particles ``ids`` into solid and flaw; measure their cracks.

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x).
    healed : numpy.ndarray
        Healed particle labels (same shape).
    ids : numpy.ndarray
        Particles to split; the voxels of other particles are solid.
    labels : numpy.ndarray, optional
        The original particle labels (flaw voxels cut out as 0); default ``healed``.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    method : str
        In-mask threshold method (``triangle`` default, ``otsu``, ``li``) or a number.
    sigma : float
        Gaussian smoothing (voxels) of the grey volume before thresholding (0 = none).
    threshold : float, optional
        Use this grey threshold (in the units of ``grey``) instead of computing one.
    reference : numpy.ndarray, optional
        Particles taken as intact for the integral crack volume
        (:func:`~electrode_ct.cracks.pvolume.crack_volume_pv`; default: the labels of
        ``healed`` not in ``ids``).
    fine : numpy.ndarray, optional
        The fine-scale image of ``grey`` (:func:`~electrode_ct.cracks.highpass.fine_scale`),
        computed when not given.
    integral : bool
        Compute the integral crack volume columns (about 0.35 s per 96³ volume, 3-4 times
        the voxel split); NaN when False.

    Returns
    -------
    phases : numpy.ndarray
        uint8 volume: 0 exterior, 1 solid, 2 flaw (:data:`PHASES`).
    table : pandas.DataFrame
        ``label`` then :data:`THREEPHASE_COLUMNS`, one row per id (ids order):
        ``crack_voxels``; ``crack_volume_um3``; ``crack_volume_fraction`` (of the healed
        particle volume); ``crack_surface_um2`` (flaw/solid interface area, voxel faces);
        ``crack_normal_z/y/x`` (unit normal of the crack's best-fit plane, NaN under 3
        crack voxels); ``crack_tilt_deg`` (angle between that normal and the z axis,
        0–90°); ``crack_depth_um`` (mean distance from the crack voxels to the particle
        surface); ``crack_volume_pv_um3`` and ``crack_volume_fraction_pv``: the integral
        (partial-volume) crack volume (µm³) and its fraction of the healed particle volume
        (:func:`~electrode_ct.cracks.pvolume.crack_volume_pv`; unbiased in sums, a single
        particle may be slightly negative).
    threshold : float
        The grey threshold used.
    """
    import edt
    from scipy import ndimage as ndi

    sp = as_spacing(spacing, name="spacing")
    ids = np.asarray(ids, np.int64)
    n_lut = int(max(int(healed.max()), int(ids.max(initial=0)))) + 1
    row = np.full(n_lut, -1, np.int64)
    row[ids] = np.arange(len(ids))
    part_row = row[healed]
    inside = part_row >= 0
    g = grey.astype(np.float32, copy=False)
    if sigma > 0:
        g = ndi.gaussian_filter(g, sigma)
    if threshold is None:
        threshold = in_mask_threshold(g[inside], method=method)
    dist = edt.edt(np.ascontiguousarray(healed), anisotropy=sp, black_border=False,
                   parallel=1)
    unit = min(sp)
    cut_out = (healed > 0) & ((labels == 0) if labels is not None else False)
    flaw = inside & (((g < threshold) & (dist > 1.5 * unit)) | cut_out)
    phases = np.zeros(healed.shape, np.uint8)
    phases[healed > 0] = PHASES["solid"]
    phases[flaw] = PHASES["flaw"]

    n = len(ids)
    fr = part_row[flaw]
    coords = np.nonzero(flaw)
    count = np.bincount(fr, minlength=n).astype(np.float64)
    total = np.bincount(part_row[inside], minlength=n).astype(np.float64)
    vox = float(np.prod(sp))
    area = _crack_area(phases, healed, part_row, n, sp)
    cnt = np.maximum(count, 1)
    normal = _crack_normals(fr, coords, count, sp)
    tilt = np.degrees(np.arccos(np.clip(np.abs(normal[:, 0]), 0, 1)))
    depth = np.bincount(fr, weights=dist[flaw].astype(np.float64), minlength=n) / cnt
    depth[count == 0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(total > 0, count / np.maximum(total, 1), np.nan)
    table = pd.DataFrame({
        "label": ids.astype(np.uint32),
        "crack_voxels": count.astype(np.int64),
        "crack_volume_um3": count * vox,
        "crack_volume_fraction": frac,
        "crack_surface_um2": area,
        "crack_normal_z": normal[:, 0], "crack_normal_y": normal[:, 1],
        "crack_normal_x": normal[:, 2],
        "crack_tilt_deg": tilt,
        "crack_depth_um": depth,
    })
    if integral:
        pv, _ = crack_volume_pv(grey, healed, ids, reference=reference, spacing=sp, fine=fine)
        for c in PV_COLUMNS:
            table[c] = pv[c].to_numpy()
    else:
        for c in PV_COLUMNS:
            table[c] = np.nan
    return phases, table, float(threshold)
