"""Volume fractions of the phases of a label volume, overall and slice by slice along an axis."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics._phase import axis_index, label_array
from electrode_ct.volume import as_spacing


def phase_keys(values: Iterable[int], class_map: Mapping[str, int] | None) -> list[str]:
    """Result keys of label values: the class name, or the value as a string."""
    names = {int(v): k for k, v in (class_map or {}).items()}
    return [names.get(int(v), str(int(v))) for v in values]


def _prepare(
    labels: Any, mask: Any, values: Iterable[int] | None, class_map: Mapping[str, int] | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Label array, mask, class values and the dense class index of every voxel (−1 = other)."""
    a = label_array(labels)
    if a.dtype == bool:
        a = a.view(np.uint8)
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != a.shape:
            raise ShapeError(f"mask: shape {m.shape} differs from the labels' {a.shape}")
    vals = reported_values(np.unique(a if m is None else a[m]) if values is None else
                           np.zeros(0, np.int64), values, class_map)
    lo = int(min(vals.min(initial=0), a.min(initial=0)))
    hi = int(max(vals.max(initial=0), a.max(initial=0)))
    lut = np.full(hi - lo + 1, -1, dtype=np.int64)
    lut[vals - lo] = np.arange(vals.size)
    cls = lut[a.astype(np.int64) - lo] if lo else lut[a]
    return a, m, vals, cls


def volume_fractions(
    labels: Any,
    *,
    mask: Any = None,
    class_map: Mapping[str, int] | None = None,
    values: Iterable[int] | None = None,
) -> dict[str, float]:
    """Fraction of the (masked) volume in each phase.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer (or boolean) label array, any shape.
    mask : numpy.ndarray of bool, optional
        Voxels to count (e.g. the electrode without the current collector); default all.
    class_map : mapping, optional
        name -> value; named classes are reported under their names (also when absent,
        as 0.0).
    values : iterable of int, optional
        Values to report (default: those present, plus the class map's).

    Returns
    -------
    dict
        ``{key: fraction}`` (0–1) in value order; keys are class names, or values as
        strings when the value has no name. Voxels of values not reported count in the
        denominator.

    Examples
    --------
    >>> import numpy as np
    >>> volume_fractions(np.array([0, 0, 1, 2]), class_map={"pore": 0, "cbd": 1, "active": 2})
    {'pore': 0.5, 'cbd': 0.25, 'active': 0.25}
    """
    _, m, vals, cls = _prepare(labels, mask, values, class_map)
    sel = cls.ravel() if m is None else cls[m]
    if sel.size == 0:
        raise InputError("mask: selects no voxels; volume fractions need at least one")
    counts = np.bincount(sel[sel >= 0], minlength=vals.size)
    return fractions_from_counts(counts, vals, sel.size, class_map)


def reported_values(present: np.ndarray, values: Iterable[int] | None,
                    class_map: Mapping[str, int] | None) -> np.ndarray:
    """The values a result reports: ``values``, else those present plus the class map's."""
    if values is not None:
        return np.unique(np.asarray(list(values), dtype=np.int64))
    known = np.asarray(sorted((class_map or {}).values()), dtype=np.int64)
    return np.union1d(np.asarray(present).astype(np.int64), known)


def fractions_from_counts(counts: np.ndarray, vals: np.ndarray, total: int,
                          class_map: Mapping[str, int] | None) -> dict[str, float]:
    """``{key: count / total}`` for the reported values ``vals`` (see :func:`volume_fractions`)."""
    return {k: float(c / total) for k, c in zip(phase_keys(vals, class_map), counts, strict=True)}


def phase_profile(
    labels: Any,
    *,
    axis: str | int = "z",
    mask: Any = None,
    class_map: Mapping[str, int] | None = None,
    values: Iterable[int] | None = None,
    spacing: float | Iterable[float] | None = None,
) -> pd.DataFrame:
    """Phase fractions of every slice along an axis (porosity profile through the electrode).

    Parameters
    ----------
    labels : numpy.ndarray
        3-D label volume (z, y, x) (a 2-D array is one slice (1, y, x)).
    axis : {"x", "y", "z"} or int
        Profile direction (x, y, z = array axes 2, 1, 0).
    mask, class_map, values
        As for :func:`volume_fractions`.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in µm for the positions (default 1).

    Returns
    -------
    pandas.DataFrame
        One row per slice: ``slice`` (index), ``position_um`` (slice centre, µm),
        ``n_voxels`` (counted voxels), then ``fraction_<key>`` (0–1, NaN for a slice the
        mask empties) for each phase key (class name or value).
    """
    a, m, vals, cls = _prepare(labels, mask, values, class_map)
    if a.ndim == 2:
        cls = cls[None]
        m = None if m is None else m[None]
    ax = axis_index(axis)
    sp3 = as_spacing(spacing, name="spacing")
    n_sl = cls.shape[ax]
    k = vals.size
    slice_idx = np.arange(n_sl, dtype=np.int64).reshape([-1 if i == ax else 1 for i in range(3)])
    code = slice_idx * (k + 1) + np.where(cls >= 0, cls, k)
    code = code.ravel() if m is None else code[m]
    counts = np.bincount(code, minlength=n_sl * (k + 1)).reshape(n_sl, k + 1)
    return profile_table(counts, vals, class_map, spacing=sp3[ax])


def profile_table(counts: np.ndarray, vals: np.ndarray, class_map: Mapping[str, int] | None,
                  *, spacing: float) -> pd.DataFrame:
    """The :func:`phase_profile` table from voxel counts per (slice, reported value, other).

    Parameters
    ----------
    counts : numpy.ndarray of int
        (slices, len(vals) + 1): voxels of each reported value, then of all others.
    vals : numpy.ndarray
        Reported values.
    class_map : mapping, optional
        name -> value, for the column names.
    spacing : float
        Voxel size along the profile axis, µm.
    """
    n_sl, k = counts.shape[0], vals.size
    n_vox = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts[:, :k] / n_vox[:, None]
    df = pd.DataFrame({
        "slice": np.arange(n_sl),
        "position_um": (np.arange(n_sl) + 0.5) * spacing,
        "n_voxels": n_vox,
    })
    for j, key in enumerate(phase_keys(vals, class_map)):
        df[f"fraction_{key}"] = frac[:, j]
    return df
