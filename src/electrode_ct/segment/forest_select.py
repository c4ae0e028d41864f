"""Choosing the forest's feature set from the user's own scribbles (held-out strokes).

A default feature set fixed on a few scans need not suit the next one. Here each
candidate set (:data:`CANDIDATES`) is scored by cross-validation over the user's strokes:
the scribbles are split into connected strokes, the strokes of each class are dealt into
``n_folds`` folds, a small forest is trained on the other folds and scored (mean
per-class IoU over the held-out stroke pixels). With scribbles on several z slices of a
2-D-feature model the folds are the slices themselves (leave one slice out), which also
sees the grey-level drift between slices. The best candidate wins; ties go to the
earlier one (the shipped default first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.segment import features as ft

CANDIDATES: dict[str, str] = {
    "default": "default",
    "default_std": "default,std:1,std:1.6,std:3.5",
    "multiscale": ",".join(f"{f}:{s}" for f in ("gaussian", "ggm", "hge")
                           for s in (1, 2, 4, 8, 16)),
}
"""Candidate feature sets (name -> :func:`features.parse_features` text), in order of
preference on ties: the shipped default, the default plus local standard deviation,
scikit-image's multiscale scales (intensity, edges, texture at σ 1–16)."""

SELECT_TREES = 20
"""Trees of each cross-validation forest (a ranking, not the final model)."""

TIE = 1e-3
"""Scores within this of the best count as a tie (the earlier candidate wins)."""

SELECT_SAMPLES = 10_000
"""At most this many training rows per cross-validation fit (class-fair sample)."""


def candidate_configs(mode: str, normalise: str = "auto",
                      names: Sequence[str] | None = None) -> dict[str, ft.FeatureConfig]:
    """The candidate feature configurations (name -> FeatureConfig) in ``mode``."""
    keys = list(CANDIDATES) if names is None else list(names)
    return {k: ft.parse_features(CANDIDATES[k], mode=mode, normalise=normalise) for k in keys}


def stroke_folds(labels: np.ndarray, n_folds: int = 2, *, seed: int = 0,
                 by_slice: bool = False) -> np.ndarray:
    """Fold index (0..n_folds-1) of every labelled voxel, -1 elsewhere.

    Parameters
    ----------
    labels : numpy.ndarray
        (z, y, x) scribbles, 0 = unlabelled.
    n_folds : int
        Folds (≥ 2).
    seed : int
        Shuffles the strokes before dealing them.
    by_slice : bool
        Folds are the labelled z slices (leave one slice out; ``n_folds`` is then the
        number of labelled slices).

    Returns
    -------
    numpy.ndarray
        int8 array of ``labels``' shape.

    Notes
    -----
    A stroke is a connected component of one class. The strokes of each class are
    shuffled and dealt in turn, so every fold holds every class that has at least
    ``n_folds`` strokes; a class with fewer strokes is split along its voxels' order.
    """
    fold = np.full(labels.shape, -1, np.int8)
    if by_slice:
        for i, z in enumerate(np.flatnonzero(labels.reshape(labels.shape[0], -1).any(1))):
            fold[z][labels[z] > 0] = i
        return fold
    rng = np.random.default_rng(seed)
    for v in np.unique(labels[labels > 0]):  # K classes
        comp, n = ndi.label(labels == v)
        if n >= n_folds:
            deal = np.empty(n + 1, np.int8)
            deal[0] = -1
            deal[1 + rng.permutation(n)] = np.arange(n) % n_folds
            fold[comp > 0] = deal[comp[comp > 0]]
        else:
            where = np.flatnonzero(comp.ravel())
            fold.ravel()[where] = (np.arange(where.size) * n_folds // where.size).astype(np.int8)
    return fold


def held_out_iou(truth: np.ndarray, pred: np.ndarray, values: Sequence[int]) -> float:
    """Mean per-class IoU of ``pred`` against ``truth`` over the classes present in either."""
    ious = []
    for v in values:
        t, p = truth == v, pred == v
        union = np.count_nonzero(t | p)
        if union:
            ious.append(np.count_nonzero(t & p) / union)
    return float(np.mean(ious))


def cross_validate(x: np.ndarray, y: np.ndarray, fold: np.ndarray, config: ft.FeatureConfig,
                   *, augment: float, offset_unit: float, seed: int = 0,
                   n_trees: int = SELECT_TREES, max_rows: int = SELECT_SAMPLES) -> float:
    """Mean held-out-stroke IoU of a forest on the rows ``x`` (folds ``fold``, ≥ 0).

    Parameters
    ----------
    x, y : numpy.ndarray
        (n, F) features of the labelled voxels and their labels.
    fold : numpy.ndarray
        (n,) fold of each row.
    config : FeatureConfig
        The features' configuration (for the intensity augmentation).
    augment, offset_unit : float
        As in :func:`forest_train.fit_rows`.
    seed, n_trees, max_rows : int
        Forest seed, trees, and the cap on training rows per fit (class-fair sample).

    Returns
    -------
    float
        The mean over folds of the held-out mean per-class IoU.
    """
    from electrode_ct.segment.forest_train import fit_estimator, sample_rows

    values = np.unique(y).tolist()
    scores = []
    for f in np.unique(fold):  # a few folds
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if np.unique(y[train]).size < 2:
            continue
        keep = train[sample_rows(y[train], max_rows, seed)]
        est = fit_estimator(x[keep], y[keep], config, augment=augment, offset_unit=offset_unit,
                            n_trees=n_trees, seed=seed, n_jobs=1)
        scores.append(held_out_iou(y[test], est.predict(x[test]), values))
    return float(np.mean(scores)) if scores else float("nan")


def select_features(rows: dict[str, tuple[np.ndarray, ft.FeatureConfig, float]],
                    y: np.ndarray, fold: np.ndarray, *, augment: float,
                    seed: int = 0) -> tuple[str, dict[str, float]]:
    """The candidate with the best held-out-stroke score, and every candidate's score.

    Parameters
    ----------
    rows : dict
        Candidate name -> (features of the labelled voxels, its FeatureConfig, the
        augmentation's offset unit), in order of preference.
    y, fold : numpy.ndarray
        Labels and folds of the rows (see :func:`stroke_folds`).
    augment : float
        Intensity augmentation of the fits.
    seed : int

    Returns
    -------
    name : str
        The winner (the first whose score is within :data:`TIE` of the best).
    scores : dict
        Name -> mean held-out IoU.
    """
    scores = {k: cross_validate(x, y, fold, cfg, augment=augment, offset_unit=unit, seed=seed)
              for k, (x, cfg, unit) in rows.items()}
    finite = [v for v in scores.values() if np.isfinite(v)]
    if not finite:
        return next(iter(rows)), scores
    name = next(k for k, v in scores.items() if v >= max(finite) - TIE)
    return name, scores


def describe(name: str, scores: dict[str, float], by_slice: bool) -> dict[str, Any]:
    """The selection's entry of a model report."""
    return {"chosen": name, "held_out_iou": scores,
            "folds": "labelled slices" if by_slice else "strokes"}
