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
_KEY_BITS = np.where(_ALL16 >= 0x8000, _ALL16 - 0x8000, 0xFFFF - _ALL16).astype(np.uint16)
"""float16 bit pattern of every sort key (key order = numeric order)."""
_KEY_VALUES = _KEY_BITS.view(np.float16)
"""float16 value of every sort key."""


def count_threshold(values: np.ndarray, count: float, *, where: np.ndarray | None = None,
                    exclude: np.ndarray | None = None,
                    above: tuple[np.ndarray, float] | None = None,
                    block: int = 1 << 20) -> float:
    """Smallest float16 ``t`` with at least ``count`` of ``values <= t`` (within ``where``).

    One histogram over the raw float16 bit patterns (every value is its own bin), then
    reordered into numeric order.

    Parameters
    ----------
    values : ndarray of float16
        Values (no NaN).
    count : float
        Number of values wanted below or at the threshold.
    where : ndarray of bool, optional
        Values to consider (same shape).
    exclude : ndarray of bool or uint8, optional
        Values to leave out where non-zero (same shape).
    above : (ndarray of float16, float), optional
        Consider only values whose companion in the array is above the number (same
        shape). The masks are applied chunk by chunk (no full-size temporaries).
    block : int
        Elements per chunk (bounds the temporary memory, about 9 bytes each).

    Returns
    -------
    float
        The threshold; ``-inf`` when ``count <= 0``; the largest finite value when fewer
        than ``count`` finite values exist.
    """
    if count <= 0:
        return float("-inf")
    flat = values.reshape(-1).view(np.uint16)
    wflat = None if where is None else where.reshape(-1)
    xflat = None if exclude is None else exclude.reshape(-1).view(np.uint8)
    other = None if above is None else above[0].reshape(-1)
    bits = np.zeros(1 << 16, np.int64)
    for s in range(0, flat.size, block):
        k = flat[s:s + block]
        keep = None if wflat is None else wflat[s:s + block].copy()
        if xflat is not None:
            keep = xflat[s:s + block] == 0 if keep is None else keep & (xflat[s:s + block] == 0)
        if other is not None:
            up = ~at_most(other[s:s + block], above[1])
            keep = up if keep is None else keep & up
        if keep is not None:
            k = k[keep]
        bits += np.bincount(k, minlength=1 << 16)
    hist = bits[_KEY_BITS]
    cum = np.cumsum(hist)
    key = int(np.searchsorted(cum, np.ceil(count - 1e-9)))
    finite = np.flatnonzero(np.isfinite(_KEY_VALUES) & (hist > 0))
    if len(finite) == 0:
        return float("-inf")
    key = min(key, int(finite[-1]))
    return float(_KEY_VALUES[key])


def at_most(values: np.ndarray, t: float) -> np.ndarray:
    """``values <= t`` for float16 ``values`` without NaN, by integer comparison.

    float16 is sign-magnitude: non-negative values order like their int16 bit patterns,
    negative ones in reverse. Numpy compares float16 through float32 conversion (several
    ns per element); this is one or two integer passes.
    """
    t16 = np.float16(t)
    bits = values.view(np.int16)
    if t16 >= 0:  # -0.0 included: compare with +0.0
        return bits <= int(np.array(abs(t16)).view(np.int16))
    return (bits < 0) & (bits >= int(np.array(t16).view(np.int16)))


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
    active = at_most(d1, delta)
    out = active.view(np.uint8) * np.uint8(2)
    out[~active & at_most(d12, neck)] = 1
    return out
