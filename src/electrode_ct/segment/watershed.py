"""Seeded (marker-controlled) watershed between grey-level windows.

Voxels below ``low`` seed the darker phase, voxels above ``high`` the brighter one; the
omitted window between them is filled by a watershed on the gradient magnitude, so the
boundary follows the steepest grey-level edge. A narrow window is "generous" (most voxels
decided by the seeds), a wide one "conservative" (more left to the watershed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import sobel
from skimage.segmentation import watershed

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import as_float, check_image


def _as_list(value: float | Sequence[float], name: str) -> list[float]:
    vals = [float(value)] if np.isscalar(value) else [float(v) for v in value]  # type: ignore[union-attr, arg-type]
    if not vals or not all(np.isfinite(vals)):
        raise InputError(f"{name}: expected one or more finite grey levels, got {value!r}")
    return vals


def window_around(
    thresholds: float | Sequence[float], *, half_width: float
) -> tuple[list[float], list[float]]:
    """``low``/``high`` windows of ±``half_width`` grey levels around threshold values.

    Parameters
    ----------
    thresholds : float or sequence of float
        Cut values (grey levels), e.g. from ``threshold_values``.
    half_width : float
        Half the window width in grey levels (small = generous, large = conservative).

    Returns
    -------
    low, high : list of float
        Arguments for :func:`seeded_watershed`.
    """
    t = sorted(_as_list(thresholds, "thresholds"))
    if not np.isfinite(half_width) or half_width < 0:
        raise InputError(f"half_width: expected a non-negative number of grey levels, "
                         f"got {half_width!r}")
    return [v - half_width for v in t], [v + half_width for v in t]


def gradient_magnitude(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Sobel gradient magnitude (grey levels per voxel) after Gaussian smoothing (voxels)."""
    img = as_float(np.asarray(image))
    if sigma > 0:
        img = ndi.gaussian_filter(img, sigma)
    return sobel(img)


def seeded_watershed(
    image: np.ndarray,
    *,
    low: float | Sequence[float],
    high: float | Sequence[float],
    sigma: float = 0.5,
    two_d: bool = False,
) -> np.ndarray:
    """Segment phases from grey-level seeds, filling the windows with a gradient watershed.

    Parameters
    ----------
    image : numpy.ndarray
        Grey-level image, 2-D or 3-D (z, y, x); no NaN.
    low, high : float or sequence of float
        Window bounds in grey levels, one pair per boundary (``low[i] < high[i] <=
        low[i+1]``). Voxels ``<= low[0]`` seed phase 0, voxels ``>= high[-1]`` seed the last
        phase, voxels in ``[high[i-1], low[i]]`` seed phase i. One pair gives 2 phases.
    sigma : float
        Gaussian smoothing (voxels) before the Sobel gradient; 0 for none.
    two_d : bool
        Run the watershed slice by slice (independent 2-D slices).

    Returns
    -------
    numpy.ndarray
        uint8 phase codes 0..N−1 in increasing grey level.

    Raises
    ------
    InputError
        Windows out of order or outside the data range, or a phase without any seed.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 1, 4, 9, 10]] * 3, float)
    >>> seeded_watershed(img, low=2, high=8, sigma=0)[0].tolist()
    [0, 0, 0, 1, 1]
    """
    img = check_image(image)
    lows, highs = _as_list(low, "low"), _as_list(high, "high")
    if len(lows) != len(highs):
        raise InputError(f"low/high: need as many low as high values, got {len(lows)} and "
                         f"{len(highs)}")
    edges = np.array([v for pair in zip(lows, highs, strict=True) for v in pair])
    if np.any(np.diff(edges) < 0) or any(lo >= hi for lo, hi in zip(lows, highs, strict=True)):
        raise InputError(f"low/high: windows must be increasing (low < high <= next low), got "
                         f"low={lows} high={highs}")
    dmin, dmax = float(img.min()), float(img.max())
    if edges[0] < dmin or edges[-1] > dmax:
        raise InputError(f"low/high: {edges[0]:g}..{edges[-1]:g} outside the data range "
                         f"[{dmin:g}, {dmax:g}]")
    if two_d and img.ndim == 3:
        return np.stack([_watershed_one(img[z], edges, sigma) for z in range(img.shape[0])])
    return _watershed_one(img, edges, sigma)


def _watershed_one(img: np.ndarray, edges: np.ndarray, sigma: float) -> np.ndarray:
    n = edges.size // 2 + 1
    # region index along the grey axis: even = seed of phase k (k = idx // 2), odd = window
    idx = np.searchsorted(edges, img, side="left")
    # a voxel equal to an edge value belongs to the seed next to it
    on_high = np.isin(img, edges[1::2])
    idx[on_high] += 1
    seeds = np.where(idx % 2 == 0, idx // 2 + 1, 0).astype(np.int32)
    present = np.bincount(seeds.ravel(), minlength=n + 1)[1:]
    if np.any(present == 0):
        missing = np.flatnonzero(present == 0).tolist()
        raise InputError(f"low/high: no voxel seeds phase(s) {missing}; widen the ranges")
    if present.sum() == seeds.size:
        return (seeds - 1).astype(np.uint8)
    grad = gradient_magnitude(img, sigma=sigma)
    lab = watershed(grad, markers=seeds)
    return (lab - 1).astype(np.uint8)
