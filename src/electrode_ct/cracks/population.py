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
class SubSample:
    """Values of a block (picklable): its share of ``grey[::step, ::step, ::step]``."""

    step: int = STEP

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        return subsample(region, block, self.step)


def _top(v: np.ndarray) -> np.ndarray:
    return (sort_key(v) >> np.uint32(32 - KEY_BITS)).astype(np.int64)


@dataclass(frozen=True)
class _KeyCounts:
    """Pass 1 (picklable): counts of a block's values by the top bits of their key, and
    their minimum and maximum."""

    values: Any

    def __call__(self, region: np.ndarray, block: Block) -> tuple[np.ndarray, float, float]:
        v = self.values(region, block)
        lo, hi = (float(v.min()), float(v.max())) if v.size else (np.inf, -np.inf)
        return np.bincount(_top(v), minlength=1 << KEY_BITS), lo, hi


@dataclass(frozen=True)
class _Gather:
    """Pass 2 (picklable): a block's values whose top key bits are in ``bins``."""

    values: Any
    bins: np.ndarray

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        v = self.values(region, block)
        return v[np.isin(_top(v), self.bins)]


def order_statistics(src: Source, values: Any, ranks: Any, *, block_shape: Sequence[int],
                     halo: Any = 0, client: Any = None,
                     progress: Any = None) -> tuple[Any, int, float, float]:
    """The float32 values of rank ``ranks(n)`` (0-based, ascending) among the values
    ``values(region, block)`` of every block, by rank selection (two passes).

    Parameters
    ----------
    src : ZarrRef or array-like
        Volume the blocks read.
    values : callable
        ``values(region, block) -> float32 1-D array`` (picklable; NaN-free).
    ranks : callable
        ``ranks(n) -> list of int`` given the number of values ``n`` (>= 1).
    block_shape, halo, client, progress
        As :func:`electrode_ct.compute.engine.reduce_blocks`.

    Returns
    -------
    (list of numpy.float32 or None, int, float, float)
        The values (None when there are no values), their count, minimum and maximum.
    """
    kw = {"block_shape": block_shape, "halo": halo, "client": client, "progress": progress}
    parts = reduce_blocks(_KeyCounts(values), src, **kw)
    counts = np.sum([p[0] for p in parts], axis=0)
    vmin, vmax, n = min(p[1] for p in parts), max(p[2] for p in parts), int(counts.sum())
    if n == 0:
        return None, 0, vmin, vmax
    want = [int(r) for r in ranks(n)]
    cum = np.cumsum(counts)
    where = [int(np.searchsorted(cum, r, side="right")) for r in want]
    need = np.unique(where)
    got = np.sort(np.concatenate(reduce_blocks(_Gather(values, need), src, **kw)))
    first = np.concatenate([[0], np.cumsum(counts[need])[:-1]])  # of each bin in ``got``
    at = dict(zip(need.tolist(), first.tolist(), strict=True))
    out = [got[at[b] + r - int(cum[b] - counts[b])] for r, b in zip(want, where, strict=True)]
    return out, n, vmin, vmax


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
    qs = np.true_divide(np.asarray(q, np.float64), 100)

    def ranks(n: int) -> list[int]:
        pos = np.floor((n - 1) * qs).astype(np.int64)
        return [r for k in pos for r in (int(k), min(int(k) + 1, n - 1))]

    vals, n, vmin, vmax = order_statistics(src, SubSample(step), ranks,
                                           block_shape=block_shape, client=client,
                                           progress=progress)
    pos = (n - 1) * qs
    gam = pos - np.floor(pos)
    out = [_lerp(vals[2 * i], vals[2 * i + 1], float(t)) for i, t in enumerate(gam)]
    return out, vmin, vmax


def median_blocks(src: Source, values: Any, *, block_shape: Sequence[int], halo: Any = 0,
                  client: Any = None, progress: Any = None) -> float:
    """:func:`numpy.median` of the float32 values ``values(region, block)`` of every block
    (the two middle values' float32 mean for an even count; NaN without values), exact.

    Parameters are those of :func:`order_statistics`.
    """
    def ranks(n: int) -> list[int]:
        return [(n - 1) // 2, n // 2]

    vals, n, _, _ = order_statistics(src, values, ranks, block_shape=block_shape, halo=halo,
                                     client=client, progress=progress)
    if vals is None:
        return float("nan")
    return float(vals[0] if n % 2 else np.mean(np.array(vals, np.float32)))


def quantise_range_blocks(src: Source, *, block_shape: Sequence[int], client: Any = None,
                          progress: Any = None) -> tuple[float, float]:
    """:func:`~electrode_ct.cracks.descriptors.quantise_range` of a volume, from blocks
    (identical; see the module docstring)."""
    from electrode_ct.cracks.descriptors import QUANTISE_PERCENTILES, range_from_percentiles

    pct, vmin, vmax = percentiles_blocks(src, QUANTISE_PERCENTILES, block_shape=block_shape,
                                         client=client, progress=progress)
    return range_from_percentiles(pct, vmin, vmax)
