"""Geometry: crop to a region of interest, resample to a voxel size, bin by 2."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import check_image
from electrode_ct.volume import Spacing, as_spacing

Range = tuple[int | None, int | None] | None


def parse_range(text: str | None, *, name: str) -> Range:
    """Parse ``"A:B"`` (either side may be empty) into ``(A, B)``; None stays None.

    Raises
    ------
    InputError
        When the text is not of the form ``A:B`` with whole numbers.
    """
    if text is None:
        return None
    parts = str(text).split(":")
    if len(parts) != 2:
        raise InputError(f"{name}: expected START:STOP (voxels), got {text!r}")
    try:
        a, b = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise InputError(f"{name}: expected whole numbers START:STOP, got {text!r}") from None
    return a, b


def crop(
    image: np.ndarray, *, z: Range = None, y: Range = None, x: Range = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop a region of interest.

    Parameters
    ----------
    image : numpy.ndarray
        2-D (y, x) or 3-D (z, y, x) array.
    z, y, x : (start, stop) or None
        Half-open voxel ranges; None or a None bound keeps the full extent; negative
        values count from the end (Python slicing). ``z`` is ignored for 2-D images.

    Returns
    -------
    cropped : numpy.ndarray
        A copy of the region.
    offset : tuple of int
        (z, y, x) index of the first kept voxel (add ``offset * spacing`` to the origin).

    Raises
    ------
    InputError
        An empty or out-of-bounds range.
    """
    arr = np.asarray(image)
    if arr.size == 0:
        raise InputError(f"crop: the image is empty (shape {arr.shape})")
    slices, offset = crop_window(arr.shape, z=z, y=y, x=x)
    return arr[slices].copy(), offset


def crop_window(shape: tuple[int, ...], *, z: Range = None, y: Range = None,
                x: Range = None) -> tuple[tuple[slice, ...], tuple[int, int, int]]:
    """The slices and (z, y, x) offset :func:`crop` keeps of an array of ``shape``.

    Examples
    --------
    >>> crop_window((10, 20, 30), z=(2, -2), x=(None, 5))
    ((slice(2, 8, None), slice(0, 20, None), slice(0, 5, None)), (2, 0, 0))
    """
    ranges = (z, y, x)[-len(shape):] if len(shape) in (2, 3) else None
    if ranges is None:
        raise InputError(f"crop: expected a 2-D or 3-D array, got shape {tuple(shape)}")
    names = ("z", "y", "x")[-len(shape):]
    slices = []
    for n, r, size in zip(names, ranges, shape, strict=True):
        start, stop, _ = slice(*(r or (None, None))).indices(size)
        raw = r or (None, None)
        if any(v is not None and not -size <= v <= size for v in raw) or stop <= start:
            raise InputError(f"--{n}: range {raw[0]}:{raw[1]} is empty or outside 0:{size}")
        slices.append(slice(start, stop))
    offset = tuple([0] * (3 - len(shape)) + [s.start for s in slices])
    return tuple(slices), offset  # type: ignore[return-value]


def resample(
    image: np.ndarray,
    *,
    spacing: float | Iterable[float],
    voxel_size: float | Iterable[float],
    order: int = 1,
    labels: bool = False,
) -> tuple[np.ndarray, Spacing]:
    """Resample to another voxel size (e.g. anisotropic -> isotropic).

    Parameters
    ----------
    image : numpy.ndarray
        3-D (z, y, x) or 2-D (y, x) array.
    spacing : float or 3 floats
        Current voxel size (z, y, x) in µm.
    voxel_size : float or 3 floats
        Target voxel size (z, y, x) in µm.
    order : {1, 3}
        Interpolation for grey images: 1 linear, 3 cubic (ignored for labels).
    labels : bool
        The array holds labels: nearest-neighbour interpolation, dtype kept.

    Returns
    -------
    resampled : numpy.ndarray
        The new array (grey: float32; labels: input dtype).
    spacing : tuple of float
        The exact new voxel size (z, y, x) in µm (shape rounding makes it differ slightly
        from ``voxel_size``).
    """
    arr = check_image(image)
    sp, target = as_spacing(spacing, name="spacing"), as_spacing(voxel_size, name="voxel size")
    if order not in (0, 1, 3):
        raise InputError(f"order: expected 1 (linear) or 3 (cubic), got {order}")
    shape_out, new_spacing = resample_shape(arr.shape, spacing=sp, voxel_size=target)
    zoom = np.array(shape_out) / np.array(arr.shape, np.float64)
    if labels:
        out = ndi.zoom(arr, zoom, order=0, mode="nearest", grid_mode=True)
    else:
        src = arr.astype(np.float32, copy=False)
        out = ndi.zoom(src, zoom, order=int(order), mode="nearest", grid_mode=True)
    return out, new_spacing


def resample_shape(shape: tuple[int, ...], *, spacing: float | Iterable[float],
                   voxel_size: float | Iterable[float]) -> tuple[tuple[int, ...], Spacing]:
    """Output shape and exact voxel size (z, y, x, µm) of :func:`resample`.

    Examples
    --------
    >>> resample_shape((10, 20, 20), spacing=(2.0, 1.0, 1.0), voxel_size=1.0)
    ((20, 20, 20), (1.0, 1.0, 1.0))
    """
    sp, target = as_spacing(spacing, name="spacing"), as_spacing(voxel_size, name="voxel size")
    k = len(shape)
    shape_in = np.array(shape, np.float64)
    factors = np.array(sp[-k:]) / np.array(target[-k:])
    shape_out = np.maximum(1, np.rint(shape_in * factors)).astype(int)
    new = np.array(sp, np.float64)
    new[-k:] = np.array(sp[-k:]) * shape_in / shape_out
    return tuple(int(n) for n in shape_out), as_spacing(new.tolist())


def bin2(image: np.ndarray, *, labels: bool = False) -> np.ndarray:
    """Bin by 2 along every axis (2×2×2 blocks; an odd last plane is dropped).

    Parameters
    ----------
    image : numpy.ndarray
        2-D or 3-D array.
    labels : bool
        Labels: each block takes its most frequent value (ties: the lowest value);
        grey images: the block mean (float32).

    Returns
    -------
    numpy.ndarray
        The binned array; the voxel size doubles.
    """
    arr = check_image(image)
    if min(arr.shape) < 2:
        raise InputError(f"bin2: every axis needs at least 2 voxels, got shape {arr.shape}")
    even = tuple(slice(0, s - s % 2) for s in arr.shape)
    a = arr[even]
    blocks = []
    for s in a.shape:
        blocks += [s // 2, 2]
    b = a.reshape(blocks)
    block_axes = tuple(range(1, 2 * a.ndim, 2))
    if not labels:
        return b.mean(axis=block_axes, dtype=np.float64).astype(np.float32)
    values = np.unique(a)
    best = np.zeros(tuple(s // 2 for s in a.shape), arr.dtype)
    best_n = np.full(best.shape, -1, np.int16)
    for v in values:  # one vectorised pass per label value (phases: a handful)
        n = (b == v).sum(axis=block_axes, dtype=np.int16)
        better = n > best_n
        best[better] = v
        best_n[better] = n[better]
    return best
