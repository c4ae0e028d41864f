"""Instance-segmentation metrics: IoU matching, precision/recall/F1, COCO-style AP, splits/merges.

Predicted and reference particle label volumes are compared through a sparse
contingency table (one ``bincount`` over the pairs of labels that overlap), never a
loop over particles. See ``docs/particles.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.labels import check_labels

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
"""The COCO IoU thresholds 0.50:0.05:0.95."""


def contingency(pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """Sparse overlap table of two label images of the same shape.

    Parameters
    ----------
    pred, ref : numpy.ndarray
        Integer label arrays (0 = background), same shape.

    Returns
    -------
    dict
        ``pred_ids``, ``ref_ids`` (the overlapping pairs), ``intersection`` (voxels per
        pair), ``iou`` per pair, ``pred_size`` and ``ref_size`` (voxels per id, indexed by
        id).
    """
    p = pred.ravel().astype(np.int64, copy=False)
    r = ref.ravel().astype(np.int64, copy=False)
    n_p, n_r = int(p.max(initial=0)) + 1, int(r.max(initial=0)) + 1
    pred_size = np.bincount(p, minlength=n_p)
    ref_size = np.bincount(r, minlength=n_r)
    both = (p > 0) & (r > 0)
    key = p[both] * n_r + r[both]
    if n_p * n_r <= 1 << 25:
        counts = np.bincount(key, minlength=n_p * n_r)
        keys = np.flatnonzero(counts)
        inter = counts[keys]
    else:
        keys, inter = np.unique(key, return_counts=True)
    pid, rid = keys // n_r, keys % n_r
    union = pred_size[pid] + ref_size[rid] - inter
    return {
        "pred_ids": pid, "ref_ids": rid, "intersection": inter,
        "iou": inter / np.maximum(union, 1), "pred_size": pred_size, "ref_size": ref_size,
    }


def _ids(size: np.ndarray) -> np.ndarray:
    ids = np.flatnonzero(size)
    return ids[ids > 0]


def _match(table: dict[str, np.ndarray], conf: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted ids matched (IoU >= threshold) to a distinct reference id.

    For thresholds above 0.5 a match is unique on both sides; ties at exactly 0.5 go to
    the more confident prediction, then the higher IoU.
    """
    sel = table["iou"] >= threshold
    pid, rid, iou = table["pred_ids"][sel], table["ref_ids"][sel], table["iou"][sel]
    order = np.lexsort((-iou, -conf[pid]))
    pid, rid = pid[order], rid[order]
    _, first = np.unique(rid, return_index=True)  # one prediction per reference ...
    first = np.sort(first)
    _, once = np.unique(pid[first], return_index=True)  # ... and one reference per prediction
    return np.unique(pid[first][once])


def _average_precision(conf: np.ndarray, tp: np.ndarray, n_ref: int) -> tuple[float, dict]:
    """COCO 101-point interpolated AP; ties in confidence are evaluated as one step."""
    if n_ref == 0 or conf.size == 0:
        return (float("nan") if n_ref == 0 else 0.0), {"recall": [], "precision": []}
    order = np.argsort(-conf, kind="stable")
    c, t = conf[order], tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(t), np.cumsum(1 - t)
    last = np.r_[np.flatnonzero(np.diff(c) != 0), c.size - 1]
    recall = ctp[last] / n_ref
    precision = ctp[last] / (ctp[last] + cfp[last])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    sampled = np.where(idx < recall.size, envelope[np.minimum(idx, recall.size - 1)], 0.0)
    return float(sampled.mean()), {"recall": recall.tolist(), "precision": precision.tolist()}


def _scores(scores: Any, n_p: int) -> np.ndarray:
    if scores is None:
        return np.ones(n_p, dtype=np.float64)
    if isinstance(scores, dict):
        conf = np.ones(n_p, dtype=np.float64)
        for k, v in scores.items():
            if 0 <= int(k) < n_p:
                conf[int(k)] = float(v)
        return conf
    conf = np.asarray(scores, dtype=np.float64)
    if conf.size < n_p:
        raise InputError(f"scores: expected one confidence per predicted id (>= {n_p}), "
                         f"got {conf.size}")
    return conf


def match_instances(
    pred: Any,
    ref: Any,
    *,
    scores: Any = None,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Compare predicted particles with reference particles (3-D or 2-D).

    Parameters
    ----------
    pred, ref : numpy.ndarray
        Integer label arrays of the same shape (0 = background; ids need not be
        sequential).
    scores : array or dict, optional
        Confidence per predicted id (array indexed by id, or {id: score}); 1 for all
        when omitted.
    iou_threshold : float
        IoU for the precision/recall/F1 figures (0.5).

    Returns
    -------
    dict
        ``n_pred``, ``n_ref``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``
        (at ``iou_threshold``), ``ap50`` (AP at IoU 0.5), ``ap`` (mean AP over IoU
        0.50:0.05:0.95, COCO 101-point), ``ap_per_iou``, ``mean_matched_iou``,
        ``splits`` (reference particles covered by >= 2 predictions that each lie
        mostly (> 50 %) inside it), ``merges`` (predictions covering >= 2 reference
        particles that each lie mostly inside it), ``pr_curve`` (``recall``,
        ``precision`` at IoU 0.5, one point per distinct confidence).

    Raises
    ------
    InputError
        Non-integer label arrays.
    ShapeError
        Different shapes.
    """
    p = check_labels(pred, name="labels")
    r = check_labels(ref, name="reference")
    if p.shape != r.shape:
        raise ShapeError(f"labels: shape {p.shape} differs from the reference {r.shape}")
    table = contingency(p, r)
    pred_ids, ref_ids = _ids(table["pred_size"]), _ids(table["ref_size"])
    n_pred, n_ref = int(pred_ids.size), int(ref_ids.size)
    conf = _scores(scores, table["pred_size"].size)
    ap_per: dict[str, float] = {}
    curve: dict[str, list] = {"recall": [], "precision": []}
    for t in IOU_THRESHOLDS:
        tp = np.isin(pred_ids, _match(table, conf, float(t)))
        ap_t, pr = _average_precision(conf[pred_ids], tp, n_ref)
        ap_per[f"{t:.2f}"] = ap_t
        if t == 0.5:
            curve = pr
    matched = _match(table, conf, iou_threshold)
    tp_n = int(matched.size)
    precision = tp_n / n_pred if n_pred else float("nan")
    recall = tp_n / n_ref if n_ref else float("nan")
    f1 = 2 * tp_n / (n_pred + n_ref) if n_pred + n_ref else float("nan")
    sel = table["iou"] >= iou_threshold
    mean_iou = float(table["iou"][sel].mean()) if sel.any() else float("nan")
    inside_ref = table["intersection"] > 0.5 * table["pred_size"][table["pred_ids"]]
    inside_pred = table["intersection"] > 0.5 * table["ref_size"][table["ref_ids"]]
    splits = int((np.bincount(table["ref_ids"][inside_ref]) >= 2).sum())
    merges = int((np.bincount(table["pred_ids"][inside_pred]) >= 2).sum())
    ap_values = np.array(list(ap_per.values()))
    return {
        "n_pred": n_pred, "n_ref": n_ref, "tp": tp_n, "fp": n_pred - tp_n, "fn": n_ref - tp_n,
        "precision": precision, "recall": recall, "f1": f1,
        "ap50": ap_per["0.50"], "ap": float(np.mean(ap_values)) if n_ref else float("nan"),
        "ap_per_iou": ap_per, "mean_matched_iou": mean_iou,
        "splits": splits, "merges": merges, "iou_threshold": float(iou_threshold),
        "pr_curve": curve,
    }


def slice_instances(
    pred: Any,
    ref: Any,
    *,
    n_slices: int = 20,
    axis: int = 0,
    seed: int = 0,
    scores: Any = None,
) -> dict[str, Any]:
    """2-D instance metrics pooled over ``n_slices`` random slices (the published evaluation).

    Each chosen slice is a 2-D image whose particle sections are matched to the
    reference sections of the same slice; all slices are pooled (one particle section =
    one instance) into one set of figures, with a precision-recall curve.

    Parameters
    ----------
    pred, ref : numpy.ndarray
        3-D integer label volumes (z, y, x) of the same shape.
    n_slices : int
        Number of distinct random slices (capped at the number of slices).
    axis : int
        Slicing axis (0 = z, XY slices).
    seed : int
        Random seed of the slice choice.
    scores : array or dict, optional
        Confidence per predicted 3-D id, inherited by its sections.

    Returns
    -------
    dict
        The keys of :func:`match_instances` plus ``slices`` (indices used) and ``axis``.
    """
    p = check_labels(pred, name="labels", ndim=(3,))
    r = check_labels(ref, name="reference", ndim=(3,))
    if p.shape != r.shape:
        raise ShapeError(f"labels: shape {p.shape} differs from the reference {r.shape}")
    n = p.shape[axis]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(int(n_slices), n), replace=False))
    ps = np.take(p, idx, axis=axis).astype(np.int64)
    rs = np.take(r, idx, axis=axis).astype(np.int64)
    ps, rs = np.moveaxis(ps, axis, 0), np.moveaxis(rs, axis, 0)
    k = np.arange(idx.size, dtype=np.int64)[:, None, None]
    n_p, n_r = int(p.max(initial=0)) + 1, int(r.max(initial=0)) + 1
    # unique ids per (slice, particle): sections of one particle in two slices differ
    ps2 = np.where(ps > 0, k * n_p + ps, 0)
    rs2 = np.where(rs > 0, k * n_r + rs, 0)
    conf3 = _scores(scores, n_p)
    import fastremap

    ps_seq, remap = fastremap.renumber(ps2, preserve_zero=True)
    conf = np.ones(max(remap.values(), default=0) + 1)
    old = np.fromiter(remap.keys(), dtype=np.int64)
    new = np.fromiter(remap.values(), dtype=np.int64)
    conf[new] = conf3[old % n_p]
    rs_seq, _ = fastremap.renumber(rs2, preserve_zero=True)
    out = match_instances(ps_seq, rs_seq, scores=conf)
    out["slices"] = idx.tolist()
    out["axis"] = int(axis)
    return out


def away_from_border(pred: np.ndarray, truth: np.ndarray, *,
                     rule: str = "zone") -> tuple[np.ndarray, np.ndarray]:
    """Prediction and truth for an evaluation away from the volume border.

    Truth particles touching a face are dropped (a block cut from a larger electrode
    truncates them).

    ``rule="zone"``: a prediction with most (> 50 %) of its voxels on the dropped truth
    particles taken together (the border zone, one COCO-style ignore region) is ignored,
    not counted. ``rule="single"`` (the previous rule, reported alongside): only when one
    dropped particle holds the majority, so a prediction straddling two truncated border
    particles, and no interior particle, counts as a false positive.
    Interior truth particles are never ignored: one swallowed by a border prediction is
    a false negative under both rules.

    Returns
    -------
    pred, truth : numpy.ndarray
        The labels with the ignored predictions and the border truth particles set to 0.
    """
    from electrode_ct.labels import border_labels
    from electrode_ct.particles.cleanup import remove_labels

    on_border_ids = border_labels(truth)
    n = int(pred.max()) + 1
    if rule == "zone":
        zone = np.isin(truth, on_border_ids)
        on = np.bincount(pred[zone].ravel(), minlength=n)
    else:
        table = contingency(pred, truth)
        on_border = np.zeros(table["ref_size"].size, dtype=bool)
        on_border[on_border_ids] = True
        on = np.zeros(n, dtype=np.int64)
        inter = np.where(on_border[table["ref_ids"]], table["intersection"], 0)
        np.maximum.at(on, table["pred_ids"], inter)
    size = np.bincount(pred.ravel(), minlength=n)
    ignored = np.flatnonzero((2 * on > size) & (np.arange(n) > 0))
    return remove_labels(pred, ignored), remove_labels(truth, on_border_ids)
