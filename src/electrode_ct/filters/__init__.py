"""Filters on grey-level images: denoising, ring suppression, intensity normalisation, geometry.

All functions take the array first (2-D (y, x) or 3-D (z, y, x)) and options keyword-only;
lengths are in voxels, or in µm when ``spacing`` is given and ``in_um=True``.
"""

from typing import Any

import numpy as np

from electrode_ct.filters._checks import check_image
from electrode_ct.filters.denoise import gaussian, median, nlm, unsharp
from electrode_ct.filters.geometry import bin2, crop, crop_window, parse_range, resample
from electrode_ct.filters.intensity import normalise
from electrode_ct.filters.rings import suppress_rings

METHODS = ("gaussian", "median", "nlm", "unsharp", "rings", "normalise")
"""Filter names accepted by ``ect filter --method``."""

_SPATIAL = ("gaussian", "median", "unsharp")


def apply_filter(
    image: np.ndarray, method: str, *, spacing: Any = None, in_um: bool = False, **options: Any
) -> np.ndarray:
    """Apply one named filter (the dispatch behind ``ect filter`` and the pipeline).

    Parameters
    ----------
    image : numpy.ndarray
        Grey image, 2-D or 3-D.
    method : str
        One of :data:`METHODS`.
    spacing : float or 3 floats, optional
        Voxel size in µm, used by gaussian/median/unsharp when ``in_um``.
    in_um : bool
        Lengths (sigma, size, radius) are in µm instead of voxels.
    **options
        Keyword options of the chosen filter function (``scale`` is normalise's method).

    Returns
    -------
    numpy.ndarray
        The filtered image.
    """
    from electrode_ct.errors import InputError

    m = method.lower()
    funcs = {"gaussian": gaussian, "median": median, "unsharp": unsharp, "nlm": nlm,
             "rings": suppress_rings, "normalise": normalise}
    if m not in funcs:
        raise InputError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if m in _SPATIAL:
        options.update(spacing=spacing, in_um=in_um)
    if m == "normalise" and "scale" in options:
        options["method"] = options.pop("scale")
    return funcs[m](image, **options)

__all__ = [
    "METHODS",
    "apply_filter",
    "bin2",
    "check_image",
    "crop",
    "crop_window",
    "gaussian",
    "median",
    "nlm",
    "normalise",
    "parse_range",
    "resample",
    "suppress_rings",
    "unsharp",
]
