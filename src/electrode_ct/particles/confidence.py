"""Per-particle shape confidence from the distance map the particles were seeded on."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from electrode_ct.volume import as_spacing

CONVEXITY_POWER = 4.0
"""Exponent of the relative solidity in :func:`particle_confidence`: a particle half as
convex as the typical one keeps 1/16 of its confidence (merges rank last). AP@0.5 on the
cracked phantoms is flat for exponents 2-8 (``docs/particles.md``)."""


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
    solidity: np.ndarray | None = None,
    convexity_power: float = CONVEXITY_POWER,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-particle confidence: distance peak, down-weighted when the shape is atypical.

    A particle whose volume does not fit its largest inscribed ball the way the other
    particles of the volume do is likely a merge of several particles (too much volume
    for its ball), a fragment or a particle truncated by the field of view (too little).
    The fill ratio ``f = V / (4/3 π p³)`` (``V`` the particle volume, ``p`` its peak
    distance) is compared with the median fill ratio of all particles (which absorbs
    the bias of smoothing and segmentation); the confidence is ``p / max(q, 1/q)`` with
    ``q = f / median(f)``. With ``solidity`` (volume / convex-hull volume of each
    particle, e.g. of its healed region), it is also multiplied by
    ``min(s / median(s), 1) ** convexity_power``: two particles joined at a neck are less
    convex than a single one (healed cracked particles included), so merges rank last
    even when their volume happens to fit their inscribed ball.

    Parameters
    ----------
    labels : numpy.ndarray
        Sequential particle labels 0..n (z, y, x).
    score : numpy.ndarray
        Distance map the particles were seeded on (µm).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    solidity : numpy.ndarray, optional
        Solidity per particle (float, index = particle id, element 0 unused), e.g. from
        :func:`electrode_ct.particles.particle_solidity`; None leaves it out.
    convexity_power : float
        Exponent of the relative solidity (0 leaves it out).

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
    if solidity is not None and convexity_power:
        sol = np.asarray(solidity, dtype=np.float64)[1 : n + 1]
        relative = sol / max(float(np.median(sol)), 1e-12)
        conf[1:] *= np.minimum(relative, 1.0) ** convexity_power
    return conf, peak
