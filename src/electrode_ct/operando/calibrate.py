"""Grey-level calibration between states from histogram peaks of reference regions."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

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
    pr = region_peaks(reference, ref_regions)
    ps = region_peaks(state, state_regions)
    return drift_from_peaks(pr, ps, effect=effect, warn_ratio=warn_ratio)


def region_peaks(grey: np.ndarray, regions: Sequence[np.ndarray]) -> np.ndarray:
    """Histogram peak (grey levels) of ``grey`` in each region (:func:`region_peak`)."""
    return np.array([region_peak(grey, m)[0] for m in regions], dtype=float)


def drift_from_peaks(pr: Sequence[float], ps: Sequence[float], *, effect: float | None = None,
                     warn_ratio: float = 0.5) -> dict:
    """Drift and linear correction from matching reference and state peaks.

    One peak gives an offset (gain 1), two or more a least-squares line mapping the
    state's peaks onto the reference's; keys as :func:`calibrate` returns.
    """
    pr, ps = np.asarray(pr, float), np.asarray(ps, float)
    if np.array_equal(pr, ps):  # the reference itself: exactly no correction
        gain, offset = 1.0, 0.0
    elif len(pr) >= 2 and np.ptp(ps) > 0:
        gain, offset = np.polyfit(ps, pr, 1)
    else:
        gain, offset = 1.0, float(np.mean(pr - ps))
    drift = ps - pr
    message = None
    if effect is not None and np.max(np.abs(drift)) >= warn_ratio * abs(effect):
        message = (f"grey-level drift {np.max(np.abs(drift)):.3g} is comparable to the "
                   f"effect measured ({effect:.3g}); apply the correction or check the scans")
        warnings.warn(message, stacklevel=3)
    return {"peaks_ref": pr.tolist(), "peaks_state": ps.tolist(), "drift": drift.tolist(),
            "gain": float(gain), "offset": float(offset), "warning": message}


def region_masks(grey: np.ndarray, phases: np.ndarray | None, regions: Sequence[int | str],
                 *, state: int) -> list[np.ndarray]:
    """Masks of the calibration regions of one state.

    Parameters
    ----------
    grey : numpy.ndarray
        The state's grey volume.
    phases : numpy.ndarray or None
        The state's phase volume (needed for integer regions).
    regions : sequence of int or "background"
        A phase value (voxels of that phase), or ``"background"`` (voxels below the
        state's Otsu threshold: pore and empty space).
    state : int
        Index of the state (for the messages).

    Raises
    ------
    InputError
        A region needs phases that were not given, or selects no voxel in this state
        (no reference peak can be found).
    """
    from electrode_ct.operando.propagate import otsu_foreground

    masks = []
    for r in regions:
        if r == "background":
            m = ~otsu_foreground(grey)[0]
        elif phases is None:
            raise InputError(f"calibration region {r!r}: phase regions need the phase volume "
                             "of every state; give phases or use 'background'")
        else:
            m = np.asarray(phases) == int(r)
        if not m.any():
            raise InputError(f"calibration region {r!r}: no voxel of it in state {state}, so "
                             "no reference peak can be found; choose a region present in "
                             "every state")
        masks.append(m)
    return masks


def calibrate_state(ref_peaks: Sequence[float], grey: np.ndarray, phases: np.ndarray | None,
                    regions: Sequence[int | str], *, state: int) -> dict:
    """Calibration of one state against the reference's region peaks.

    Returns
    -------
    dict
        ``state``, ``regions`` (as given, text) and :func:`drift_from_peaks`'s keys;
        ``corrected = gain · grey + offset`` puts the state on the reference's scale.
    """
    ps = region_peaks(grey, region_masks(grey, phases, regions, state=state))
    return {"state": int(state), "regions": [str(r) for r in regions],
            **drift_from_peaks(ref_peaks, ps)}


def apply_calibration(state: Any, calibration: dict | None) -> Any:
    """Linearly corrected state grey (float32): gain · state + offset (``state`` itself
    when ``calibration`` is None). A dask array stays lazy (the same float32 operations
    per block, so the values equal the in-memory ones)."""
    if calibration is None:
        return state
    data = state.astype(np.float32) if hasattr(state, "dask") else np.asarray(state, np.float32)
    return data * np.float32(calibration["gain"]) + np.float32(calibration["offset"])
