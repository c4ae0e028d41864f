"""Grey-level calibration between states from histogram peaks of reference regions."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.histogram import image_histogram
from electrode_ct.measure.intensity import peak_sigma


def region_peak(grey: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Histogram peak position and σ (grey levels) of the voxels in a region.

    The region's fine histogram (one bin per integer level, 2¹⁶ bins for float data)
    goes to :func:`electrode_ct.measure.intensity.peak_sigma`, which groups it to the
    peak's own width.

    Raises
    ------
    InputError
        The region is empty.
    """
    vals = np.asarray(grey)[np.asarray(mask, dtype=bool)]
    if vals.size == 0:
        raise InputError("calibration: a reference region selects no voxels")
    hist, bins = image_histogram(vals)
    return peak_sigma(hist, low=float(bins.centres()[0]), width=bins.width)


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
