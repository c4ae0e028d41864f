"""Re-split particles that crack healing merged with a neighbour, keeping cracked ones whole.

The closing that heals a crack also bridges the narrow pore between a small particle
and its neighbour (or fills the pocket between three particles); the small particle
then loses its own distance maximum and joins the neighbour. Such a merge is not
convex: its solidity (volume / convex-hull volume) is lower than the volume's typical
particle. Only those flagged particles are looked at again:

1. fragments: the watershed of the particle's own *un-healed* distance map (its
   h-maxima as seeds) over its healed region — a cracked particle falls into halves
   here, a merge into its particles (and their halves);
2. the fragments are joined greedily, the pair that lowers the shape cost the most
   first, while a join lowers it. The cost of a piece is ``V |log q|``, with ``q`` its
   fill ratio ``V / (4/3 π p³)`` (``p`` the peak of the piece's own healed distance map)
   divided by the median fill ratio of the volume's particles: a piece that fits its
   inscribed ball like a typical particle costs nothing, a crack half (a hemisphere,
   ``q`` ≈ 4) or a merge (too much volume for its ball) costs a lot;
3. the split is kept only when it lowers the cost of the particle, every piece is
   convex (relative solidity) and large enough, and at least one piece is a typical
   particle (``|log q| < log typical_fill``). Two crack halves are never typical, so a
   cracked particle stays whole.

The loop runs over the flagged particles only, each on its bounding-box crop; the
solidity of all particles is one convex hull per particle (a loop on crops, 1-2 ms each).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from electrode_ct.labels import contact_pairs
from electrode_ct.particles.confidence import fill_ratio
from electrode_ct.particles.seeding import distance_map, seed_markers, watershed
from electrode_ct.volume import as_spacing

_CORNERS = np.array([[i, j, k] for i in (-0.5, 0.5) for j in (-0.5, 0.5) for k in (-0.5, 0.5)])


def _solidity(region: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Volume / convex-hull volume of one binary region (hull of its voxels' corners).

    The hull of the corners is the hull of the voxel centres grown by one voxel box
    (a Minkowski sum), so only the vertices of the centres' hull need their corners.
    """
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    centres = np.argwhere(region & ~ndi.binary_erosion(region)).astype(np.float64)
    try:
        vertices = centres[ConvexHull(centres).vertices]
    except (QhullError, ValueError):  # fewer than 4 voxels, or all in one plane or line
        vertices = centres
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
            out[i] = _solidity(labels[box] == i, sp)
    return out


class _Shape:
    """Shape cost of pieces of one crop, relative to the volume's typical particle."""

    def __init__(self, spacing: tuple[float, float, float], smooth: float,
                 median_fill: float) -> None:
        self.sp, self.smooth, self.median_fill = spacing, smooth, median_fill
        self.voxel = float(np.prod(spacing))

    def q(self, piece: np.ndarray) -> float:
        from scipy import ndimage as ndi

        dist = distance_map(piece, self.sp)
        if self.smooth > 0:
            dist = ndi.gaussian_filter(dist, self.smooth)
        ball = 4.0 / 3.0 * np.pi * max(float(dist.max()), 1e-6) ** 3
        return float(piece.sum() * self.voxel / ball / self.median_fill)

    def cost(self, piece: np.ndarray) -> float:
        return float(piece.sum() * self.voxel * abs(np.log(self.q(piece))))


def _fragments(region: np.ndarray, solid: np.ndarray, shape: _Shape, h: float) -> np.ndarray:
    """Watershed of the un-healed (hole-filled) distance map over the healed region."""
    from scipy import ndimage as ndi

    inner = ndi.binary_fill_holes(solid & region)
    dist = distance_map(inner, shape.sp)
    if shape.smooth > 0:
        dist = ndi.gaussian_filter(dist, shape.smooth)
    return watershed(-dist, seed_markers(dist, h, inner), region, 0.0)


def _join(frag: np.ndarray, shape: _Shape, min_voxels: int) -> dict[int, np.ndarray]:
    """Join adjacent fragments: tiny ones first, then while a join lowers the shape cost."""
    ids = [int(i) for i in np.unique(frag) if i > 0]
    members = {i: (i,) for i in ids}  # group id -> its fragments
    pairs = [(int(a), int(b)) for a, b in contact_pairs(frag)]
    cache: dict[tuple[int, ...], float] = {}

    def cost(parts: tuple[int, ...]) -> float:
        key = tuple(sorted(parts))
        if key not in cache:
            cache[key] = shape.cost(np.isin(frag, key))
        return cache[key]

    def neighbours() -> set[tuple[int, int]]:
        owner = {f: g for g, fs in members.items() for f in fs}
        return {(min(owner[a], owner[b]), max(owner[a], owner[b]))
                for a, b in pairs if owner[a] != owner[b]}

    def size(g: int) -> int:
        return int(np.isin(frag, members[g]).sum())

    joined = True
    while joined and len(members) > 1:
        joined = False
        for t in [g for g in members if size(g) < min_voxels]:
            near = [b if a == t else a for a, b in neighbours() if t in (a, b)]
            if near:
                b = min(near, key=lambda k: cost(members[k] + members[t]) - cost(members[k]))
                members[b] += members.pop(t)
                joined = True
                break
    while len(members) > 1:
        gains = [(cost(members[a] + members[b]) - cost(members[a]) - cost(members[b]), a, b)
                 for a, b in neighbours()]
        if not gains or min(gains)[0] >= 0:
            break
        _, a, b = min(gains)
        members[a] += members.pop(b)
    return {g: np.isin(frag, fs) for g, fs in members.items()}


def resplit_merged(
    labels: np.ndarray,
    solid: np.ndarray,
    score: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
    h: float,
    smooth: float = 1.0,
    min_volume_um3: float = 0.0,
    solidity_flag: float = 0.95,
    min_piece_solidity: float = 0.8,
    typical_fill: float = 1.35,
) -> tuple[np.ndarray, int]:
    """Split particles that healing merged with a neighbour; cracked particles stay whole.

    See the module docstring for the method.

    Parameters
    ----------
    labels : numpy.ndarray
        Particle labels on the *healed* mask (the watershed before the cut back), (z, y, x).
    solid : numpy.ndarray
        The un-healed particle mask (bool, same shape).
    score : numpy.ndarray
        Smoothed distance map of the healed mask the particles were seeded on (µm).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    h : float
        h-maxima height (µm) of the fragments' seeds (as for the main watershed).
    smooth : float
        Gaussian smoothing (voxels) of the fragments' distance maps.
    min_volume_um3 : float
        Smallest piece kept (µm³); smaller fragments are joined to a neighbour.
    solidity_flag : float
        Particles whose solidity is below this fraction of the median are looked at.
    min_piece_solidity : float
        Every piece of an accepted split must reach this fraction of the median solidity.
    typical_fill : float
        At least one piece must have a fill ratio within this factor of the median.

    Returns
    -------
    labels : numpy.ndarray
        Same dtype; new pieces get ids above the previous maximum.
    n_split : int
        Number of particles split.
    """
    sp = as_spacing(spacing, name="spacing")
    out = labels.copy()
    n = int(labels.max(initial=0))
    if n < 2:
        return out, 0
    from scipy import ndimage as ndi

    solidity = particle_solidity(labels, spacing=sp)
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    median_solidity = float(np.median(solidity[1:][present]))
    fill, _ = fill_ratio(labels, score, spacing=sp)
    shape = _Shape(sp, smooth, float(np.median(fill[1:][present])))
    flagged = np.flatnonzero(solidity < solidity_flag * median_solidity)
    boxes = ndi.find_objects(labels)
    min_voxels = max(int(np.ceil(min_volume_um3 / shape.voxel)), 1)
    next_id, n_split = n + 1, 0
    for p in flagged[flagged > 0]:
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in boxes[p - 1])
        region = labels[box] == p
        frag = _fragments(region, solid[box], shape, h)
        if int(frag.max()) < 2:
            continue
        pieces = list(_join(frag, shape, max(min_voxels, int(0.05 * region.sum()))).values())
        if len(pieces) < 2:
            continue
        qs = np.array([shape.q(m) for m in pieces])
        costs = np.array([m.sum() * shape.voxel * abs(np.log(q))
                          for m, q in zip(pieces, qs, strict=True)])
        solid_enough = all(_solidity(m, sp) >= min_piece_solidity * median_solidity
                           for m in pieces)
        if not (solid_enough and costs.sum() < shape.cost(region)
                and np.abs(np.log(qs)).min() < np.log(typical_fill)
                and min(int(m.sum()) for m in pieces) >= min_voxels):
            continue
        crop = out[box]
        for m in pieces[1:]:
            crop[m] = next_id
            next_id += 1
        n_split += 1
    return out, n_split
