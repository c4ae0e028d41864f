"""Segmentation-vs-reference comparison: confusion matrix, accuracy, IoU, Dice, fractions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError


def _as_int_labels(arr: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise InputError(f"{name}: expected integer labels, got non-integer floats")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iub":
        raise InputError(f"{name}: expected an integer label array, got dtype {a.dtype}")
    return a


def confusion_matrix(
    seg: np.ndarray, ref: np.ndarray, *, values: np.ndarray | None = None,
    ignore: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix of two label arrays in one ``bincount`` pass.

    Parameters
    ----------
    seg, ref : numpy.ndarray
        Integer labels of the same shape (prediction, reference).
    values : numpy.ndarray, optional
        The class values (rows/columns), default: the union of values present in both
        over the compared voxels.
    ignore : int, optional
        Reference value whose voxels are left out (e.g. 0 = unlabelled in sparse labels).

    Returns
    -------
    matrix : numpy.ndarray
        ``matrix[i, j]`` = number of voxels with reference ``values[i]`` and prediction
        ``values[j]`` (int64). Predictions outside ``values`` are not counted.
    values : numpy.ndarray
        The class values.
    """
    s = _as_int_labels(seg, "segmentation").ravel()
    r = _as_int_labels(ref, "reference").ravel()
    if s.shape != r.shape:
        raise ShapeError(f"segmentation {np.shape(seg)} and reference {np.shape(ref)} differ")
    if ignore is not None:
        keep = r != ignore
        s, r = s[keep], r[keep]
    if values is None:
        # after masking: the ignored value only appears if the prediction used it,
        # and then it counts as a (wrong) class
        values = np.union1d(np.unique(s), np.unique(r))
    values = np.asarray(values, dtype=np.int64)
    lut_size = int(max(values.max(initial=0), s.max(initial=0), r.max(initial=0))) + 1
    lo = int(min(values.min(initial=0), s.min(initial=0), r.min(initial=0)))
    lut = np.full(lut_size - lo, -1, dtype=np.int64)
    lut[values - lo] = np.arange(values.size)
    si = lut[s.astype(np.int64) - lo]
    ri = lut[r.astype(np.int64) - lo]
    ok = (si >= 0) & (ri >= 0)
    k = values.size
    mat = np.bincount(ri[ok] * k + si[ok], minlength=k * k).reshape(k, k)
    return mat.astype(np.int64), values


def compare(
    seg: np.ndarray,
    ref: np.ndarray,
    *,
    ignore: int | None = None,
    class_map: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Compare a segmentation with a reference labelling.

    Parameters
    ----------
    seg, ref : numpy.ndarray
        Integer label arrays of the same shape.
    ignore : int, optional
        Reference value to leave out (nothing is ignored unless given).
    class_map : mapping, optional
        name -> value; names are used as the class keys of the result.

    Returns
    -------
    dict
        ``accuracy`` (fraction), ``mean_iou``, ``mean_dice``, ``iou``, ``dice``,
        ``volume_fraction`` (of the segmentation over the compared voxels),
        ``volume_fraction_ref``, ``volume_fraction_error`` (seg − ref),
        ``percent_different`` (0–100), ``confusion_matrix`` (rows = reference),
        ``classes`` (keys in order), ``n_voxels``. Class keys are label values as strings
        unless a class map names them. Per-class IoU of a class absent from both arrays
        is NaN and left out of the mean.

    Examples
    --------
    >>> import numpy as np
    >>> r = compare(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    >>> r["accuracy"], r["iou"]["1"]
    (0.75, 0.6666666666666666)
    """
    mat, values = confusion_matrix(seg, ref, ignore=ignore)
    names = {int(v): k for k, v in (class_map or {}).items()}
    keys = [names.get(int(v), str(int(v))) for v in values]
    tp = np.diag(mat).astype(np.float64)
    ref_n = mat.sum(axis=1).astype(np.float64)
    seg_n = mat.sum(axis=0).astype(np.float64)
    total = float(mat.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (ref_n + seg_n - tp)
        dice = 2 * tp / (ref_n + seg_n)
    if total == 0:
        raise InputError("compare: no voxels left to compare (everything ignored or empty)")
    acc = float(tp.sum() / total)
    vf = seg_n / total
    vf_ref = ref_n / total
    valid = np.isfinite(iou)
    return {
        "accuracy": acc,
        "mean_iou": float(np.mean(iou[valid])) if valid.any() else float("nan"),
        "mean_dice": float(np.mean(dice[valid])) if valid.any() else float("nan"),
        "iou": dict(zip(keys, iou.tolist(), strict=True)),
        "dice": dict(zip(keys, dice.tolist(), strict=True)),
        "volume_fraction": dict(zip(keys, vf.tolist(), strict=True)),
        "volume_fraction_ref": dict(zip(keys, vf_ref.tolist(), strict=True)),
        "volume_fraction_error": dict(zip(keys, (vf - vf_ref).tolist(), strict=True)),
        "percent_different": 100.0 * (1.0 - acc),
        "confusion_matrix": mat.tolist(),
        "classes": keys,
        "n_voxels": int(total),
        "ignore": ignore,
    }
