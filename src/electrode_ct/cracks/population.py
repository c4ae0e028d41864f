"""Population statistics of a scan for flaw classification, merged exactly from blocks.

The classification compares every particle with its scan's population (see
:mod:`~electrode_ct.cracks.descriptors`). On the block engine no process holds the whole
volume, so each statistic is a reduction: every block returns a small partial, the
partials are merged, and the merged value is passed to the per-particle code, which
otherwise computes it itself from the whole volume (one code path).

The quantisation range (:func:`~electrode_ct.cracks.descriptors.quantise_range`: the
0.05 and 99.95 percentiles of every 2nd voxel per axis) is merged exactly by rank
selection: a first pass counts the sub-sampled values by the top 16 bits of an
order-preserving 32-bit key of their float32 value, which locates the bins holding the
order statistics the percentiles interpolate; a second pass gathers the (few) values of
those bins. The result equals :func:`numpy.percentile` on the whole sub-sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import Source, reduce_blocks

STEP = 2
"""Sub-sampling step of the quantisation range (every 2nd voxel per axis)."""

KEY_BITS = 16
"""Bits of the order key counted by the first pass (65 536 bins)."""


def sort_key(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 key of float32 values (the float32 bit pattern, sign bit
    flipped for positive values, all bits for negative ones); NaN-free input."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(1 << 31))


def subsample(region: np.ndarray, block: Block, step: int = STEP) -> np.ndarray:
    """float32 values of the block's interior at the voxels whose global indices are
    multiples of ``step`` (the block's share of ``grey[::step, ::step, ::step]``)."""
    inner = region[block.interior]
    sl = tuple(slice((-s.start) % step, None, step) for s in block.write)
    return np.asarray(inner[sl], np.float32).ravel()


@dataclass(frozen=True)
class _KeyCounts:
    """Pass 1 (picklable): counts of the sub-sample by the top bits of its key."""

    step: int = STEP

    def __call__(self, region: np.ndarray, block: Block) -> tuple[np.ndarray, float, float]:
        v = subsample(region, block, self.step)
        top = (sort_key(v) >> np.uint32(32 - KEY_BITS)).astype(np.int64)
        lo, hi = (float(v.min()), float(v.max())) if v.size else (np.inf, -np.inf)
        return np.bincount(top, minlength=1 << KEY_BITS), lo, hi


@dataclass(frozen=True)
class _Gather:
    """Pass 2 (picklable): the sub-sampled values whose top key bits are in ``bins``."""

    bins: np.ndarray
    step: int = STEP

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        v = subsample(region, block, self.step)
        top = (sort_key(v) >> np.uint32(32 - KEY_BITS)).astype(np.int64)
        return v[np.isin(top, self.bins)]


def _lerp(a: np.float32, b: np.float32, t: float) -> float:
    """:func:`numpy.percentile`'s linear interpolation between two neighbouring float32
    order statistics, with numpy's arithmetic (float32 difference, float64 weight, from
    the upper value when ``t >= 0.5``)."""
    lo, hi = np.array([a], np.float32), np.array([b], np.float32)
    w = np.array([t], np.float64)
    diff = hi - lo
    return float((hi - diff * (1 - w))[0] if t >= 0.5 else (lo + diff * w)[0])


def percentiles_blocks(src: Source, q: Sequence[float], *, block_shape: Sequence[int],
                       step: int = STEP, client: Any = None,
                       progress: Any = None) -> tuple[list[float], float, float]:
    """Percentiles ``q`` of ``src[::step, ::step, ::step]`` (as float32), from blocks.

    Parameters
    ----------
    src : ZarrRef or array-like
        Grey volume (z, y, x).
    q : sequence of float
        Percentiles (0-100).
    block_shape : sequence of int
        Blocks of the two reduction passes (voxels).
    step : int
        Sub-sampling step per axis.
    client, progress
        As :func:`electrode_ct.compute.engine.reduce_blocks`.

    Returns
    -------
    (list of float, float, float)
        The percentiles (linear interpolation, :func:`numpy.percentile`'s default), and
        the sub-sample's minimum and maximum.
    """
    kw = {"block_shape": block_shape, "client": client, "progress": progress}
    parts = reduce_blocks(_KeyCounts(step), src, **kw)
    counts = np.sum([p[0] for p in parts], axis=0)
    vmin, vmax = min(p[1] for p in parts), max(p[2] for p in parts)
    n = int(counts.sum())
    pos = (n - 1) * np.true_divide(np.asarray(q, np.float64), 100)
    ranks = [(int(k), min(int(k) + 1, n - 1), float(p - k))
             for p, k in zip(pos, np.floor(pos), strict=True)]
    cum = np.cumsum(counts)
    need = sorted({int(np.searchsorted(cum, r, side="right")) for k, k1, _ in ranks
                   for r in (k, k1)})
    got = np.sort(np.concatenate(reduce_blocks(_Gather(np.asarray(need, np.int64), step),
                                               src, **kw)))
    start = {b: int(cum[b] - counts[b]) for b in need}
    offsets, at = {}, 0
    for b in need:
        offsets[b] = at
        at += int(counts[b])

    def value(rank: int) -> np.float32:
        b = int(np.searchsorted(cum, rank, side="right"))
        return got[offsets[b] + rank - start[b]]

    out = [_lerp(value(k), value(k1), f) for k, k1, f in ranks]
    return out, vmin, vmax


def quantise_range_blocks(src: Source, *, block_shape: Sequence[int], client: Any = None,
                          progress: Any = None) -> tuple[float, float]:
    """:func:`~electrode_ct.cracks.descriptors.quantise_range` of a volume, from blocks
    (identical; see the module docstring)."""
    from electrode_ct.cracks.descriptors import QUANTISE_PERCENTILES, range_from_percentiles

    pct, vmin, vmax = percentiles_blocks(src, QUANTISE_PERCENTILES, block_shape=block_shape,
                                         client=client, progress=progress)
    return range_from_percentiles(pct, vmin, vmax)
