"""What the perturbed-label ensemble says about new data: the spread of its members'
results on a predicted volume and on labelled test slices.

Every member of an ensemble (:func:`~.ensemble.train_ensemble`, or any list of trained
models with the same classes) segments the input; each figure is computed per member and
reported as ``<key>`` (mean over members), ``<key>_std`` (sample std, ddof 1) and
``<key>_ci95`` (Student t-interval of the mean, :func:`electrode_ct.uncertainty.t_interval`).
Identical members give a spread of exactly 0. The interface-position histogram pools the
a–b faces of all members, placed relative to the majority vote (volume) or to the expert
labels (test slices) (:mod:`electrode_ct.metrics.interface_position`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.metrics.interface_position import pair_histograms
from electrode_ct.metrics.quality import interface_counts, interface_result
from electrode_ct.uncertainty import t_interval
from electrode_ct.volume import Spacing

VOLUME_KEYS = ("volume_fraction", "surface_area_um2", "interface_voxel_percent")
"""Per-member figures of a predicted volume (the last per phase pair, the others per phase)."""


def _check_members(models: Sequence[Any]) -> None:
    if len(models) < 2:
        raise InputError(f"ensemble: {len(models)} member(s); the spread over members needs at "
                         "least 2 (one member has no spread to report)")
    first = list(models[0].class_values)
    if any(list(m.class_values) != first for m in models[1:]):
        raise InputError("ensemble: the members segment different classes; use members "
                         "trained on the same labels")


def member_predictions(models: Sequence[Any], image: Any,
                       predict_options: dict[str, Any] | None = None) -> list[np.ndarray]:
    """Each member's class values for ``image`` as (z, y, x) uint8 arrays."""
    _check_members(models)
    return [np.asarray(m.predict(image, **(predict_options or {})).labels) for m in models]


def spread(per_member: list[dict[str, float]]) -> dict[str, Any]:
    """``<key>`` mean, ``<key>_std`` and ``<key>_ci95`` over members, per dict key.

    ``per_member`` holds one ``{name: value}`` per member; NaN/inf values (e.g. the IoU of
    a class absent from a test slice) are left out, as in
    :func:`electrode_ct.uncertainty.t_interval`. The std is computed on the differences
    from the first finite value (the same std, but exactly 0 for identical members).
    """
    names = list(per_member[0])
    out: dict[str, dict[str, Any]] = {"": {}, "_std": {}, "_ci95": {}}
    for name in names:
        v = np.array([m[name] for m in per_member], dtype=np.float64)
        v = v[np.isfinite(v)]
        t = t_interval(v - (v[0] if v.size else 0.0))
        mean = float(v.mean()) if v.size else float("nan")
        out[""][name] = mean
        out["_std"][name] = t["std"]
        half = None if t["ci95"] is None else t["mean"] - t["ci95"][0]
        out["_ci95"][name] = None if half is None else [mean - half, mean + half]
    return out


def _with_suffixes(key: str, s: dict[str, Any]) -> dict[str, Any]:
    return {f"{key}{suffix}": s[suffix] for suffix in ("", "_std", "_ci95")}


def _positions(items: list[tuple[list[np.ndarray], np.ndarray]], cmap: dict[str, int],
               spacing: Spacing, two_d: bool, bin_um: float | None) -> dict[str, Any]:
    """Interface-position histogram per phase pair (keys ``a-b`` by name), pooling the
    faces of every (member predictions, reference) item."""
    segs = [p for preds, _ in items for p in preds]
    refs = [ref for preds, ref in items for _ in preds]
    return pair_histograms(segs, refs[0], cmap, spacing=spacing, two_d=two_d, bin_um=bin_um,
                           references=refs)


def pair_percentages(pred: np.ndarray, cmap: dict[str, int], *, two_d: bool = False
                     ) -> dict[str, float]:
    """Interface voxel % per phase pair ``a-b`` and ``any`` over all phases of ``cmap``
    (absent phases give 0, so every member has the same keys); within each z-slice only
    when ``two_d``."""
    values = np.array(sorted(cmap.values()))
    planes = [pred[z:z + 1] for z in range(pred.shape[0])] if two_d else [pred]
    counts = sum(interface_counts(p, values, tuple(slice(0, n) for n in p.shape))
                 for p in planes)
    return interface_result(counts, values, pred.size, cmap)


def volume_spread(preds: list[np.ndarray], cmap: dict[str, int], *, reference: np.ndarray,
                  spacing: Spacing = (1.0, 1.0, 1.0), two_d: bool = False,
                  bin_um: float | None = None) -> dict[str, Any]:
    """Phase fractions, surface areas and interface voxel % per pair, mean ± std over members.

    Parameters
    ----------
    preds : list of numpy.ndarray
        The members' class values (z, y, x), at least 2.
    cmap : dict
        Phase name -> class value.
    reference : numpy.ndarray
        Labels the interface positions are measured against (the majority vote).
    spacing : tuple of float
        Voxel size (z, y, x), µm.
    two_d : bool
        Independent slices (interface positions within each slice).
    bin_um : float, optional
        Interface-position bin width, µm (default half the smallest voxel edge).

    Returns
    -------
    dict
        ``volume_fraction`` (0–1), ``surface_area_um2`` (µm², voxel faces) per phase,
        ``interface_voxel_percent`` (% of all voxels) per pair ``a-b`` and ``any``, each
        with ``_std`` and ``_ci95``; ``interface_position``: pair -> histogram
        (:func:`~electrode_ct.metrics.interface_position.position_histogram`); ``members``:
        the per-member figures; ``n_members``.
    """
    from electrode_ct.segment.cnn.ensemble import surface_area

    if len(preds) < 2:
        raise InputError("ensemble: the spread over members needs at least 2 members")
    per = {key: [] for key in VOLUME_KEYS}
    for p in preds:
        per["volume_fraction"].append({k: float(np.count_nonzero(p == v)) / p.size
                                       for k, v in cmap.items()})
        per["surface_area_um2"].append({k: surface_area(p, v, spacing=spacing)
                                        for k, v in cmap.items()})
        per["interface_voxel_percent"].append(pair_percentages(p, cmap, two_d=two_d))
    out: dict[str, Any] = {"n_members": len(preds), "members": per}
    for key in VOLUME_KEYS:
        out.update(_with_suffixes(key, spread(per[key])))
    out["interface_position"] = _positions([(preds, reference)], cmap, spacing, two_d, bin_um)
    return out


def labelled_spread(preds: list[list[np.ndarray]], labels: list[np.ndarray], cmap: dict[str, int],
                *, spacing: Spacing = (1.0, 1.0, 1.0), two_d: bool = True,
                bin_um: float | None = None, ignore: int | None = 0) -> dict[str, Any]:
    """IoU per phase and mean IoU on labelled test slices, mean ± std over members.

    Parameters
    ----------
    preds : list of list of numpy.ndarray
        ``preds[m][t]``: member m's class values for test image t.
    labels : list of numpy.ndarray
        Expert labels of each test image.
    cmap : dict
        Phase name -> class value.
    spacing, two_d, bin_um
        As for :func:`volume_spread` (test slices: ``two_d`` True).
    ignore : int, optional
        Label value not scored (default 0 = unlabelled; None scores every voxel).

    Returns
    -------
    dict
        ``iou`` (per phase) and ``mean_iou`` with ``_std`` / ``_ci95`` (confusion pooled
        over the test images, per member), ``interface_position`` against the labels,
        ``members`` (per member ``iou`` dicts and ``mean_iou``), ``n_members``, ``n_images``.
    """
    from electrode_ct.metrics.compare import compare

    if len(preds) < 2:
        raise InputError("ensemble: the spread over members needs at least 2 members")
    labels = [np.asarray(lab).reshape(np.shape(p)) for lab, p in zip(labels, preds[0],
                                                                       strict=True)]
    ref = np.concatenate([lab.reshape(-1) for lab in labels])
    ious, means = [], []
    for member in preds:
        pred = np.concatenate([np.asarray(p).reshape(-1) for p in member])
        res = compare(pred, ref, ignore=ignore, class_map=cmap)
        ious.append({k: float(res["iou"][k]) for k in cmap})
        means.append({"mean_iou": float(res["mean_iou"])})
    out: dict[str, Any] = {"n_members": len(preds), "n_images": len(labels),
                           "members": {"iou": ious, "mean_iou": [m["mean_iou"] for m in means]}}
    out.update(_with_suffixes("iou", spread(ious)))
    mean = spread(means)
    out.update({f"mean_iou{s}": mean[s]["mean_iou"] for s in ("", "_std", "_ci95")})
    items = [([member[t] for member in preds], labels[t])
             for t in range(len(labels))]
    out["interface_position"] = _positions(items, cmap, spacing, two_d, bin_um)
    return out
