"""Grey-level calibration between states from histogram peaks of reference regions."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.measure.intensity import peak_sigma


def region_peak(grey: np.ndarray, mask: np.ndarray, *, bins: int = 512) -> tuple[float, float]:
    """Histogram peak position and σ (grey levels) of the voxels in a region.

    Raises
    ------
    InputError
        The region is empty.
    """
    vals = np.asarray(grey)[np.asarray(mask, dtype=bool)]
    if vals.size == 0:
        raise InputError("calibration: a reference region selects no voxels")
    lo, hi = float(vals.min()), float(vals.max())
    if np.issubdtype(vals.dtype, np.integer) and hi - lo < 4096:
        hist = np.bincount((vals - lo).astype(np.int64))
        return peak_sigma(hist, low=lo, width=1.0)
    width = (hi - lo) / bins if hi > lo else 1.0
    hist = np.bincount(np.clip(((vals - lo) / width).astype(np.int64), 0, bins - 1),
                       minlength=bins)
    return peak_sigma(hist, low=lo + width / 2, width=width)


def calibrate(
    reference: np.ndarray,
    state: np.ndarray,
    ref_regions: Sequence[np.ndarray],
    state_regions: Sequence[np.ndarray],
    *,
    effect: float | None = None,
    warn_ratio: float = 0.5,
) -> dict:
    """Grey-level drift of a state vs the reference from peaks of reference regions.

    Parameters
    ----------
    reference, state : numpy.ndarray
        Grey volumes of the two states.
    ref_regions, state_regions : sequence of numpy.ndarray
        Matching masks of regions that should not change (empty space above the sample,
        the pore phase, ...), one list per state. One region gives an offset, two or
        more a linear correction ``corrected = gain · state + offset``.
    effect : float, optional
        Size of the effect being measured (grey levels, e.g. an expected ΔĪ); a warning
        is raised when the drift reaches ``warn_ratio`` of it.
    warn_ratio : float
        Drift / effect ratio that triggers the warning.

    Returns
    -------
    dict
        ``peaks_ref``, ``peaks_state``, ``drift`` (state − reference per region),
        ``gain``, ``offset``, ``warning`` (text or None).
    """
    if len(ref_regions) != len(state_regions) or not ref_regions:
        raise InputError("calibration: give the same, non-zero number of regions per state")
    pr = np.array([region_peak(reference, m)[0] for m in ref_regions])
    ps = np.array([region_peak(state, m)[0] for m in state_regions])
    if len(pr) >= 2 and np.ptp(ps) > 0:
        gain, offset = np.polyfit(ps, pr, 1)
    else:
        gain, offset = 1.0, float(pr[0] - ps[0])
    drift = ps - pr
    message = None
    if effect is not None and np.max(np.abs(drift)) >= warn_ratio * abs(effect):
        message = (f"grey-level drift {np.max(np.abs(drift)):.3g} is comparable to the "
                   f"effect measured ({effect:.3g}); apply the correction or check the scans")
        warnings.warn(message, stacklevel=2)
    return {"peaks_ref": pr.tolist(), "peaks_state": ps.tolist(), "drift": drift.tolist(),
            "gain": float(gain), "offset": float(offset), "warning": message}


def apply_calibration(state: np.ndarray, calibration: dict) -> np.ndarray:
    """Linearly corrected state grey (float32): gain · state + offset."""
    return (np.asarray(state, np.float32) * np.float32(calibration["gain"])
            + np.float32(calibration["offset"]))
