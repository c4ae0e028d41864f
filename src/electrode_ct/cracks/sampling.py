"""Slice sampling of particles for the CNN classifier (the published protocol).

For each particle and each chosen axis: ``k`` evenly spaced slices within the central
80 % of the particle's extent along that axis, each cropped to the particle's bounding
box in the other two axes (padded to a square about its centre, so the aspect ratio is
kept), masked to the particle, resized to ``size`` × ``size`` (bilinear) and
contrast-normalised against the scan's population levels: ``(g - solid) / (solid -
background)``, clipped to [-2, 1], with the voxels outside the particle set to -1
(background). A dark particle therefore stays dark, as a crack should.

Crops come from ``scipy.ndimage.find_objects`` (one pass); particles are independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from electrode_ct.errors import InputError

OUTSIDE = -1.0
"""Value of the pixels outside the particle after normalisation."""


def slice_indices(start: int, stop: int, k: int, *, central: float = 0.8) -> np.ndarray:
    """Indices of ``k`` evenly spaced slices in the central ``central`` part of ``[start, stop)``.

    Slice ``j`` sits at ``start + L * ((1 - central) / 2 + central * j / (k - 1))``
    (``L = stop - start``; the middle for ``k = 1``), rounded down and kept inside.

    Parameters
    ----------
    start, stop : int
        Extent of the particle along the axis (voxels, stop exclusive).
    k : int
        Number of slices (>= 1).
    central : float
        Fraction of the extent sampled, in (0, 1].

    Returns
    -------
    numpy.ndarray
        ``k`` int64 indices (repeats possible for particles thinner than ``k`` voxels).
    """
    if k < 1:
        raise InputError(f"slices: expected k >= 1, got {k}")
    if not 0 < central <= 1:
        raise InputError(f"central: expected a fraction in (0, 1], got {central}")
    length = stop - start
    frac = np.array([0.5]) if k == 1 else (1 - central) / 2 + central * np.arange(k) / (k - 1)
    idx = np.floor(start + length * frac + 1e-9).astype(np.int64)
    return np.clip(idx, start, stop - 1)


def parse_axes(axes: int | str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(axes, str):
        key = axes.strip().lower()
        if key == "all":
            return (0, 1, 2)
        names = {"z": 0, "y": 1, "x": 2}
        if key in names:
            return (names[key],)
        raise InputError(f"axis: expected z, y, x or all, got {axes!r}")
    out = (int(axes),) if np.isscalar(axes) else tuple(int(a) for a in axes)  # type: ignore
    if not out or any(a not in (0, 1, 2) for a in out):
        raise InputError(f"axis: expected 0, 1, 2 or 'all', got {axes!r}")
    return out


def sample_slices(grey: np.ndarray, labels: np.ndarray, ids: np.ndarray, *, k: int = 10,
                  axes: int | str | Sequence[int] = 0, size: int = 128,
                  central: float = 0.8, solid: float | None = None,
                  background: float | None = None) -> np.ndarray:
    """Normalised, masked, resized slices of every particle in ``ids``.

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x).
    labels : numpy.ndarray
        Particle labels (healed masks recommended: the crack stays inside the mask).
    ids : numpy.ndarray
        Particle ids, one output row each (in this order).
    k : int
        Slices per axis.
    axes : int, 'z'/'y'/'x', 'all' or sequence of int
        Slicing axes; ``all`` = (0, 1, 2).
    size : int
        Output side in pixels.
    central : float
        Fraction of the extent sampled (0.8 as published).
    solid, background : float, optional
        Grey levels mapped to 0 and -1; default: median of the particles' voxels and of
        the label-0 voxels.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(len(ids), len(axes) * k, size, size)``.

    Raises
    ------
    InputError
        A particle id absent from ``labels``, bad ``k``/``size``/axes.
    """
    from scipy import ndimage as ndi

    ax = parse_axes(axes)
    if size < 4:
        raise InputError(f"size: expected at least 4 pixels, got {size}")
    ids = np.asarray(ids, np.int64)
    if solid is None or background is None:
        sub_l, sub_g = labels[::2, ::2, ::2], grey[::2, ::2, ::2]
        solid = float(np.median(sub_g[sub_l > 0])) if solid is None else solid
        background = float(np.median(sub_g[sub_l == 0])) if background is None else background
    contrast = max(float(solid) - float(background), 1e-9)
    boxes = ndi.find_objects(np.ascontiguousarray(labels).astype(np.int64, copy=False)
                             if labels.dtype.kind not in "iu" else labels)
    out = np.full((len(ids), len(ax) * k, size, size), OUTSIDE, np.float32)
    for row, pid in enumerate(ids):
        box = boxes[pid - 1] if 0 < pid <= len(boxes) else None
        if box is None:
            raise InputError(f"ids: particle {pid} is not in the label volume")
        crop_l = labels[box] == pid
        crop_g = (grey[box].astype(np.float32) - np.float32(solid)) / np.float32(contrast)
        np.clip(crop_g, -2.0, 1.0, out=crop_g)
        crop_g[~crop_l] = OUTSIDE
        for j, a in enumerate(ax):
            idx = slice_indices(0, crop_l.shape[a], k, central=central)
            planes = np.take(crop_g, idx, axis=a)
            planes = np.moveaxis(planes, a, 0)  # (k, h, w)
            out[row, j * k:(j + 1) * k] = _square_resize(planes, size)
    return out


def _square_resize(planes: np.ndarray, size: int) -> np.ndarray:
    """Pad (k, h, w) planes to a centred square with OUTSIDE and resize to (k, size, size)."""
    from scipy import ndimage as ndi

    _, h, w = planes.shape
    side = max(h, w)
    sq = np.full((planes.shape[0], side, side), OUTSIDE, np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    sq[:, y0:y0 + h, x0:x0 + w] = planes
    zoom = size / side
    # bilinear, pixel-centre aligned (grid_mode) so each output pixel maps into the crop
    return ndi.zoom(sq, (1, zoom, zoom), order=1, mode="nearest", grid_mode=True)[
        :, :size, :size]
