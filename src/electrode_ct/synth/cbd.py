"""Phase assignment to exact target fractions: active surface offset and CBD at necks.

The active phase is ``d1 <= delta`` (``d1``: distance to the nearest particle surface, µm)
and the carbon-binder domain fills the non-active voxels where ``d1 + d2 <= w`` (``d2``:
distance to the second-nearest surface): lens-shaped bridges at contacts and necks, then
thin films where particles are close, as in real electrodes. ``delta`` and ``w`` are
chosen by an exact count over the float16 distance maps (every float16 value is a
histogram bin), so the achieved fractions match the targets to within one tie.
"""

from __future__ import annotations

import numpy as np

_ALL16 = np.arange(1 << 16, dtype=np.int64)
_KEY_VALUES = np.where(_ALL16 >= 0x8000, _ALL16 - 0x8000, 0xFFFF - _ALL16).astype(
    np.uint16).view(np.float16)
"""float16 value of every sort key (key order = numeric order)."""


def _keys(a: np.ndarray) -> np.ndarray:
    b = a.view(np.uint16).astype(np.int32)
    return np.where(b >= 0x8000, 0xFFFF - b, b + 0x8000)


def count_threshold(values: np.ndarray, count: float, *, where: np.ndarray | None = None,
                    block: int = 1 << 22) -> float:
    """Smallest float16 ``t`` with at least ``count`` of ``values <= t`` (within ``where``).

    Parameters
    ----------
    values : ndarray of float16
        Values (no NaN).
    count : float
        Number of values wanted below or at the threshold.
    where : ndarray of bool, optional
        Values to consider (same shape).
    block : int
        Elements per chunk (bounds the temporary memory).

    Returns
    -------
    float
        The threshold; ``-inf`` when ``count <= 0``; the largest finite value when fewer
        than ``count`` finite values exist.
    """
    if count <= 0:
        return float("-inf")
    flat = values.reshape(-1)
    wflat = None if where is None else where.reshape(-1)
    hist = np.zeros(1 << 16, np.int64)
    for s in range(0, flat.size, block):
        k = _keys(flat[s:s + block])
        if wflat is not None:
            k = k[wflat[s:s + block]]
        hist += np.bincount(k.ravel(), minlength=1 << 16)
    cum = np.cumsum(hist)
    key = int(np.searchsorted(cum, np.ceil(count - 1e-9)))
    finite = np.flatnonzero(np.isfinite(_KEY_VALUES) & (hist > 0))
    if len(finite) == 0:
        return float("-inf")
    key = min(key, int(finite[-1]))
    return float(_KEY_VALUES[key])


def phase_block(d1: np.ndarray, d12: np.ndarray, delta: float, neck: float) -> np.ndarray:
    """Phase labels (0 pore, 1 cbd, 2 active) from distance maps and thresholds.

    Parameters
    ----------
    d1, d12 : ndarray of float16
        Nearest-surface distance and neck score (µm).
    delta : float
        Active where ``d1 <= delta`` (µm).
    neck : float
        CBD where not active and ``d12 <= neck`` (µm).
    """
    d = np.float16(delta)
    active = d1 <= d
    out = np.where(active, np.uint8(2), np.uint8(0))
    out[(~active) & (d12 <= np.float16(neck))] = 1
    return out
