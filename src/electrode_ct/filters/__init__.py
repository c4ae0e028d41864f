"""Filters on grey-level images: denoising, ring suppression, intensity normalisation, geometry.

All functions take the array first (2-D (y, x) or 3-D (z, y, x)) and options keyword-only;
lengths are in voxels, or in µm when ``spacing`` is given and ``in_um=True``.
"""

from electrode_ct.filters._checks import check_image
from electrode_ct.filters.denoise import gaussian, median, nlm, unsharp
from electrode_ct.filters.geometry import bin2, crop, parse_range, resample
from electrode_ct.filters.intensity import normalise
from electrode_ct.filters.rings import suppress_rings

METHODS = ("gaussian", "median", "nlm", "unsharp", "rings", "normalise")
"""Filter names accepted by ``ect filter --method``."""

__all__ = [
    "METHODS",
    "bin2",
    "check_image",
    "crop",
    "gaussian",
    "median",
    "nlm",
    "normalise",
    "parse_range",
    "resample",
    "suppress_rings",
    "unsharp",
]
