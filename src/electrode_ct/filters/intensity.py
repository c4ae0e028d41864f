"""Intensity normalisation: percentile clip and rescale (to 0–1, 8 or 16 bit), z-score."""

from __future__ import annotations

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import check_image

_RANGES = {"float32": 1.0, "uint8": 255.0, "uint16": 65535.0}


def normalise(
    image: np.ndarray,
    *,
    method: str = "percentile",
    low: float = 0.5,
    high: float = 99.5,
    dtype: str = "float32",
) -> np.ndarray:
    """Normalise grey levels.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D or 3-D; no NaN.
    method : {"percentile", "minmax", "zscore"}
        ``percentile``: clip to the ``low``/``high`` percentiles and rescale linearly;
        ``minmax``: rescale the full range; ``zscore``: subtract the mean, divide by σ.
    low, high : float
        Percentiles (0–100) for ``percentile``.
    dtype : {"float32", "uint8", "uint16"}
        Output type; rescaled values span 0–1, 0–255 or 0–65535. ``zscore`` needs float32.

    Returns
    -------
    numpy.ndarray
        The normalised image.

    Raises
    ------
    InputError
        Unknown method or dtype, percentiles out of order, a constant image.

    Examples
    --------
    >>> import numpy as np
    >>> normalise(np.array([[0.0, 5.0, 10.0]]), method="minmax", dtype="uint8").tolist()
    [[0, 128, 255]]
    """
    img = check_image(image)
    if dtype not in _RANGES:
        raise InputError(f"dtype: expected one of {', '.join(_RANGES)}, got {dtype!r}")
    data = img.astype(work_dtype(img.size), copy=False)
    if method == "zscore":
        if dtype != "float32":
            raise InputError(f"dtype: z-score output must be float32, got {dtype!r}")
        sd = float(data.std())
        if sd == 0:
            raise InputError("image: constant grey level; cannot z-score")
        return ((data - float(data.mean())) / sd).astype(np.float32)
    if method == "percentile":
        if not 0 <= low < high <= 100:
            raise InputError(f"low/high: need 0 <= low < high <= 100 percent, got {low}, {high}")
        lo, hi = (float(v) for v in np.percentile(data, [low, high]))
    elif method == "minmax":
        lo, hi = float(data.min()), float(data.max())
    else:
        raise InputError(f"method: expected percentile, minmax or zscore, got {method!r}")
    if hi <= lo:
        raise InputError(f"image: grey levels {lo:g}..{hi:g} have no spread to rescale")
    return rescale(data, lo, hi, dtype)


def work_dtype(size: int) -> np.dtype:
    """Precision of the normalisation arithmetic: float64 below 2^20 voxels, else float32."""
    return np.dtype(np.float64 if size < 1 << 20 else np.float32)


def rescale(data: np.ndarray, lo: float, hi: float, dtype: str) -> np.ndarray:
    """Clip ``data`` (in :func:`work_dtype`) to ``lo..hi`` and map it onto ``dtype``'s range.

    Elementwise, so a volume rescaled block by block equals the whole-volume result.
    """
    scaled = (np.clip(data, lo, hi) - lo) / (hi - lo)
    if dtype == "float32":
        return scaled.astype(np.float32)
    return np.rint(scaled * _RANGES[dtype]).astype(dtype)

