"""Denoising and sharpening: Gaussian, median, non-local means, unsharp mask."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi
from skimage.restoration import denoise_nl_means

from electrode_ct.blocks import Block, map_blocks
from electrode_ct.errors import InputError
from electrode_ct.filters._checks import as_float, check_image, to_voxels
from electrode_ct.inspect import noise_sigma

Length = float | Iterable[float]


def gaussian(
    image: np.ndarray,
    *,
    sigma: Length = 1.0,
    spacing: Length | None = None,
    in_um: bool = False,
) -> np.ndarray:
    """Gaussian smoothing.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D (y, x) or 3-D (z, y, x); no NaN.
    sigma : float or sequence of float
        Standard deviation, one value or one per axis, in voxels (or µm with ``in_um``).
    spacing : float or 3 floats, optional
        Voxel size (z, y, x) in µm; needed with ``in_um``.
    in_um : bool
        ``sigma`` is in µm.

    Returns
    -------
    numpy.ndarray
        float32 (float64 stays float64) smoothed image (edges: mirror reflection).
    """
    img = as_float(check_image(image))
    s = to_voxels(sigma, img.ndim, spacing=spacing, in_um=in_um, name="sigma")
    return ndi.gaussian_filter(img, s)


def _odd_sizes(size: Length, ndim: int, *, spacing: Length | None, in_um: bool) -> tuple[int, ...]:
    vox = to_voxels(size, ndim, spacing=spacing, in_um=in_um, name="size")
    out = tuple(max(1, int(round(v)) | 1) for v in vox)  # odd, >= 1
    return out


def median(
    image: np.ndarray,
    *,
    size: Length = 3,
    spacing: Length | None = None,
    in_um: bool = False,
) -> np.ndarray:
    """Median filter over a box (3-D for volumes).

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D or 3-D; no NaN.
    size : int or sequence
        Box edge, one value or one per axis, in voxels (rounded to the next odd number),
        or in µm with ``in_um``.
    spacing : float or 3 floats, optional
        Voxel size (z, y, x) in µm; needed with ``in_um``.
    in_um : bool
        ``size`` is in µm.

    Returns
    -------
    numpy.ndarray
        Filtered image, same dtype as the input (edges: mirror reflection).
    """
    img = check_image(image)
    return ndi.median_filter(img, size=_odd_sizes(size, img.ndim, spacing=spacing, in_um=in_um))


def unsharp(
    image: np.ndarray,
    *,
    radius: Length = 1.0,
    amount: float = 1.0,
    spacing: Length | None = None,
    in_um: bool = False,
) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image − gaussian(image, radius))``.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D or 3-D; no NaN.
    radius : float or sequence
        Gaussian σ of the blur, in voxels (or µm with ``in_um``).
    amount : float
        Strength of the sharpening (0 = unchanged).
    spacing : float or 3 floats, optional
        Voxel size (z, y, x) in µm; needed with ``in_um``.
    in_um : bool
        ``radius`` is in µm.

    Returns
    -------
    numpy.ndarray
        float32 sharpened image in the input's grey-level units (not clipped).
    """
    img = as_float(check_image(image))
    blur = gaussian(img, sigma=radius, spacing=spacing, in_um=in_um)
    return img + float(amount) * (img - blur)


def _estimate_sigma(img: np.ndarray) -> float:
    """Noise σ (grey levels): flattest-block σ, or a robust (MAD) σ of neighbour differences
    for images smaller than one 8³ block."""
    sigma = noise_sigma(img)
    if np.isfinite(sigma):
        return float(sigma)
    d = np.diff(img.astype(np.float64), axis=-1).ravel()
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def nlm(
    image: np.ndarray,
    *,
    h: float | None = None,
    sigma: float | None = None,
    patch_size: int = 5,
    patch_distance: int = 6,
    slab: int | None = 64,
    workers: int = 1,
) -> np.ndarray:
    """Non-local means denoising (scikit-image fast mode), slab-parallel along z.

    The noise σ is estimated once on the whole image (σ of the flattest 8³ blocks, see
    :func:`electrode_ct.inspect.noise_sigma`) so every slab uses
    the same filter strength; slabs overlap by ``patch_distance + patch_size // 2 + 1``
    slices, so the result matches a single whole-volume run.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D or 3-D (z, y, x); no NaN.
    h : float, optional
        Filter strength in grey levels; default ``0.8 * sigma``.
    sigma : float, optional
        Noise standard deviation in grey levels; default: estimated.
    patch_size : int
        Patch edge in voxels.
    patch_distance : int
        Search radius in voxels.
    slab : int or None
        Slices per slab (3-D); None = one run on the whole volume.
    workers : int
        Threads processing slabs concurrently.

    Returns
    -------
    numpy.ndarray
        float32 denoised image.
    """
    img = as_float(check_image(image))
    if patch_size < 1 or patch_distance < 1:
        raise InputError(f"nlm: patch_size and patch_distance must be >= 1, got "
                         f"{patch_size}, {patch_distance}")
    if sigma is None:
        sigma = _estimate_sigma(img)
    if h is None:
        h = 0.8 * sigma
    if h <= 0:
        # a noise-free image: nothing to remove
        return img.astype(np.float32, copy=True)
    kw = {"h": float(h), "sigma": float(sigma), "patch_size": int(patch_size),
          "patch_distance": int(patch_distance), "fast_mode": True, "preserve_range": True}
    if img.ndim == 2 or slab is None or slab >= img.shape[0]:
        return denoise_nl_means(img, **kw).astype(np.float32)
    if slab < 1:
        raise InputError(f"nlm: slab must be >= 1 slice, got {slab}")
    halo = patch_distance + patch_size // 2 + 1  # a patch's reach from its searched centre

    def run(region: np.ndarray, block: Block) -> np.ndarray:
        return block.crop(denoise_nl_means(region, **kw))

    return map_blocks(run, img, block_shape=(int(slab), *img.shape[1:]), halo=(halo, 0, 0),
                      out=np.empty(img.shape, np.float32), workers=max(1, int(workers)))
