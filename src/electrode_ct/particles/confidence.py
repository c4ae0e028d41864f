"""Per-particle shape confidence from the distance map the particles were seeded on."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from electrode_ct.volume import as_spacing


def fill_ratio(
    labels: np.ndarray,
    score: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ratio ``V / (4/3 π p³)`` of every particle and its distance peak ``p``.

    Parameters
    ----------
    labels : numpy.ndarray
        Particle labels 0..n (z, y, x).
    score : numpy.ndarray
        Distance map the particles were seeded on (µm).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    fill, peak : numpy.ndarray
        float64, index = particle id (element 0 is 0); ``peak`` in µm.
    """
    n = int(labels.max(initial=0))
    fill = np.zeros(n + 1, dtype=np.float64)
    peak = np.zeros(n + 1, dtype=np.float64)
    if not n:
        return fill, peak
    inside = labels > 0
    np.maximum.at(peak, labels[inside], score[inside])  # distances are >= 0
    voxel = float(np.prod(as_spacing(spacing, name="spacing")))
    volume = np.bincount(labels.ravel(), minlength=n + 1)[1:] * voxel
    fill[1:] = volume / (4.0 / 3.0 * np.pi * np.maximum(peak[1:], 1e-6) ** 3)
    return fill, peak


def particle_confidence(
    labels: np.ndarray,
    score: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Per-particle confidence: distance peak, down-weighted when the shape is atypical.

    A particle whose volume does not fit its largest inscribed ball the way the other
    particles of the volume do is likely a merge of several particles (too much volume
    for its ball), a fragment or a particle truncated by the field of view (too little).
    The fill ratio ``f = V / (4/3 π p³)`` (``V`` the particle volume, ``p`` its peak
    distance) is compared with the median fill ratio of all particles (which absorbs
    the bias of smoothing and segmentation); the confidence is ``p / max(q, 1/q)`` with
    ``q = f / median(f)``.

    Parameters
    ----------
    labels : numpy.ndarray
        Sequential particle labels 0..n (z, y, x).
    score : numpy.ndarray
        Distance map the particles were seeded on (µm).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    confidence : numpy.ndarray
        float64, index = particle id (element 0 is 0), µm of distance.
    peak : numpy.ndarray
        The peak distance of each particle (µm), same indexing.
    """
    n = int(labels.max())
    conf = np.zeros(n + 1, dtype=np.float64)
    fill, peak = fill_ratio(labels, score, spacing=spacing)
    if not n:
        return conf, peak
    q = fill[1:] / float(np.median(fill[1:]))
    conf[1:] = peak[1:] / np.maximum(q, 1.0 / q)
    return conf, peak
