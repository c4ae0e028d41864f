"""Connected components and percolation of a phase across blocks (union-find over faces).

Each block labels the 6-connected clusters of the phase in its interior (``cc3d``, no halo)
and returns their sizes and its six face planes of labels. The merge gives every block's
labels a global offset, joins the labels that face each other across every shared block
face (a union-find: connected components of the graph of those equivalences) and gives
each cluster one id, 1..n in order of first appearance (blocks in C order). A cluster
touches a face of the volume when one of its block labels lies on that face, so
percolation (touching both opposite faces) and isolation are decided as in memory.

The merge holds every block's six face planes (``4 × 2 × (b_y b_x + b_z b_x + b_z b_y)``
bytes per block of shape b) and one id per block label: small next to the volume.
Only 6-connectivity is merged (18/26 would need the blocks' edges and corners).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cc3d
import numpy as np

from electrode_ct.blocks import Block, block_grid
from electrode_ct.compute.engine import Progress, Source, ZarrRef, reduce_blocks, run_blocks
from electrode_ct.errors import InputError
from electrode_ct.metrics.connectivity import cluster_summary
from electrode_ct.volume import resolve_phase


def _labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    lab, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=np.uint8),
                                       connectivity=6, return_N=True)
    return lab, int(n)


def _block_partial(value: int) -> Any:
    def partial(region: np.ndarray, block: Block) -> tuple[np.ndarray, list[np.ndarray]]:
        lab, n = _labels(block.crop(region) == value)
        sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.int64)
        planes = [np.take(lab, i, axis=ax) for ax in range(3) for i in (0, -1)]
        return sizes, planes
    return partial


@dataclass(frozen=True)
class Clusters:
    """Global clusters of a phase from per-block labels.

    Attributes
    ----------
    offsets : numpy.ndarray of int64
        First global block-label index of each block (block label k of block b is
        ``offsets[b] + k - 1``).
    ids : numpy.ndarray of int64
        Global cluster id (1..n) of every block label, in that order.
    sizes : numpy.ndarray of int64
        Voxels per cluster id (index 0 unused, 0).
    touch : numpy.ndarray of bool
        (3, 2, n + 1): cluster touches the lower / upper volume face along each axis.
    """

    offsets: np.ndarray
    ids: np.ndarray
    sizes: np.ndarray
    touch: np.ndarray


def _merge(parts: list[Any], blocks: list[Block], shape: Sequence[int]) -> Clusters:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    counts = np.array([p[0].size - 1 for p in parts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = int(counts.sum())
    grid = {b.index: i for i, b in enumerate(blocks)}
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i, b in enumerate(blocks):
        for ax in range(3):
            j = grid.get(tuple(k + (d == ax) for d, k in enumerate(b.index)))
            if j is None:
                continue
            hi, lo = parts[i][1][2 * ax + 1], parts[j][1][2 * ax]
            both = (hi > 0) & (lo > 0)
            if not both.any():
                continue
            pairs = np.unique(np.stack([hi[both], lo[both]]).astype(np.int64), axis=1)
            rows.append(pairs[0] - 1 + offsets[i])
            cols.append(pairs[1] - 1 + offsets[j])
    r, c = np.concatenate(rows), np.concatenate(cols)
    if total == 0:
        return Clusters(offsets, np.zeros(0, np.int64), np.zeros(1, np.int64),
                        np.zeros((3, 2, 1), bool))
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(total, total))
    n, comp = connected_components(graph, directed=False)
    first = np.full(n, total, np.int64)
    np.minimum.at(first, comp, np.arange(total))
    rank = np.empty(n, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, n + 1)
    ids = rank[comp]
    sizes = np.zeros(n + 1, np.int64)
    touch = np.zeros((3, 2, n + 1), bool)
    for i, b in enumerate(blocks):
        np.add.at(sizes, ids[offsets[i]:offsets[i] + counts[i]], parts[i][0][1:])
        for ax in range(3):
            for side, on_face in enumerate((b.write[ax].start == 0,
                                            b.write[ax].stop == shape[ax])):
                if on_face:
                    lab = np.unique(parts[i][1][2 * ax + side])
                    touch[ax, side, ids[lab[lab > 0] - 1 + offsets[i]]] = True
    return Clusters(offsets, ids, sizes, touch)


def _clusters(src: Source, value: int, block_shape: Sequence[int], client: Any,
              progress: Progress | None) -> tuple[Clusters, list[Block]]:
    shape = tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)
    parts = reduce_blocks(_block_partial(value), src, block_shape=block_shape, client=client,
                          progress=progress)
    blocks = block_grid(shape, block_shape)
    return _merge(parts, blocks, shape), blocks


def _phase_value(phase: str | int, class_map: Mapping[str, int] | None,
                 connectivity: int) -> int:
    if int(connectivity) != 6:
        raise InputError(f"connectivity: the block engine merges 6-connected clusters only, "
                         f"got {connectivity}; run {connectivity}-connectivity in memory")
    return resolve_phase(phase, class_map, where="--phase")


def percolation_blockwise(src: Source, phase: str | int, *,
                          class_map: Mapping[str, int] | None = None,
                          axes: Iterable[str | int] = ("x", "y", "z"), connectivity: int = 6,
                          block_shape: Sequence[int], client: Any = None,
                          progress: Progress | None = None) -> dict[str, Any]:
    """Percolating fraction per direction and isolated clusters of one phase, as
    :func:`~electrode_ct.metrics.connectivity` (6-connected clusters only).

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    phase : str or int
        Class name or value of the phase.
    class_map, axes, connectivity
        As for :func:`~electrode_ct.metrics.connectivity`.
    block_shape : sequence of int
        Block shape in voxels (no halo: faces are compared at the merge).
    client, progress
        As for :func:`electrode_ct.metrics.blockwise.fractions_blockwise`.

    Raises
    ------
    InputError
        The phase is absent from the volume, or a connectivity other than 6.
    """
    value = _phase_value(phase, class_map, connectivity)
    cl, _ = _clusters(src, value, block_shape, client, progress)
    if cl.sizes.sum() == 0:
        raise InputError(f"--phase: phase {phase!r} (value {value}) is absent from the volume")
    return cluster_summary(cl.sizes, cl.touch, axes=axes, connectivity=6)


def _relabel(value: int, luts: dict[tuple[int, ...], np.ndarray]) -> Any:
    def relabel(region: np.ndarray, block: Block) -> np.ndarray:
        lab, _ = _labels(block.crop(region) == value)
        return luts[block.index][lab]
    return relabel


def components_blockwise(src: Source, dst: ZarrRef | np.ndarray, phase: str | int, *,
                         class_map: Mapping[str, int] | None = None,
                         block_shape: Sequence[int], client: Any = None,
                         progress: Progress | None = None, resume: bool = True) -> int:
    """Write the global 6-connected cluster ids (uint32, 0 outside the phase) of one phase.

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    dst : ZarrRef or numpy.ndarray
        uint32 output of the same shape (Zarr chunks dividing ``block_shape``).
    phase, class_map
        The phase (class name or value).
    block_shape, client, progress, resume
        As for :func:`~electrode_ct.compute.run_blocks`.

    Returns
    -------
    int
        Number of clusters (ids 1..n, unique over the volume, numbered in order of first
        appearance with blocks in C order).
    """
    value = _phase_value(phase, class_map, 6)
    cl, blocks = _clusters(src, value, block_shape, client, progress)
    luts = {}
    for i, b in enumerate(blocks):
        n_b = (cl.offsets[i + 1] if i + 1 < len(blocks) else cl.ids.size) - cl.offsets[i]
        luts[b.index] = np.concatenate([[0], cl.ids[cl.offsets[i]:cl.offsets[i] + n_b]]
                                       ).astype(np.uint32)
    run_blocks(_relabel(value, luts), src, dst, block_shape=block_shape, client=client,
               resume=resume, progress=progress)
    return int(cl.sizes.size - 1)
