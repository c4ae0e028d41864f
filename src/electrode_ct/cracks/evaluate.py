"""Scores against a reference: the reference itself, ROC/AUC, confusion matrix, threshold
choice, % flawed, depth profile.

Plain numpy (no per-particle loop), so the figures are the same wherever they are
computed: tests, benchmarks, the CLI's ``--truth``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError


def reference_flawed(truth: pd.DataFrame, ids: np.ndarray, *, name: str = "truth") -> np.ndarray:
    """0/1 reference of the particles ``ids`` from a table with ``label`` and ``flawed``
    (or ``cracked``).

    Raises
    ------
    InputError
        Missing columns, or particles of ``ids`` absent from the table.
    """
    if "label" not in truth.columns:
        raise InputError(f"{name}: no 'label' column (columns: {list(truth.columns)})")
    col = "flawed" if "flawed" in truth.columns else "cracked" if "cracked" in truth.columns \
        else None
    if col is None:
        raise InputError(f"{name}: needs a 'flawed' (0/1) or 'cracked' column next to 'label'")
    t = truth.drop_duplicates("label").set_index(truth["label"].astype(np.int64)
                                                 .drop_duplicates())
    missing = np.setdiff1d(ids, t.index.to_numpy(np.int64))
    if missing.size:
        raise InputError(f"{name}: {missing.size} of the {len(ids)} classified particles have "
                         f"no row (labels {missing[:5].tolist()}...); expected a row per "
                         "particle label")
    vals = pd.to_numeric(t.loc[ids, col], errors="coerce").to_numpy(np.float64)
    if np.isnan(vals).any() or not np.isin(vals, (0, 1)).all():
        raise InputError(f"{name}: column {col!r} must hold 0/1 (or true/false)")
    return vals.astype(np.int64)


def reference_by_overlap(labels: np.ndarray, ref_labels: np.ndarray, truth: pd.DataFrame, *,
                         name: str = "truth") -> pd.DataFrame:
    """A reference table for the particles of ``labels`` from another labelling's table.

    Each particle of ``labels`` takes the ``flawed`` (or ``cracked``) value of the
    particle of ``ref_labels`` it overlaps most (e.g. a phantom's true particles for a
    pipeline's own segmentation); a particle overlapping none is left out.

    Parameters
    ----------
    labels, ref_labels : numpy.ndarray
        Two particle labellings of the same volume (0 = background).
    truth : pandas.DataFrame
        ``label`` + ``flawed``/``cracked`` for the particles of ``ref_labels``.
    name : str
        Named in errors.

    Returns
    -------
    pandas.DataFrame
        ``label`` (of ``labels``), ``flawed`` (0/1), ``reference_label``, ``overlap``
        (fraction of the particle's voxels inside that reference particle).
    """
    from electrode_ct.metrics.instances import contingency

    if np.shape(labels) != np.shape(ref_labels):
        raise InputError(f"{name}: reference labels of shape {np.shape(ref_labels)} differ "
                         f"from the particles' {np.shape(labels)}")
    tab = contingency(np.asarray(labels), np.asarray(ref_labels))
    pid, rid, inter = tab["pred_ids"], tab["ref_ids"], tab["intersection"]
    order = np.lexsort((-inter, pid))
    first = order[np.r_[True, np.diff(pid[order]) != 0]] if pid.size else order
    flawed = reference_flawed(truth, rid[first], name=name)
    return pd.DataFrame({"label": pid[first], "flawed": flawed,
                         "reference_label": rid[first],
                         "overlap": inter[first] / tab["pred_size"][pid[first]]})


def _pair(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, np.float64).ravel()
    if y.shape != s.shape:
        raise InputError(f"reference: {y.size} labels for {s.size} scores")
    return y, s


def roc_curve(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds (descending) of a score.

    Parameters
    ----------
    y_true : array-like of bool or 0/1
        Reference (True = flawed).
    score : array-like of float
        Higher = more likely flawed.

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        One point per distinct score (plus the origin, threshold +inf); a particle is
        called flawed when ``score >= threshold``.
    """
    y, s = _pair(y_true, score)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.array([], int)
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return (np.r_[0.0, fp / n], np.r_[0.0, tp / p], np.r_[np.inf, s[last]])


def precision_recall(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds (descending) of a score: the precision–recall curve.

    Parameters
    ----------
    y_true : array-like of bool or 0/1
        Reference (True = flawed).
    score : array-like of float
        Higher = more likely flawed.

    Returns
    -------
    precision, recall, thresholds : numpy.ndarray
        One point per distinct score, same points as :func:`roc_curve` without its origin
        (a particle is called flawed when ``score >= threshold``); recall is 0 and
        precision 1 for no flawed particle in the reference.
    """
    y, _ = _pair(y_true, score)
    return _pr_from_roc(*roc_curve(y_true, score), int(y.sum()), int((~y).sum()))


def _pr_from_roc(fpr: np.ndarray, tpr: np.ndarray, thr: np.ndarray, n_pos: int, n_neg: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds from the ROC points (the origin dropped)."""
    tp = tpr[1:] * n_pos
    called = tp + fpr[1:] * n_neg
    precision = np.where(called > 0, tp / np.maximum(called, 1), 1.0)
    return precision, tpr[1:], thr[1:]


def _step_area(precision: np.ndarray, recall: np.ndarray) -> float:
    """Σ (R_i − R_{i−1}) P_i."""
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(y_true: Any, score: Any) -> float:
    """Area under the precision–recall curve as a step sum, Σ (R_i − R_{i−1}) P_i (the
    definition of scikit-learn's ``average_precision_score``); NaN without flawed
    particles."""
    y, _ = _pair(y_true, score)
    if not y.any():
        return float("nan")
    return _step_area(*precision_recall(y_true, score)[:2])


def curves(y_true: Any, score: Any, flawed: Any) -> dict[str, Any]:
    """The ROC and precision–recall curves, their areas and the confusion counts at the
    calls ``flawed`` as JSON-ready lists (the ``roc``, ``pr``, ``auc``,
    ``average_precision`` and ``confusion`` keys of the CLI and the pipeline)."""
    y, _ = _pair(y_true, score)
    fpr, tpr, thr = roc_curve(y_true, score)  # one ROC pass gives both curves
    prec, rec, thr_pr = _pr_from_roc(fpr, tpr, thr, int(y.sum()), int((~y).sum()))
    ap = _step_area(prec, rec) if y.any() else float("nan")
    return {"auc": roc_auc(y_true, score), "average_precision": ap,
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                    "thresholds": [None, *thr[1:].tolist()]},
            "pr": {"precision": prec.tolist(), "recall": rec.tolist(),
                   "thresholds": thr_pr.tolist()},
            "confusion": confusion(y_true, flawed)}


def roc_auc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is absent."""
    y, s = _pair(y_true, score)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    from scipy.stats import rankdata

    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def confusion(y_true: Any, flawed: Any) -> dict[str, int]:
    """Confusion matrix counts: ``tp``, ``fp``, ``tn``, ``fn`` (flawed = positive)."""
    y, f = _pair(y_true, flawed)
    f = f.astype(bool)
    return {"tp": int((y & f).sum()), "fp": int((~y & f).sum()),
            "tn": int((~y & ~f).sum()), "fn": int((y & ~f).sum())}


def select_threshold(y_true: Any, score: Any, *, rule: str = "youden") -> float:
    """A score threshold chosen on a labelled set.

    Parameters
    ----------
    y_true, score : array-like
        Reference and scores.
    rule : {"youden", "prevalence"}
        ``youden``: maximise TPR - FPR; ``prevalence``: the threshold whose % flawed
        equals the reference's (unbiased dataset percentage).
    """
    y, s = _pair(y_true, score)
    if rule == "prevalence":
        k = int(y.sum())
        if k == 0:
            return float(np.inf)
        return float(np.sort(s)[::-1][k - 1])
    if rule != "youden":
        raise InputError(f"rule: expected 'youden' or 'prevalence', got {rule!r}")
    fpr, tpr, thr = roc_curve(y, s)
    return float(thr[int(np.argmax(tpr - fpr))])


def expected_count_threshold(score: Any) -> float:
    """Threshold that flags as many particles as the calibrated scores expect.

    With calibrated probabilities ``p``, the expected number of flawed particles is
    ``sum(p)``; the threshold returned flags the ``round(sum(p))`` highest-scoring
    particles, so the dataset's % flawed is unbiased whatever the class balance of the
    training data (a fixed 0.5 under-counts when many flaws are faint).

    Parameters
    ----------
    score : array-like
        Calibrated flaw probabilities in [0, 1], one per particle.

    Returns
    -------
    float
        The score threshold (``inf`` when no particle is expected flawed).
    """
    s = np.sort(np.asarray(score, np.float64).ravel())[::-1]
    k = int(round(float(np.clip(s, 0.0, 1.0).sum())))
    if k == 0 or s.size == 0:
        return float(np.inf)
    return float(s[min(k, s.size) - 1])


def percent_flawed(flawed: Any) -> float:
    """Percentage of particles flagged flawed (NaN for none)."""
    f = np.asarray(flawed).astype(bool).ravel()
    return float(100.0 * f.mean()) if f.size else float("nan")


def depth_profile(flawed: Any, position: Any, *, extent: tuple[float, float], bins: int = 5,
                  from_end: bool = False) -> pd.DataFrame:
    """% flawed per depth bin along an axis (e.g. distance from the current collector).

    Parameters
    ----------
    flawed : array-like of bool
        Per particle.
    position : array-like of float
        Particle centroid along the axis (voxels).
    extent : (float, float)
        Range of the axis covered by the bins (voxels), e.g. ``(0, shape[axis])``.
    bins : int
        Number of equal bins.
    from_end : bool
        Depth measured from the far end (collector at the last slice).

    Returns
    -------
    pandas.DataFrame
        ``bin``, ``depth_start``, ``depth_stop`` (voxels from the chosen end),
        ``n_particles``, ``n_flawed``, ``percent_flawed``.
    """
    f = np.asarray(flawed).astype(bool).ravel()
    pos = np.asarray(position, np.float64).ravel()
    lo, hi = float(extent[0]), float(extent[1])
    if not hi > lo or bins < 1:
        raise InputError(f"depth bins: expected extent hi > lo and bins >= 1, got {extent}, "
                         f"{bins}")
    depth = (hi - pos) if from_end else (pos - lo)
    edges = np.linspace(0.0, hi - lo, bins + 1)
    idx = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    k = np.bincount(idx, weights=f, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(n > 0, 100.0 * k / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"bin": np.arange(bins), "depth_start": edges[:-1],
                         "depth_stop": edges[1:], "n_particles": n.astype(np.int64),
                         "n_flawed": k.astype(np.int64), "percent_flawed": pct})


def summary(y_true: Any, score: Any, *, threshold: float) -> dict[str, Any]:
    """AUC, confusion counts, accuracy and % flawed (called vs reference) at a threshold."""
    y, s = _pair(y_true, score)
    f = s >= threshold
    cm = confusion(y, f)
    return {"auc": roc_auc(y, s), "threshold": float(threshold), **cm,
            "accuracy": float((cm["tp"] + cm["tn"]) / max(y.size, 1)),
            "percent_flawed": percent_flawed(f), "percent_flawed_truth": percent_flawed(y)}
