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
shape scores (solidity, fill ratio, piece cost) are those of
:mod:`electrode_ct.particles.shape`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from electrode_ct.labels import contact_pairs
from electrode_ct.particles.seeding import (
    fill_mask_holes,
    seed_markers,
    smoothed_distance,
    watershed,
)
from electrode_ct.particles.shape import (
    PieceShape,
    fill_ratio,
    particle_solidity,
    region_solidity,
)
from electrode_ct.volume import as_spacing


def _fragments(region: np.ndarray, solid: np.ndarray, shape: PieceShape, h: float) -> np.ndarray:
    """Watershed of the un-healed (hole-filled) distance map over the healed region."""
    inner = fill_mask_holes(solid & region)
    dist = smoothed_distance(inner, shape.sp, shape.smooth)
    return watershed(-dist, seed_markers(dist, h, inner), region, 0.0)


def _join(frag: np.ndarray, shape: PieceShape,
          min_voxels: int) -> list[tuple[np.ndarray, float]]:
    """Join adjacent fragments: tiny ones first, then while a join lowers the shape cost.

    Returns each piece (boolean, crop shape) with its relative fill ratio
    (:meth:`PieceShape.q`, remembered from the joining).
    """
    ids = [int(i) for i in np.unique(frag) if i > 0]
    members = {i: (i,) for i in ids}  # group id -> its fragments
    pairs = [(int(a), int(b)) for a, b in contact_pairs(frag)]
    cache: dict[tuple[int, ...], tuple[float, float]] = {}  # fragments -> (q, cost)

    def measure(parts: tuple[int, ...]) -> tuple[float, float]:
        key = tuple(sorted(parts))
        if key not in cache:
            piece = np.isin(frag, key)
            q = shape.q(piece)
            cache[key] = (q, float(piece.sum() * shape.voxel * abs(np.log(q))))
        return cache[key]

    def cost(parts: tuple[int, ...]) -> float:
        return measure(parts)[1]

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
    return [(np.isin(frag, fs), measure(fs)[0]) for fs in members.values()]


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
    medians: tuple[float, float] | None = None,
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
    medians : (float, float), optional
        Median solidity and fill ratio to compare with, when they come from a larger
        volume than ``labels`` (a block of it, :mod:`electrode_ct.particles.blockwise`);
        default: those of ``labels``' particles.

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
    if n < (2 if medians is None else 1):
        return out, 0
    from scipy import ndimage as ndi

    solidity = particle_solidity(labels, spacing=sp)
    if medians is None:
        present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
        fill, _ = fill_ratio(labels, score, spacing=sp)
        medians = (float(np.median(solidity[1:][present])),
                   float(np.median(fill[1:][present])))
    median_solidity = medians[0]
    shape = PieceShape(sp, smooth, medians[1])
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
        joined = _join(frag, shape, max(min_voxels, int(0.05 * region.sum())))
        if len(joined) < 2:
            continue
        pieces = [m for m, _ in joined]
        qs = np.array([q for _, q in joined])
        costs = np.array([m.sum() * shape.voxel * abs(np.log(q))
                          for m, q in zip(pieces, qs, strict=True)])
        # the convex hulls (the slowest test) only for a split that passes the others
        if not (np.abs(np.log(qs)).min() < np.log(typical_fill)
                and min(int(m.sum()) for m in pieces) >= min_voxels
                and costs.sum() < shape.cost(region)
                and all(region_solidity(m, sp) >= min_piece_solidity * median_solidity
                        for m in pieces)):
            continue
        crop = out[box]
        for m in pieces[1:]:
            crop[m] = next_id
            next_id += 1
        n_split += 1
    return out, n_split
