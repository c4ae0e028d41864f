"""Intensity normalisation of network inputs (statistics stored with the model)."""

from __future__ import annotations

import numpy as np

from electrode_ct.errors import ConfigError

NORMALISATIONS = ("image", "fixed")
"""``image``: robust statistics of each input array (a 2-D image or a whole volume);
``fixed``: the training statistics for every input. The two that ``normalisation="auto"``
(the training default) chooses between; a per-2-D-slice mode was removed unused."""


def robust_stats(image: np.ndarray, *, max_samples: int = 1_000_000,
                 percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """Mean and standard deviation of the grey values within two percentiles.

    Parameters
    ----------
    image : numpy.ndarray
        Grey values (any shape); at most ``max_samples`` evenly spaced values are used.
    max_samples : int
        Sub-sampling bound (memory and time).
    percentiles : tuple of float
        Lower and upper percentile (0–100) outside which values are clipped.

    Returns
    -------
    (float, float)
        Centre and scale (same units as the grey values); the scale is never 0.
    """
    flat = np.asarray(image).reshape(-1)
    return stats_of_values(flat[::stats_step(flat.size, max_samples)],
                           percentiles=percentiles)


def stats_step(size: int, max_samples: int = 1_000_000) -> int:
    """Stride over the flattened image of :func:`robust_stats`'s subsample."""
    return max(1, int(size) // max_samples)


def stats_of_values(values: np.ndarray, *, percentiles: tuple[float, float] = (0.5, 99.5)
                    ) -> tuple[float, float]:
    """:func:`robust_stats` of its subsample (in the image's flat order)."""
    vals = np.asarray(values).astype(np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, percentiles)
    clipped = np.clip(vals, lo, hi)
    std = float(clipped.std())
    return float(clipped.mean()), std if std > 0 else 1.0


def normalise(image: np.ndarray, *, mode: str = "image",
              stats: tuple[float, float] | None = None) -> np.ndarray:
    """Grey values to zero-centred unit-scale float32.

    Parameters
    ----------
    image : numpy.ndarray
        2-D (y, x) or 3-D (z, y, x) grey values.
    mode : {"image", "fixed"}
        See :data:`NORMALISATIONS`.
    stats : (float, float), optional
        Centre and scale for ``mode="fixed"``.

    Returns
    -------
    numpy.ndarray of float32
    """
    if mode not in NORMALISATIONS:
        raise ConfigError(f"normalisation {mode!r}: expected one of {', '.join(NORMALISATIONS)}")
    img = np.asarray(image, dtype=np.float32)
    if mode == "fixed":
        if stats is None:
            raise ConfigError("normalisation 'fixed' needs the training statistics")
        c, s = stats
        return (img - np.float32(c)) / np.float32(s)
    c, s = robust_stats(img)
    return (img - np.float32(c)) / np.float32(s)

