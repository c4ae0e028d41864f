"""Cracks on the block engine: bounding boxes per label, owned particles, 3-phase volume.

A particle is *owned* by the block holding its first voxel in raster order, so every
particle belongs to exactly one block whatever the block shape. A first reduction pass
(:func:`label_boxes_blocks`) gives every label's bounding box and first voxel, merged
exactly from per-block partials (:func:`electrode_ct.labels.label_boxes`); from them the
halo reaching every particle (:func:`reach`) and each block's owned particles
(:func:`owners`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from electrode_ct.blocks import Block, block_grid
from electrode_ct.compute.engine import Source, ZarrRef, reduce_blocks
from electrode_ct.labels import label_boxes, merge_boxes


@dataclass(frozen=True)
class _Boxes:
    """Block function: :func:`label_boxes` of a block's interior (picklable)."""

    shape: tuple[int, ...]

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        return label_boxes(block.crop(region), offset=tuple(s.start for s in block.write),
                           shape=self.shape)


def _shape(src: Source) -> tuple[int, ...]:
    arr = src.open("r") if isinstance(src, ZarrRef) else src
    return tuple(int(n) for n in arr.shape)


def label_boxes_blocks(labels: Source, *, block_shape: Sequence[int], client: Any = None,
                       progress: Any = None) -> np.ndarray:
    """Bounding box and first voxel of every label, from per-block partials.

    Parameters
    ----------
    labels : ZarrRef or array-like
        Global label volume (z, y, x).
    block_shape : sequence of int
        Blocks of the reduction (voxels; no halo).
    client, progress
        As :func:`electrode_ct.compute.engine.reduce_blocks`.

    Returns
    -------
    numpy.ndarray
        int64 rows of :data:`electrode_ct.labels.BOX_COLUMNS`, sorted by label; equal to
        :func:`~electrode_ct.labels.label_boxes` of the whole volume.
    """
    shape = _shape(labels)
    parts = reduce_blocks(_Boxes(shape), labels, block_shape=block_shape, client=client,
                          progress=progress)
    return merge_boxes(parts)


def reach(boxes: np.ndarray, *, margin: int = 0) -> tuple[int, int, int]:
    """Halo (voxels, per axis) reaching every particle from any of its voxels: the largest
    box extent plus ``margin``; (0, 0, 0) without particles."""
    if not len(boxes):
        return (0, 0, 0)
    ext = (boxes[:, 4:7] - boxes[:, 1:4]).max(axis=0) + int(margin)
    return tuple(int(e) for e in ext)  # type: ignore[return-value]


def owners(boxes: np.ndarray, shape: Sequence[int],
           block_shape: Sequence[int]) -> np.ndarray:
    """Position (in :func:`~electrode_ct.blocks.block_grid` order) of the block owning
    each label of ``boxes``: the block holding its first voxel in raster order."""
    shape = tuple(int(n) for n in shape)
    first = np.unravel_index(boxes[:, 7], shape)
    step = [min(int(b), n) for b, n in zip(block_shape, shape, strict=True)]
    dims = [-(-n // b) for n, b in zip(shape, step, strict=True)]
    grid = tuple(f // b for f, b in zip(first, step, strict=True))
    return np.ravel_multi_index(grid, dims) if len(boxes) else np.zeros(0, np.int64)


def owned_by_block(boxes: np.ndarray, shape: Sequence[int],
                   block_shape: Sequence[int]) -> list[np.ndarray]:
    """Rows of ``boxes`` owned by each block of the grid (a list in grid order)."""
    n = len(block_grid(shape, block_shape))
    own = owners(boxes, shape, block_shape)
    return [boxes[own == i] for i in range(n)]
