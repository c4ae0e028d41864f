"""Shape scores of particles: how much a particle looks like one convex, ball-filling body.

Separation and its two repair steps rank and compare particles by the same few numbers:

- :func:`fill_ratio`: ``V / (4/3 π p³)``, the volume against the ball of the particle's
  distance peak ``p`` (a merge has too much volume for its ball, a crack half or a
  truncated particle too little);
- :func:`particle_solidity` (:func:`region_solidity` for one region): volume / convex-hull
  volume (two particles joined at a neck are not convex);
- :func:`particle_confidence`: the distance peak, down-weighted by both relative to the
  volume's typical particle (the score to rank particles by, e.g. for AP);
- :func:`shape_penalty`: the volume-weighted log of that down-weighting (the cost two
  healing hypotheses are compared by, :mod:`~electrode_ct.particles.hypotheses`);
- :class:`PieceShape`: the same fill-ratio cost for pieces of one crop, each measured on
  its own distance map (the re-split, :mod:`~electrode_ct.particles.resplit`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np

from electrode_ct.particles.seeding import smoothed_distance
from electrode_ct.volume import as_spacing

CONVEXITY_POWER = 4.0
"""Exponent of the relative solidity in :func:`particle_confidence`: a particle half as
convex as the typical one keeps 1/16 of its confidence (merges rank last). AP@0.5 on the
cracked phantoms is flat for exponents 2-8 (``docs/particles.md``)."""


_CORNERS = np.array([[i, j, k] for i in (-0.5, 0.5) for j in (-0.5, 0.5) for k in (-0.5, 0.5)])


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
    # distances are >= 0; the maximum taken in the map's own dtype is the same value and
    # ~15x faster than into float64 (numpy's fast ufunc.at path needs matching dtypes)
    values = score[inside]
    top = np.zeros(n + 1, dtype=values.dtype)
    np.maximum.at(top, labels[inside], values)
    peak[:] = top
    voxel = float(np.prod(as_spacing(spacing, name="spacing")))
    volume = np.bincount(labels.ravel(), minlength=n + 1)[1:] * voxel
    fill[1:] = volume / (4.0 / 3.0 * np.pi * np.maximum(peak[1:], 1e-6) ** 3)
    return fill, peak


def _row_ends(region: np.ndarray) -> np.ndarray:
    """The first and last voxel of every (z, y) row of a region, in raster order (float).

    Every voxel of a row lies between its ends, so these points have the region's convex
    hull, and the hull's vertices (extreme points, reported in input order) are the same
    as those of all its voxels: the hull is that of the region, from ~10x fewer points.
    """
    rows = region.any(axis=2)
    first = np.argmax(region, axis=2)
    last = region.shape[2] - 1 - np.argmax(region[:, :, ::-1], axis=2)
    z, y = np.nonzero(rows)
    ends = np.stack([np.repeat(z, 2), np.repeat(y, 2),
                     np.stack([first[z, y], last[z, y]], axis=1).ravel()], axis=1)
    keep = np.ones(len(ends), bool)
    keep[1::2] = ends[1::2, 2] != ends[0::2, 2]  # a one-voxel row: once
    return ends[keep].astype(np.float64)


def _line_ends(region: np.ndarray, axis: int) -> np.ndarray:
    """Voxels of a region that are the first or the last of their line along ``axis``."""
    n = region.shape[axis]
    first = np.expand_dims(np.argmax(region, axis=axis), axis)
    last = n - 1 - np.expand_dims(np.argmax(np.flip(region, axis), axis=axis), axis)
    index = np.arange(n).reshape([-1 if a == axis else 1 for a in range(region.ndim)])
    return region & ((index == first) | (index == last))


def _hull_candidates(region: np.ndarray) -> np.ndarray:
    """The voxels of a region that can be vertices of its convex hull, in raster order.

    A voxel with region voxels on both sides along some axis lies inside a segment of
    the region and is no extreme point, so only the ends of the lines along all three
    axes are kept (a subset of :func:`_row_ends`, ~3x fewer points, the same extreme
    points; float).
    """
    ends = _line_ends(region, 0) & _line_ends(region, 1) & _line_ends(region, 2)
    return np.argwhere(ends).astype(np.float64)


def region_solidity(region: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Volume / convex-hull volume of one binary region (hull of its voxels' corners).

    ``spacing`` is the voxel size (z, y, x) in µm. The hull of the corners is the hull of
    the voxel centres grown by one voxel box (a Minkowski sum), so only the vertices of
    the centres' hull need their corners; those vertices are found among
    :func:`_hull_candidates`.
    """
    from scipy.spatial import ConvexHull, QhullError

    try:
        centres = _hull_candidates(region)
        vertices = centres[ConvexHull(centres).vertices]
    except (QhullError, ValueError):  # fewer than 4 voxels, or all in one plane or line
        vertices = _row_ends(region)
    corners = (vertices[:, None, :] + _CORNERS[None]).reshape(-1, 3) * np.asarray(spacing)
    hull = ConvexHull(corners).volume
    return float(region.sum() * np.prod(spacing) / hull)


def particle_solidity(
    labels: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Solidity of every particle: its volume divided by the volume of its convex hull.

    The hull is taken over the corners of the particle's surface voxels, so a digital
    ball has a solidity a little below 1 (about 0.85 at a radius of 5 voxels, 0.95 at 20);
    compare particles of similar size, or relative to the median.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer particle labels (z, y, x), 0 = background.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    numpy.ndarray
        float64, index = particle id (element 0 and absent ids are 1).
    """
    from scipy import ndimage as ndi

    sp = as_spacing(spacing, name="spacing")
    n = int(labels.max(initial=0))
    out = np.ones(n + 1, dtype=np.float64)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            out[i] = _solidity_memo(labels[box] == i, sp)
    return out


_MEMO: OrderedDict[tuple[Any, ...], float] = OrderedDict()
_MEMO_SIZE = 8192


def _solidity_memo(region: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """:func:`region_solidity`, remembered for the last :data:`_MEMO_SIZE` regions.

    A separation with healing asks for the solidity of mostly the same regions up to four
    times (the re-split at both widths, then the choice between them); the key is the
    region's bounding-box crop (its shape and a digest of its bits), on which the value
    depends only, so a remembered value is the value.
    """
    import hashlib

    key = (region.shape, tuple(spacing),
           hashlib.blake2b(np.packbits(region).tobytes(), digest_size=16).digest())
    value = _MEMO.get(key)
    if value is None:
        value = region_solidity(region, spacing)
        _MEMO[key] = value
        if len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return value


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


def shape_penalty(
    labels: np.ndarray,
    score: np.ndarray,
    solidity: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
    median_fill: float,
    median_solidity: float,
    convexity_power: float = CONVEXITY_POWER,
) -> np.ndarray:
    """Volume-weighted log down-weighting of each particle's confidence (µm³).

    Parameters
    ----------
    labels : numpy.ndarray
        Particle labels (z, y, x), 0 = background; ids need not be sequential.
    score : numpy.ndarray
        Distance map the particles were seeded on (µm).
    solidity : numpy.ndarray
        Solidity per particle id (index = id), e.g. of the healed regions.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    median_fill, median_solidity : float
        Reference fill ratio and solidity (the typical particle).
    convexity_power : float
        Weight of the solidity term (the confidence's exponent).

    Returns
    -------
    numpy.ndarray
        float64, index = particle id: ``V (|log q| + k |log min(s / median, 1)|)``, 0 for
        absent ids.
    """
    sp = as_spacing(spacing, name="spacing")
    fill, _ = fill_ratio(labels, score, spacing=sp)
    n = fill.size - 1
    volume = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64) * np.prod(sp)
    present = volume > 0
    present[0] = False
    out = np.zeros(n + 1, dtype=np.float64)
    q = fill[present] / median_fill
    relative = np.minimum(np.asarray(solidity, dtype=np.float64)[: n + 1][present]
                          / median_solidity, 1.0)
    out[present] = volume[present] * (np.abs(np.log(q))
                                      + convexity_power * np.abs(np.log(relative)))
    return out


class PieceShape:
    """Fill-ratio cost of the pieces of one crop, relative to the volume's typical particle.

    Each piece is measured on its own (smoothed) distance map, as if it were a particle.

    Parameters
    ----------
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    smooth : float
        Gaussian smoothing (voxels) of each piece's distance map (as for the main seeding).
    median_fill : float
        Fill ratio of the volume's typical particle (:func:`fill_ratio`).
    """

    def __init__(self, spacing: tuple[float, float, float], smooth: float,
                 median_fill: float) -> None:
        self.sp, self.smooth, self.median_fill = spacing, smooth, median_fill
        self.voxel = float(np.prod(spacing))

    def q(self, piece: np.ndarray) -> float:
        """Fill ratio of the boolean ``piece`` divided by the typical one.

        The distance map is computed on the piece's bounding box grown by the Gaussian's
        radius (at least 1 voxel), clipped to the array: the nearest background voxel of
        every piece voxel is in that box, and the smoothed map is 0 beyond the grown box
        and the same inside it (the clipped sides are the array's own faces), so its
        maximum is that of the whole array's map (same floats).
        """
        dist = smoothed_distance(piece[self._box(piece)], self.sp, self.smooth)
        ball = 4.0 / 3.0 * np.pi * max(float(dist.max()), 1e-6) ** 3
        return float(piece.sum() * self.voxel / ball / self.median_fill)

    def _box(self, piece: np.ndarray) -> tuple[slice, ...]:
        """Bounding box of ``piece`` grown by the smoothing radius (>= 1), in the array."""
        from scipy import ndimage as ndi

        boxes = ndi.find_objects(piece.view(np.uint8))
        if not boxes:
            return tuple(slice(0, n) for n in piece.shape)
        grow = max(int(4.0 * self.smooth + 0.5) if self.smooth > 0 else 0, 1)
        return tuple(slice(max(b.start - grow, 0), min(b.stop + grow, n))
                     for b, n in zip(boxes[0], piece.shape, strict=True))

    def cost(self, piece: np.ndarray) -> float:
        """``V |log q|`` (µm³): 0 for a piece that fits its ball like a typical particle."""
        return float(piece.sum() * self.voxel * abs(np.log(self.q(piece))))
