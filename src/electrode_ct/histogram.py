"""Fixed-layout grey-level histograms: a mergeable reduction for any dtype and range.

A :class:`Bins` layout is fixed before the pass from the value range (itself a
min/max reduction), so the histograms of blocks of a volume, computed independently,
add up exactly to the histogram of the whole volume. Integer data get one bin per
integer level whenever the range allows it (``np.bincount``, fast on uint8/uint16);
float data (or integer ranges wider than ``max_bins``) get ``max_bins`` equal bins
over ``[low, high]``. Coarser histograms are obtained by summing consecutive bins
(:func:`group`), which keeps them exact and mergeable too; :func:`populated_levels`
reads quantised data (fewer levels than bins) as levels with their cells.

Examples
--------
>>> import numpy as np
>>> img = np.arange(10, dtype=np.uint16).reshape(2, 5)
>>> bins = bins_for(*value_range(img), integer=True)
>>> halves = histogram(img[0], bins) + histogram(img[1], bins)
>>> bool((halves == histogram(img, bins)).all()), bins.count
(True, 10)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from electrode_ct.errors import InputError

MAX_BINS = 1 << 16
"""Default number of bins of a fine histogram (one per level for 16-bit data)."""

_CHUNK = 1 << 22  # values per bincount call (bounds the int64 temporary to 32 MB)


@dataclass(frozen=True)
class Bins:
    """A fixed bin layout.

    Attributes
    ----------
    low : float
        Lower edge of bin 0 (integer layouts: the integer held by bin 0), grey levels.
    width : float
        Bin width in grey levels (integer layouts: the number of integers per bin).
    count : int
        Number of bins.
    integer : bool
        Bins hold integers ``low + k·width … low + (k+1)·width − 1``; otherwise the
        interval ``[low + k·width, low + (k+1)·width)`` (the last bin includes its
        upper edge).
    """

    low: float
    width: float
    count: int
    integer: bool

    def centres(self) -> np.ndarray:
        """Mean grey value each bin can hold (float64, length ``count``)."""
        k = np.arange(self.count, dtype=np.float64)
        offset = (self.width - 1.0) / 2.0 if self.integer else self.width / 2.0
        return self.low + k * self.width + offset


def value_range(values: np.ndarray) -> tuple[float, float]:
    """Minimum and maximum of an array (a reduction: merge blocks by min / max).

    Raises
    ------
    InputError
        Empty array, or NaN / infinite values.
    """
    v = np.asarray(values)
    if v.size == 0:
        raise InputError("image: no values to histogram (empty array)")
    lo, hi = float(v.min()), float(v.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError("image: the values hold NaN or infinite numbers")
    return lo, hi


def bins_for(low: float, high: float, *, integer: bool, max_bins: int = MAX_BINS) -> Bins:
    """Bin layout covering ``[low, high]`` with at most ``max_bins`` bins.

    Parameters
    ----------
    low, high : float
        Value range (grey levels), e.g. from :func:`value_range` merged over blocks.
    integer : bool
        The data are integers: bins hold whole integers (one each when the range has at
        most ``max_bins`` levels).
    max_bins : int
        Upper bound on the number of bins.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise InputError(f"histogram range: expected finite low <= high, got {low}, {high}")
    if max_bins < 1:
        raise InputError(f"max_bins: expected a positive integer, got {max_bins}")
    if integer:
        levels = int(high) - int(low) + 1
        per_bin = -(-levels // max_bins)
        return Bins(float(int(low)), float(per_bin), -(-levels // per_bin), True)
    width = (high - low) / max_bins if high > low else 1.0
    return Bins(float(low), float(width), int(max_bins) if high > low else 1, False)


def bin_index(values: np.ndarray, bins: Bins) -> np.ndarray:
    """Bin of every value (int64, clipped into ``[0, bins.count)``)."""
    v = np.asarray(values)
    if bins.integer:
        b = v.astype(np.int64) - int(bins.low)
        if bins.width != 1:
            b //= int(bins.width)
    else:
        b = ((v.astype(np.float64) - bins.low) * (1.0 / bins.width)).astype(np.int64)
    np.clip(b, 0, bins.count - 1, out=b)
    return b


def histogram(values: np.ndarray, bins: Bins) -> np.ndarray:
    """Counts of ``values`` in a fixed layout (int64); sums over blocks merge exactly.

    Parameters
    ----------
    values : numpy.ndarray
        Any shape; values outside the layout's range go to the first / last bin.
    bins : Bins
        The layout (:func:`bins_for`).

    Returns
    -------
    numpy.ndarray
        int64 counts of length ``bins.count``.
    """
    flat = np.asarray(values).reshape(-1)
    if bins.integer and bins.width == 1 and flat.dtype.kind == "u" and flat.itemsize <= 2:
        return _small_uint_histogram(flat, bins)
    out = np.zeros(bins.count, np.int64)
    for c0 in range(0, flat.size, _CHUNK):
        out += np.bincount(bin_index(flat[c0:c0 + _CHUNK], bins), minlength=bins.count)
    return out


def _small_uint_histogram(flat: np.ndarray, bins: Bins) -> np.ndarray:
    """uint8 / uint16 values counted as they are (no index arithmetic), then cut to the
    layout; values outside it go to the first / last bin."""
    levels = 1 << (8 * flat.itemsize)
    full = np.zeros(levels, np.int64)
    for c0 in range(0, flat.size, _CHUNK):
        full += np.bincount(flat[c0:c0 + _CHUNK], minlength=levels)
    a = int(np.clip(bins.low, 0, levels))
    out = np.zeros(bins.count, np.int64)
    part = full[a:a + bins.count]
    out[:part.size] = part
    out[0] += full[:a].sum()
    out[-1] += full[a + bins.count:].sum()
    return out


def image_histogram(image: np.ndarray, *, max_bins: int = MAX_BINS) -> tuple[np.ndarray, Bins]:
    """Fine histogram of a whole image: one min/max pass and one counting pass.

    Integer images get one bin per integer level whenever the range has at most
    ``max_bins`` levels (every uint8 / uint16 image).

    Returns
    -------
    (numpy.ndarray, Bins)
        Counts and their layout.
    """
    img = np.asarray(image)
    integer = img.dtype.kind in "uib"
    lo, hi = value_range(img)
    bins = bins_for(lo, hi, integer=integer, max_bins=max_bins)
    return histogram(img.astype(np.uint8) if img.dtype == bool else img, bins), bins


def group(counts: np.ndarray, factor: int) -> np.ndarray:
    """Sum every ``factor`` consecutive bins (the last group may be partial)."""
    c = np.asarray(counts)
    f = max(1, int(factor))
    if f == 1:
        return c
    n = -(-c.size // f)
    padded = np.zeros(n * f, c.dtype)
    padded[:c.size] = c
    return padded.reshape(n, f).sum(axis=1)


def trim(counts: np.ndarray, bins: Bins) -> tuple[np.ndarray, Bins]:
    """Drop the empty bins at both ends (the layout shifts accordingly).

    Raises
    ------
    InputError
        Every bin is empty.
    """
    c = np.asarray(counts)
    nz = np.flatnonzero(c)
    if nz.size == 0:
        raise InputError("histogram: no values counted")
    a, b = int(nz[0]), int(nz[-1]) + 1
    return c[a:b], Bins(bins.low + a * bins.width, bins.width, b - a, bins.integer)


def populated_levels(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The populated bins as levels: position, count and the width of each one's cell.

    Quantised data (8-bit values stretched to 16 bits, a contrast-stretched 8-bit image,
    8-bit values stored as float) populate only some bins, often at uneven spacing;
    grouping such a histogram into equal bins aliases (groups holding alternately one
    and two levels). Each level's cell reaches halfway to its neighbours (the cells
    tile the populated range), so count / cell width is a density that neither the gaps
    nor the bin layout change.

    Parameters
    ----------
    counts : numpy.ndarray
        1-D histogram with at least one non-zero count.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        Bin index of each populated bin (float64), its count (float64), its cell width
        in bins (1 for a lone level).
    """
    c = np.asarray(counts, dtype=np.float64)
    pos = np.flatnonzero(c).astype(np.float64)
    if pos.size == 1:
        return pos, c[c > 0], np.ones(1)
    gaps = np.diff(pos)
    edges = np.concatenate([[pos[0] - gaps[0] / 2], pos[:-1] + gaps / 2,
                            [pos[-1] + gaps[-1] / 2]])
    return pos, c[c > 0], np.diff(edges)


def group_levels(pos: np.ndarray, n: np.ndarray, cells: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge every ``k`` consecutive levels (the same levels whatever the bin layout).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        Count-weighted position, summed count and summed cell width of each group (its
        density is count / cell width).
    """
    k = max(1, int(k))
    if k == 1:
        return pos, n, cells
    starts = np.arange(0, pos.size, k)
    ng = np.add.reduceat(n, starts)
    return np.add.reduceat(n * pos, starts) / ng, ng, np.add.reduceat(cells, starts)


def group_by_width(pos: np.ndarray, n: np.ndarray, cells: np.ndarray,
                   width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge the levels into equal groups ``width`` bins wide from the first level.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray)
        For each group holding a level: count-weighted position, summed count, summed
        cell width, and the index of its last level.
    """
    gid = ((pos - pos[0]) / max(float(width), 1e-300)).astype(np.int64)
    ng = np.bincount(gid, weights=n)
    keep = np.flatnonzero(ng > 0)
    xg = np.bincount(gid, weights=n * pos)[keep] / ng[keep]
    last = np.searchsorted(gid, keep, side="right") - 1
    return xg, ng[keep], np.bincount(gid, weights=cells)[keep], last
