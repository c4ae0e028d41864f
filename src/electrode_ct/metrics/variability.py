"""Inter-user / inter-method variability of segmentations of the same volume."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.compare import _as_int_labels


def _stack(segs: Sequence[Any]) -> list[np.ndarray]:
    if len(segs) == 1 and isinstance(segs[0], (list, tuple)):
        segs = segs[0]
    if len(segs) < 2:
        raise InputError(f"variability: need at least 2 segmentations, got {len(segs)}")
    arrays = [_as_int_labels(s, f"segmentation {i + 1}") for i, s in enumerate(segs)]
    shape = arrays[0].shape
    for i, a in enumerate(arrays[1:], start=2):
        if a.shape != shape:
            raise ShapeError(f"segmentation {i} has shape {a.shape}, segmentation 1 has {shape}")
    if arrays[0].size == 0:
        raise InputError("variability: the segmentations are empty")
    return arrays


def agreement_map(*segs: Any) -> np.ndarray:
    """Per-voxel agreement: the fraction of segmentations that give the most common label.

    Parameters
    ----------
    *segs : numpy.ndarray
        Two or more integer label arrays of the same shape.

    Returns
    -------
    numpy.ndarray
        float32 array in [1/n, 1]; 1 where all segmentations agree.
    """
    arrays = _stack(segs)
    values = np.unique(np.concatenate([np.unique(a) for a in arrays]))
    best = np.zeros(arrays[0].shape, np.uint16)
    for v in values:  # one vectorised count per class value (phases: a handful)
        n = np.zeros(arrays[0].shape, np.uint16)
        for a in arrays:
            n += a == v
        np.maximum(best, n, out=best)
    return (best / np.float32(len(arrays))).astype(np.float32)


def variability(
    *segs: Any,
    class_map: Mapping[str, int] | None = None,
    agreement: bool = True,
) -> dict[str, Any]:
    """Volume-fraction spread and voxel disagreement between segmentations of one volume.

    Parameters
    ----------
    *segs : numpy.ndarray
        Two or more integer label arrays of the same shape (one per user or method);
        a single list of arrays is accepted too.
    class_map : mapping, optional
        name -> value; names become the class keys.
    agreement : bool
        Also return the per-voxel agreement map (key ``agreement``).

    Returns
    -------
    dict
        ``classes`` (keys), ``n_segmentations``, ``volume_fractions`` (one dict per
        segmentation, fractions 0–1), ``volume_fraction_mean`` and ``volume_fraction_std``
        (sample standard deviation, ddof = 1) per class, ``pairwise_percent_different``
        (n × n matrix of % voxels whose labels differ, image subtraction),
        ``mean_percent_different`` (mean over the n(n−1)/2 pairs), ``mean_agreement``
        (mean of the agreement map), ``percent_unanimous`` (% voxels where all agree), and
        ``agreement`` (float32 map) when asked.

    Raises
    ------
    InputError
        Fewer than 2 segmentations, non-integer labels, empty arrays.
    ShapeError
        Segmentations of different shapes.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    >>> v = variability(a, b, agreement=False)
    >>> v["volume_fraction_mean"]["1"], v["mean_percent_different"]
    (0.625, 25.0)
    """
    arrays = _stack(segs)
    n = len(arrays)
    values = np.unique(np.concatenate([np.unique(a) for a in arrays])).astype(np.int64)
    names = {int(v): k for k, v in (class_map or {}).items()}
    keys = [names.get(int(v), str(int(v))) for v in values]
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    fractions = np.empty((n, values.size), np.float64)
    for i, a in enumerate(arrays):
        counts = np.bincount((a.ravel().astype(np.int64) - lo), minlength=span)
        fractions[i] = counts[values - lo] / a.size
    diff = np.zeros((n, n), np.float64)
    for i in range(n):  # n(n−1)/2 whole-array comparisons
        for j in range(i + 1, n):
            diff[i, j] = diff[j, i] = 100.0 * float(np.count_nonzero(arrays[i] != arrays[j])) \
                / arrays[i].size
    iu = np.triu_indices(n, 1)
    agree = agreement_map(*arrays)
    out: dict[str, Any] = {
        "classes": keys,
        "n_segmentations": n,
        "volume_fractions": [dict(zip(keys, f.tolist(), strict=True)) for f in fractions],
        "volume_fraction_mean": dict(zip(keys, fractions.mean(axis=0).tolist(), strict=True)),
        "volume_fraction_std": dict(zip(keys, fractions.std(axis=0, ddof=1).tolist(),
                                        strict=True)),
        "pairwise_percent_different": diff.tolist(),
        "mean_percent_different": float(diff[iu].mean()),
        "mean_agreement": float(agree.mean(dtype=np.float64)),
        "percent_unanimous": 100.0 * float(np.count_nonzero(agree == 1.0)) / agree.size,
    }
    if agreement:
        out["agreement"] = agree
    return out


def method_variability(
    groups: Mapping[str, Sequence[Any]],
    *,
    phase: str | int | None = None,
    reference: float | None = None,
    class_map: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Bailey et al.'s comparison of methods: each method's spread over its users.

    Parameters
    ----------
    groups : mapping
        Method name -> two or more label arrays of one volume (one per user), all of the
        same shape.
    phase : str or int, optional
        The phase whose fraction and subtraction images are reported (e.g. ``active``);
        default: none (then only the all-label figures).
    reference : float, optional
        The phase's volume fraction from another technique (e.g. FIB-SEM), in (0, 1].
    class_map : mapping, optional
        name -> value.

    Returns
    -------
    dict
        Per method: :func:`variability`'s keys (no agreement map), ``n_users``, and with a
        ``phase``: ``phase_fraction`` (per user), ``phase_fraction_mean``,
        ``phase_fraction_std`` (ddof = 1), ``phase_pairs`` (``[i, j]`` user pairs in
        order), ``phase_percent_different`` (% voxels whose phase masks differ, per pair),
        and with a ``reference`` its ``reference`` comparison (see
        :func:`electrode_ct.metrics.quality.fraction_vs_reference`).

    Raises
    ------
    InputError
        No method, a method with fewer than 2 users, a reference outside (0, 1], a
        reference without a phase.
    """
    from electrode_ct.metrics.quality import fraction_vs_reference

    if not groups:
        raise InputError("variability: no method given")
    if reference is not None and phase is None:
        raise InputError("--reference: needs the phase it measures (PHASE=FRACTION)")
    out: dict[str, Any] = {}
    for name, segs in groups.items():  # a handful of methods
        if len(segs) < 2:
            raise InputError(f"variability: method {name!r} has {len(segs)} segmentation; "
                             "its spread needs at least 2 users")
        res = variability(*segs, class_map=class_map, agreement=False)
        res["n_users"] = res.pop("n_segmentations")
        if phase is not None:
            res.update(phase_spread(segs, phase, class_map))
        if reference is not None:
            res["reference"] = fraction_vs_reference(list(segs), phase=phase,
                                                     reference=reference, class_map=class_map)
        out[str(name)] = res
    return out


def phase_spread(segs: Sequence[Any], phase: str | int,
                 class_map: Mapping[str, int] | None) -> dict[str, Any]:
    """One phase's fraction per user (mean, sample σ) and its pairwise mask differences."""
    from electrode_ct.volume import resolve_phase

    value = resolve_phase(phase, class_map, where="--phase")
    masks = [np.asarray(s) == value for s in _stack(list(segs))]
    frac = np.array([float(np.count_nonzero(m)) / m.size for m in masks])
    pairs = [[i, j] for i in range(len(masks)) for j in range(i + 1, len(masks))]
    diff = [100.0 * float(np.count_nonzero(masks[i] != masks[j])) / masks[i].size
            for i, j in pairs]
    return {"phase": str(phase), "phase_value": int(value), "phase_fraction": frac.tolist(),
            "phase_fraction_mean": float(frac.mean()),
            "phase_fraction_std": float(frac.std(ddof=1)), "phase_pairs": pairs,
            "phase_percent_different": diff}


def subtraction(a: np.ndarray, b: np.ndarray, value: int) -> np.ndarray:
    """Bailey et al.'s subtraction image of one phase: int8 mask(a) − mask(b).

    +1 where only ``a`` gives the phase, −1 where only ``b`` does, 0 where they agree.
    """
    return ((np.asarray(a) == value).astype(np.int8)
            - (np.asarray(b) == value).astype(np.int8))
