"""Input checks and unit conversions shared by the filters and the segmenters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.volume import Spacing, as_spacing


def check_image(image: Any, *, name: str = "image", allow_2d: bool = True) -> np.ndarray:
    """Return ``image`` as a numpy array after checking it can be processed.

    Parameters
    ----------
    image : array-like
        Grey-level image, 2-D (y, x) or 3-D (z, y, x).
    name : str
        Name used in error messages (a file name or parameter).
    allow_2d : bool
        Accept 2-D images (otherwise only 3-D volumes).

    Returns
    -------
    numpy.ndarray
        The same data as an array (not copied when already one).

    Raises
    ------
    InputError
        Empty array, non-numeric dtype, NaN or infinite values.
    ShapeError
        Wrong number of dimensions.
    """
    arr = np.asarray(image)
    dims = (2, 3) if allow_2d else (3,)
    if arr.ndim not in dims:
        want = "a 2-D image or 3-D volume" if allow_2d else "a 3-D volume (z, y, x)"
        raise ShapeError(f"{name}: expected {want}, got {arr.ndim}-D array {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: the image is empty (shape {arr.shape})")
    if arr.dtype.kind not in "uifb":
        raise InputError(f"{name}: expected a numeric image, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise InputError(
            f"{name}: {n_bad} voxel(s) are NaN or infinite; fill or mask them first"
        )
    return arr


def as_float(image: np.ndarray) -> np.ndarray:
    """Image as float32 (float64 kept as it is) for filtering."""
    if image.dtype == np.float64:
        return image
    return image.astype(np.float32, copy=False)


def per_axis(
    value: float | Iterable[float], ndim: int, *, name: str
) -> tuple[float, ...]:
    """Expand one value or one per axis to a tuple of length ``ndim`` (non-negative)."""
    if np.isscalar(value):
        vals = [float(value)] * ndim  # type: ignore[arg-type]
    else:
        vals = [float(v) for v in value]  # type: ignore[union-attr]
        if len(vals) == 3 and ndim == 2:
            vals = vals[1:]
    if len(vals) != ndim or not all(np.isfinite(v) and v >= 0 for v in vals):
        raise InputError(f"{name}: expected 1 or {ndim} non-negative numbers, got {value!r}")
    return tuple(vals)


def to_voxels(
    value: float | Iterable[float],
    ndim: int,
    *,
    spacing: float | Iterable[float] | None,
    in_um: bool,
    name: str,
) -> tuple[float, ...]:
    """Convert a length (one value or one per axis) to voxels.

    Parameters
    ----------
    value : float or sequence of float
        The length, in voxels or in µm.
    ndim : int
        Number of image axes (2 or 3).
    spacing : float or 3 floats or None
        Voxel size (z, y, x) in µm, needed when ``in_um``.
    in_um : bool
        ``value`` is in µm (divided by the spacing) rather than in voxels.
    name : str
        Parameter name for error messages.

    Returns
    -------
    tuple of float
        One length per axis, in voxels.
    """
    vals = per_axis(value, ndim, name=name)
    if not in_um:
        return vals
    if spacing is None:
        raise InputError(f"{name}: given in µm but no voxel size (spacing) is known")
    sp: Spacing = as_spacing(spacing)
    sp_axes = sp[-ndim:]
    return tuple(v / s for v, s in zip(vals, sp_axes, strict=True))
