"""Choose, region by region, between two crack-healing widths.

One closing width cannot suit every crack and every neck: a crack that the segmentation
widens beyond the width splits its particle in two, while a wider closing bridges more
narrow pores and merges small particles with their neighbours. So the particles are
separated twice, with the given width and a wider one, and wherever the two results
disagree the one whose particles look more like single particles is kept.

Disagreements are *conflict components*: the particles of both results linked by
overlaps of at least ``min_overlap`` of the smaller one (a particle found by both, 1:1,
is left as it is). The shape penalty of a particle
(:func:`~electrode_ct.particles.shape.shape_penalty`) is ``V log(p / c)``, its volume times
the log of how much its confidence ``c``
(:func:`~electrode_ct.particles.shape.particle_confidence`) is down-weighted from its
distance peak ``p``: ``V (|log q| + k |log min(s / median s, 1)|)`` with ``q`` its fill
ratio relative to the median and ``s`` its solidity (``k`` the confidence's convexity
power). A crack half (too little volume for its ball) and a merge (too much volume, not
convex) both pay; a whole particle pays little. In each component the result with the
smaller total penalty is kept. The medians are those of the first (given-width) result,
so both are measured on the same scale.
"""

from __future__ import annotations

import numpy as np


def conflict_components(
    first: np.ndarray,
    second: np.ndarray,
    *,
    min_overlap: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Group the particles of two labellings that overlap substantially.

    Parameters
    ----------
    first, second : numpy.ndarray
        Two particle labellings of the same volume (0 = background).
    min_overlap : float
        A pair is linked when it shares at least this fraction of the smaller particle.

    Returns
    -------
    comp_first, comp_second : numpy.ndarray
        int64 component index of every id of ``first`` and ``second`` (index = id; -1
        for ids linked to nothing, including 0).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n1, n2 = int(first.max(initial=0)) + 1, int(second.max(initial=0)) + 1
    both = (first > 0) & (second > 0)
    key = first[both].astype(np.int64) * n2 + second[both]
    pairs, inter = np.unique(key, return_counts=True)
    a, b = pairs // n2, pairs % n2
    size1 = np.bincount(first.ravel(), minlength=n1)
    size2 = np.bincount(second.ravel(), minlength=n2)
    keep = inter >= min_overlap * np.minimum(size1[a], size2[b])
    a, b = a[keep], b[keep]
    graph = coo_matrix((np.ones(a.size), (a, n1 + b)), shape=(n1 + n2, n1 + n2))
    _, comp = connected_components(graph, directed=False)
    linked = np.zeros(n1 + n2, dtype=bool)
    linked[a] = True
    linked[n1 + b] = True
    comp = np.where(linked, comp, -1)
    return comp[:n1], comp[n1:]


def choose_hypotheses(
    first: np.ndarray,
    second: np.ndarray,
    penalty_first: np.ndarray,
    penalty_second: np.ndarray,
    mask: np.ndarray,
    *,
    min_overlap: float = 0.2,
) -> tuple[np.ndarray, int]:
    """Keep ``first``, except in conflict components where ``second`` pays less.

    Parameters
    ----------
    first, second : numpy.ndarray
        Two particle labellings of the same mask (0 = background).
    penalty_first, penalty_second : numpy.ndarray
        Shape penalty per id (:func:`~electrode_ct.particles.shape.shape_penalty`).
    mask : numpy.ndarray
        The particle mask (bool); taken particles are painted inside it only.
    min_overlap : float
        See :func:`conflict_components`.

    Returns
    -------
    labels : numpy.ndarray
        int64: ids of ``first`` as they are, ids of ``second`` shifted by
        ``first.max()``. Voxels of a replaced component that no particle of ``second``
        covers become background.
    n_replaced : int
        Number of components taken from ``second``.
    """
    c1, c2 = conflict_components(first, second, min_overlap=min_overlap)
    n_comp = int(max(c1.max(initial=-1), c2.max(initial=-1))) + 1
    if n_comp == 0:
        return first.astype(np.int64), 0
    in1, in2 = c1 >= 0, c2 >= 0
    count1 = np.bincount(c1[in1], minlength=n_comp)
    count2 = np.bincount(c2[in2], minlength=n_comp)
    cost1 = np.bincount(c1[in1], weights=penalty_first[: c1.size][in1], minlength=n_comp)
    cost2 = np.bincount(c2[in2], weights=penalty_second[: c2.size][in2], minlength=n_comp)
    take = (cost2 < cost1) & (count1 > 0) & (count2 > 0) & ~((count1 == 1) & (count2 == 1))
    drop1 = np.zeros(c1.size, dtype=bool)
    drop1[in1] = take[c1[in1]]
    use2 = np.zeros(c2.size, dtype=bool)
    use2[in2] = take[c2[in2]]
    out = np.where(drop1[first], 0, first).astype(np.int64)
    paint = use2[second] & (out == 0) & mask
    out[paint] = second[paint].astype(np.int64) + int(first.max(initial=0))
    return out, int(take.sum())
