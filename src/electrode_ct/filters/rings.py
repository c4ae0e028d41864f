"""Ring-artefact suppression on reconstructed slices (stripe filter in polar coordinates).

A ring artefact (a miscalibrated detector pixel) adds the same offset to every voxel at
one distance from the rotation axis. In polar coordinates (angle, radius) a ring is a
stripe of constant radius. For each slice the filter takes the median over angles at
each radius (robust to the real, non-rotationally-symmetric structure), keeps its
high-frequency part along the radius (the profile minus its running median over
``width`` radii) as the ring signal, and subtracts that signal at each voxel's radius.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import as_float, check_image


def ring_profile(
    image2d: np.ndarray,
    *,
    center: tuple[float, float] | None = None,
    width: int = 15,
    n_angles: int | None = None,
    step: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate the ring signal of one slice as a function of radius.

    Parameters
    ----------
    image2d : numpy.ndarray
        One reconstructed slice (y, x), float.
    center : (float, float), optional
        Rotation axis (y, x) in pixels; default: the slice centre.
    width : int
        Running-median window along the radius, in pixels (wider than the rings, narrower
        than the real radial trend).
    n_angles : int, optional
        Angular samples; default ≈ the circumference of the largest circle.
    step : float
        Radial sampling step in pixels.

    Returns
    -------
    radii : numpy.ndarray
        Radii in pixels (0, step, 2 step, ...).
    ring : numpy.ndarray
        Estimated ring offset (grey levels) at each radius.
    """
    ny, nx = image2d.shape
    cy, cx = center if center is not None else ((ny - 1) / 2.0, (nx - 1) / 2.0)
    r_max = float(np.hypot(max(cy, ny - 1 - cy), max(cx, nx - 1 - cx)))
    radii = np.arange(0.0, np.ceil(r_max) + step, step)
    n_t = int(n_angles) if n_angles else max(64, int(np.ceil(2 * np.pi * r_max)))
    theta = np.linspace(0.0, 2.0 * np.pi, n_t, endpoint=False)
    yy = cy + np.sin(theta)[:, None] * radii[None, :]
    xx = cx + np.cos(theta)[:, None] * radii[None, :]
    polar = ndi.map_coordinates(image2d, [yy, xx], order=1, mode="constant", cval=np.nan)
    inside = np.isfinite(polar)
    polar_sorted = np.sort(np.where(inside, polar, np.inf), axis=0)
    count = inside.sum(axis=0)
    # median over the angles that fall inside the slice (vectorised nan-median)
    lo_i = np.clip((count - 1) // 2, 0, n_t - 1)
    hi_i = np.clip(count // 2, 0, n_t - 1)
    cols = np.arange(radii.size)
    profile = 0.5 * (polar_sorted[lo_i, cols] + polar_sorted[hi_i, cols])
    valid = count > 0
    profile = np.where(valid, profile, 0.0)
    last = int(np.flatnonzero(valid)[-1]) + 1 if valid.any() else 1
    window = int(round(width / step)) | 1
    trend = ndi.median_filter(profile[:last], size=window, mode="nearest")
    ring = np.zeros_like(profile)
    ring[:last] = profile[:last] - trend
    return radii, ring


def suppress_rings(
    image: np.ndarray,
    *,
    center: tuple[float, float] | None = None,
    width: int = 15,
    n_angles: int | None = None,
) -> np.ndarray:
    """Remove ring artefacts from reconstructed slices (each z slice independently).

    Parameters
    ----------
    image : numpy.ndarray
        Slice (y, x) or stack of slices (z, y, x) reconstructed around a rotation axis
        parallel to z; no NaN.
    center : (float, float), optional
        Rotation-axis position (y, x) in pixels; default: the slice centre.
    width : int
        Running-median window along the radius, in pixels (>= 3); rings narrower than
        about ``width / 2`` are removed.
    n_angles : int, optional
        Angular samples of the polar transform.

    Returns
    -------
    numpy.ndarray
        float32 image with the ring signal subtracted.
    """
    img = as_float(check_image(image))
    if int(width) < 3:
        raise InputError(f"width: the radial median window must be >= 3 pixels, got {width}")
    stack = img[None] if img.ndim == 2 else img
    ny, nx = stack.shape[1:]
    cy, cx = center if center is not None else ((ny - 1) / 2.0, (nx - 1) / 2.0)
    rr = np.hypot(*np.meshgrid(np.arange(ny) - cy, np.arange(nx) - cx, indexing="ij"))
    out = np.empty(stack.shape, np.float32)
    for z in range(stack.shape[0]):  # one polar transform per slice
        radii, ring = ring_profile(stack[z], center=(cy, cx), width=width, n_angles=n_angles)
        out[z] = stack[z] - np.interp(rr, radii, ring)
    return out[0] if img.ndim == 2 else out
