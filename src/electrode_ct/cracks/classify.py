"""Classify the candidate particles of a scan and split the flawed ones into 3 phases.

:func:`classify` is the whole chain for a grey volume and its labels; it resolves the model
(:mod:`~electrode_ct.cracks.models`), prepares the scan (:mod:`~electrode_ct.cracks.scan`)
and calls :func:`classify_scan`, which composes one function per step: the model's scores
and calls (:func:`score_particles`), the 3-phase split
(:func:`~electrode_ct.cracks.threephase.three_phase`), the per-particle table
(:func:`particle_table`) and the summary (:func:`scan_summary`, :func:`depth_summary`,
:func:`truth_summary`). The CLI and the pipeline only call them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks import evaluate
from electrode_ct.cracks.models import resolve_model
from electrode_ct.cracks.scan import PreparedScan, cnn_slices, prepare_scan
from electrode_ct.errors import InputError, ModelError

SPLITS = ("flawed", "all")
"""Which particles the 3-phase segmentation splits."""
CRACK_COLUMNS = ("crack_voxels", "crack_volume_um3", "crack_volume_fraction",
                 "crack_surface_um2", "crack_volume_pv_um3", "crack_volume_fraction_pv")
"""Columns of the 3-phase crack table that are 0 (not NaN) for particles not split."""


@dataclass
class CracksResult:
    """Output of :func:`classify`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate particle (see ``docs/cracks.md``).
    phases : numpy.ndarray or None
        uint8 3-phase volume (0 exterior, 1 solid, 2 flaw); None when a block splitter
        wrote it to its store.
    summary : dict
        Counts, % flawed, per-depth % flawed, threshold, AUC etc.
    slice_prob : numpy.ndarray or None
        CNN slice probabilities (particles × slices).
    """

    table: pd.DataFrame
    phases: np.ndarray | None
    summary: dict[str, Any] = field(default_factory=dict)
    slice_prob: np.ndarray | None = None


@dataclass
class ParticleScores:
    """A model's verdict on the candidate particles (rows in the order of ``scan.ids``).

    Attributes
    ----------
    score : numpy.ndarray
        float64 flaw score per particle (0-1).
    flawed : numpy.ndarray
        bool call per particle.
    threshold : float
        Score threshold applied (the model's rule unless one was given).
    slice_prob : numpy.ndarray or None
        CNN only: slice probabilities (particles × slices).
    percent_flawed_vs_m : dict or None
        CNN only: % flawed for "at least m slices flawed", m = 1 .. slices.
    """

    score: np.ndarray
    flawed: np.ndarray
    threshold: float
    slice_prob: np.ndarray | None = None
    percent_flawed_vs_m: dict[int, float] | None = None


def score_particles(scan: PreparedScan, model: Any, *, k: int | None = None,
                    axes: int | str | list[int] | None = None, slice_size: int | None = None,
                    threshold: float | None = None,
                    min_slices: int | None = None) -> ParticleScores:
    """Score and call every candidate particle with a loaded cracks model.

    Parameters
    ----------
    scan : PreparedScan
        From :func:`~electrode_ct.cracks.scan.prepare_scan`.
    model : FeaturesModel or CrackSliceCNN
        A loaded cracks model.
    k, axes, slice_size, threshold, min_slices
        As :func:`classify_scan`.

    Raises
    ------
    InputError
        ``min_slices`` with a features model.
    ModelError
        A slice size other than the CNN model's.
    """
    if model.method == "cnn":
        return _score_slices(scan, model, k=k, axes=axes, slice_size=slice_size,
                             threshold=threshold, min_slices=min_slices)
    if min_slices is not None:
        raise InputError("min_slices: only the cnn method classifies slices")
    score = model.score(scan.descriptors)
    thr = model.default_threshold(score) if threshold is None else float(threshold)
    return ParticleScores(score, score >= thr, thr)


def _score_slices(scan: PreparedScan, model: Any, *, k: int | None,
                  axes: int | str | list[int] | None, slice_size: int | None,
                  threshold: float | None, min_slices: int | None) -> ParticleScores:
    """:func:`score_particles` for a CNN model: slices, their probabilities, the calls."""
    from electrode_ct.cracks.cnn_model import flawed_by_slices, m_sweep

    size = model.size if slice_size is None else int(slice_size)
    if size != model.size:
        raise ModelError(f"cracks-cnn model: trained for {model.size}x{model.size} slices, "
                         f"--slice-size {size} was asked")
    slices = cnn_slices(scan, scan.ids, image=model.config.image, k=k or model.k,
                        axes=model.axes if axes is None else axes, size=size)
    slice_prob = model.slice_probabilities(slices)
    score = model.scores(slice_prob)
    thr = model.default_threshold(score) if threshold is None else float(threshold)
    flawed = score >= thr if min_slices is None else flawed_by_slices(slice_prob, min_slices)
    return ParticleScores(score, flawed, thr, slice_prob, m_sweep(slice_prob))


def particle_table(scan: PreparedScan, scores: ParticleScores,
                   crack_table: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate particle: score, call, size, position and crack measurements.

    ``crack_table`` is the per-particle table of
    :func:`~electrode_ct.cracks.threephase.three_phase`; its :data:`CRACK_COLUMNS` are 0
    for the particles it did not split.
    """
    ids = scan.ids
    base = scan.candidates.set_index("label").loc[ids]
    table = pd.DataFrame({
        "label": ids.astype(np.uint32),
        "flaw_score": scores.score,
        "flawed": scores.flawed.astype(bool),
        "volume_um3": base["volume_um3"].to_numpy(),
        "equivalent_diameter_um": base["equivalent_diameter_um"].to_numpy(),
        "centroid_z": base["centroid_z"].to_numpy(),
        "centroid_y": base["centroid_y"].to_numpy(),
        "centroid_x": base["centroid_x"].to_numpy(),
        "crack_fraction_pv": np.clip(scan.descriptors["pv_deficit"].to_numpy(), 0, 1),
    })
    table = table.merge(crack_table, on="label", how="left")
    for c in CRACK_COLUMNS:
        table[c] = table[c].fillna(0)
    table["crack_voxels"] = table["crack_voxels"].astype(np.int64)
    return table


def scan_summary(scan: PreparedScan, scores: ParticleScores, *, method: str,
                 min_slices: int | None, in_mask_threshold: float) -> dict[str, Any]:
    """Counts, % flawed (called and expected, the called one with its binomial std and
    Wilson 95 % interval), the threshold and the in-mask grey threshold."""
    from electrode_ct.uncertainty import percent_interval

    score, flawed = scores.score, scores.flawed
    cand = scan.candidates
    return {
        "n_particles": int(len(scan.ids)),
        "n_flawed": int(flawed.sum()),
        "percent_flawed": evaluate.percent_flawed(flawed),
        **percent_interval(int(flawed.sum()), int(len(flawed)), key="percent_flawed"),
        "percent_flawed_expected": float(100.0 * np.mean(score)) if len(score) else float("nan"),
        "n_labels": int(len(cand)),
        "n_truncated": int(cand["truncated"].sum()),
        "n_outliers": int(cand["outlier"].sum()),
        "method": method,
        "threshold": scores.threshold,
        "min_slices": min_slices,
        "in_mask_threshold": in_mask_threshold,
    }


def depth_summary(flawed: np.ndarray, table: pd.DataFrame, *, extent: int, depth_axis: int = 0,
                  depth_bins: int = 5, collector_end: bool = False) -> dict[str, Any]:
    """% flawed per depth bin along ``depth_axis`` (voxels, ``extent`` long; from the last
    slice when ``collector_end``), from the particle centroids of ``table``."""
    pos = table[f"centroid_{'zyx'[depth_axis]}"].to_numpy()
    depth = evaluate.depth_profile(flawed, pos, extent=(0, extent), bins=depth_bins,
                                   from_end=collector_end)
    return {
        "depth_axis": "zyx"[depth_axis],
        "percent_flawed_by_depth": depth["percent_flawed"].tolist(),
        "depth_bins_voxels": depth["depth_start"].tolist() + [float(depth["depth_stop"].iloc[-1])],
    }


def truth_summary(reference: np.ndarray, scores: ParticleScores) -> dict[str, Any]:
    """AUC, ROC and precision–recall curves, average precision, confusion, accuracy, true
    % flawed and the Youden threshold against 0/1 ``reference`` (one per scored
    particle)."""
    ev = evaluate.summary(reference, scores.score, threshold=scores.threshold)
    return {**evaluate.curves(reference, scores.score, scores.flawed),
            "accuracy": float((reference == scores.flawed).mean()),
            "percent_flawed_truth": ev["percent_flawed_truth"],
            "youden_threshold": evaluate.select_threshold(reference, scores.score)}


def classify_scan(scan: PreparedScan, model: Any, *, k: int | None = None,
                  axes: int | str | list[int] | None = None, slice_size: int | None = None,
                  threshold: float | None = None, min_slices: int | None = None,
                  truth: pd.DataFrame | None = None, depth_axis: int = 0, depth_bins: int = 5,
                  collector_end: bool = False, split: str = "flawed",
                  splitter: Any = None, subvolume_um: float | None = None) -> CracksResult:
    """Classify the candidate particles of a prepared scan and split them into 3 phases.

    Parameters
    ----------
    scan : PreparedScan
        From :func:`~electrode_ct.cracks.scan.prepare_scan`.
    model : FeaturesModel or CrackSliceCNN
        A loaded cracks model (:func:`~electrode_ct.cracks.models.resolve_model`).
    k : int, optional
        CNN slices per axis (default: the model's).
    axes : optional
        CNN slicing axes (default: the model's).
    slice_size : int, optional
        CNN slice side; must equal the model's.
    threshold : float, optional
        Score threshold (default: the model's rule: for features models trained by this
        version, the count-matching threshold of
        :func:`~electrode_ct.cracks.evaluate.expected_count_threshold`; 0.4 for the CNN).
    min_slices : int, optional
        CNN only: flawed when at least this many slices are (instead of the threshold).
    truth : pandas.DataFrame, optional
        Reference table (``label`` + ``flawed``/``cracked``): adds AUC and confusion.
    depth_axis, depth_bins, collector_end : int, int, bool
        % flawed per depth bin along this axis; depth from the last slice when
        ``collector_end``.
    split : {"flawed", "all"}
        Which particles the 3-phase segmentation splits.
    splitter : callable, optional
        Runs the 3-phase split with the arguments of
        :func:`~electrode_ct.cracks.threephase.three_phase` (default: that function; the
        block engine passes :class:`~electrode_ct.cracks.blockwise.BlockSplitter`).
    subvolume_um : float, optional
        Edge (µm) of the sub-volumes of the % flawed spread
        (:func:`~electrode_ct.cracks.spread.percent_flawed_subvolumes`; default half the
        shortest extent).

    Returns
    -------
    CracksResult
    """
    from electrode_ct.cracks.spread import percent_flawed_subvolumes, sweep_intervals
    from electrode_ct.cracks.threephase import three_phase

    if split not in SPLITS:
        raise InputError(f"split: expected 'flawed' or 'all', got {split!r}")
    scores = score_particles(scan, model, k=k, axes=axes, slice_size=slice_size,
                             threshold=threshold, min_slices=min_slices)
    ids, flawed = scan.ids, scores.flawed
    intact = ids[~flawed]
    phases, crack_tab, grey_thr = (splitter or three_phase)(scan.grey, scan.healed,
                                              ids[flawed] if split == "flawed" else ids,
                                              labels=scan.labels, spacing=scan.spacing,
                                              reference=intact if intact.size else ids,
                                              fine=scan.fine)
    table = particle_table(scan, scores, crack_tab)
    summary = scan_summary(scan, scores, method=model.method, min_slices=min_slices,
                           in_mask_threshold=grey_thr)
    summary.update(depth_summary(flawed, table, extent=scan.grey.shape[depth_axis],
                                 depth_axis=depth_axis, depth_bins=depth_bins,
                                 collector_end=collector_end))
    summary["crack_volume_um3"] = float(table["crack_volume_um3"].sum())
    summary["crack_volume_pv_um3"] = float(np.nansum(table["crack_volume_pv_um3"]))
    summary["percent_flawed_subvolumes"] = percent_flawed_subvolumes(
        flawed, table[["centroid_z", "centroid_y", "centroid_x"]].to_numpy(), scan.grey.shape,
        scan.spacing, subvolume_um)
    if scores.percent_flawed_vs_m is not None:
        summary["percent_flawed_vs_m"] = scores.percent_flawed_vs_m
        summary["percent_flawed_vs_m_ci95"] = sweep_intervals(scores.percent_flawed_vs_m,
                                                              len(ids))
    if truth is not None:
        ref = evaluate.reference_flawed(truth, ids)
        table["reference_flawed"] = ref.astype(bool)
        summary.update(truth_summary(ref, scores))
    return CracksResult(table=table, phases=phases, summary=summary,
                        slice_prob=scores.slice_prob)


def classify(grey: Any, labels: Any, *, spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
             model: Any = None, method: str | None = None, **options: Any) -> CracksResult:
    """Classify the candidate particles of a scan and split them into solid / flaw / exterior.

    Parameters
    ----------
    grey, labels : numpy.ndarray or Volume
        Grey volume and particle labels (z, y, x).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    model : model object, path or None
        A loaded cracks model, a model file, or None for the shipped features model.
    method : {"features", "cnn"}, optional
        Expected method (a model of the other method is a ModelError).
    **options
        Keywords of :func:`classify_scan` (``threshold``, ``truth``, ``split``, ...).

    Returns
    -------
    CracksResult
    """
    mdl = resolve_model(model, method=method)
    return classify_scan(prepare_scan(grey, labels, spacing=spacing), mdl, **options)
