"""Classify every candidate particle of a scan, train models, split flawed particles.

The functions here compose the modules of :mod:`electrode_ct.cracks` (candidates,
descriptors or slices, a model, the 3-phase split, evaluation); the CLI only calls them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks.candidates import (
    candidate_table,
    check_inputs,
    heal_labels,
    require_candidates,
)
from electrode_ct.errors import InputError, ModelError
from electrode_ct.volume import as_spacing

METHODS = ("features", "cnn")
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "data" / \
    "cracks_features_default.ectmodel"
"""The shipped features classifier (trained on phantoms by
``scripts/train_default_cracks_model.py``)."""


@dataclass
class Prepared:
    """Candidates, healed labels, descriptors and fine-scale image of a scan."""

    grey: np.ndarray
    labels: np.ndarray
    healed: np.ndarray
    spacing: tuple[float, float, float]
    candidates: pd.DataFrame
    ids: np.ndarray
    descriptors: pd.DataFrame
    reference: Any
    fine: np.ndarray
    """Fine-scale image of ``grey`` (:func:`~electrode_ct.cracks.highpass.fine_scale`),
    shared by the descriptors, the CNN slices and the integral crack volume."""


@dataclass
class CracksResult:
    """Output of :func:`classify`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate particle (see ``docs/cracks.md``).
    phases : numpy.ndarray
        uint8 3-phase volume (0 exterior, 1 solid, 2 flaw).
    summary : dict
        Counts, % flawed, per-depth % flawed, threshold, AUC etc.
    slice_prob : numpy.ndarray or None
        CNN slice probabilities (particles × slices).
    """

    table: pd.DataFrame
    phases: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)
    slice_prob: np.ndarray | None = None


def prepare(grey: Any, labels: Any, *, spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
            heal_width_um: float | None = None, grey_name: str = "grey",
            labels_name: str = "labels") -> Prepared:
    """Check inputs, pick candidates, heal the masks and compute the descriptors.

    ``heal_width_um`` defaults to two voxels (the widest crack bridged by the closing).
    """
    from electrode_ct.cracks.descriptors import particle_descriptors
    from electrode_ct.cracks.highpass import fine_scale

    g, lab = check_inputs(grey, labels, grey_name=grey_name, labels_name=labels_name)
    sp = as_spacing(spacing, name="spacing")
    cand = candidate_table(lab, spacing=sp)
    ids = require_candidates(cand, name=labels_name)
    width = 2 * max(sp) if heal_width_um is None else float(heal_width_um)
    healed = heal_labels(lab, width_um=width, spacing=sp)
    fine = fine_scale(g, healed)
    desc, ref = particle_descriptors(g, healed, ids, spacing=sp, fine=fine)
    return Prepared(g, lab, healed, sp, cand, ids, desc, ref, fine)


FINE_SLICE_SCALE = 4.0
"""Fine-scale units (robust standard deviations) mapped to one contrast unit in CNN slices
(``sample_slices`` clips to [-2, 1]: -8 .. +4 standard deviations)."""


def cnn_slices(prep: Prepared, ids: np.ndarray, *, image: str = "both", k: int = 10,
               axes: int | str | list[int] = 0, size: int = 32) -> np.ndarray:
    """Slices of the particles ``ids`` for the CNN, cut from the image(s) ``image``.

    Parameters
    ----------
    prep : Prepared
        From :func:`prepare`.
    ids : numpy.ndarray
        Particle ids (rows of the result).
    image : {"both", "fine", "grey"}
        ``grey``: the contrast-normalised grey volume; ``fine``: the fine-scale image
        (:func:`~electrode_ct.cracks.highpass.fine_scale`, divided by
        :data:`FINE_SLICE_SCALE`); ``both``: the two, stacked on axis 2.
    k, axes, size : int, axes, int
        As :func:`~electrode_ct.cracks.sampling.sample_slices`.

    Returns
    -------
    numpy.ndarray
        float32 ``(len(ids), n_slices, size, size)``, or ``(len(ids), n_slices, 2, size,
        size)`` for ``both``.
    """
    from electrode_ct.cracks.cnn_model import IMAGES
    from electrode_ct.cracks.sampling import sample_slices

    if image not in IMAGES:
        raise InputError(f"image: expected one of {', '.join(IMAGES)}, got {image!r}")
    out = []
    if image in ("grey", "both"):
        ref = prep.reference
        out.append(sample_slices(prep.grey, prep.healed, ids, k=k, axes=axes, size=size,
                                 solid=ref.to_input(ref.solid),
                                 background=ref.to_input(ref.background)))
    if image in ("fine", "both"):
        out.append(sample_slices(prep.fine, prep.healed, ids, k=k,
                                 axes=axes, size=size, solid=0.0,
                                 background=-FINE_SLICE_SCALE))
    return out[0] if len(out) == 1 else np.stack(out, axis=2)


FINE_MIN_AUC = 0.65
"""``auto`` CNN input: the fine-scale image is added when the ``fine_dark_fraction``
descriptor alone separates the training scan's flawed from intact particles with at
least this AUC (nano-CT phantoms 0.80-0.89; micro-CT 0.45-0.57, where the fine scale is
noise and only makes the network overfit)."""


def choose_image(image: str, descriptors: pd.DataFrame, flawed: np.ndarray) -> str:
    """Resolve the CNN input ``auto`` on a labelled training scan (other values returned).

    Parameters
    ----------
    image : {"auto", "both", "fine", "grey"}
        Requested input.
    descriptors : pandas.DataFrame
        Descriptor table of the training particles (with ``fine_dark_fraction``).
    flawed : numpy.ndarray
        0/1 per row.

    Returns
    -------
    str
        ``both`` when the AUC of ``fine_dark_fraction`` is at least :data:`FINE_MIN_AUC`,
        else ``grey`` (for ``auto``).
    """
    if image != "auto":
        return image
    from electrode_ct.cracks.evaluate import roc_auc

    auc = roc_auc(np.asarray(flawed), descriptors["fine_dark_fraction"].to_numpy())
    return "both" if np.isfinite(auc) and auc >= FINE_MIN_AUC else "grey"


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


def load_cracks_model(path: str | Path | None, *, method: str | None = None) -> Any:
    """Load a cracks model (default: the shipped features model); check its method.

    Raises
    ------
    ModelError
        A model of another kind or method than ``method``.
    """
    from electrode_ct.cracks import cnn_model, features_model  # noqa: F401 (kinds)
    from electrode_ct.segment.models import load_model, read_header

    p = Path(path) if path is not None else DEFAULT_MODEL
    head = read_header(p)
    kind = head.get("kind")
    if kind not in (features_model.KIND, cnn_model.KIND):
        raise ModelError(f"{p}: is a {kind!r} model, expected a cracks model "
                         "(made by 'ect cracks train')")
    found = "cnn" if kind == cnn_model.KIND else "features"
    if method is not None and method != found:
        raise ModelError(f"{p}: is a {found!r} cracks model, but --method {method} was asked")
    return load_model(p, kind=kind)


def classify(grey: Any, labels: Any, *, spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
             model: Any = None, method: str | None = None, k: int | None = None,
             axes: int | str | list[int] | None = None, slice_size: int | None = None,
             threshold: float | None = None, min_slices: int | None = None,
             truth: pd.DataFrame | None = None, depth_axis: int = 0, depth_bins: int = 5,
             collector_end: bool = False, split: str = "flawed",
             prepared: Prepared | None = None) -> CracksResult:
    """Classify the candidate particles and split them into solid / flaw / exterior.

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

    Returns
    -------
    CracksResult
    """
    from electrode_ct.cracks import evaluate
    from electrode_ct.cracks.threephase import three_phase

    if method is not None and method not in METHODS:
        raise InputError(f"method: expected features or cnn, got {method!r}")
    if split not in ("flawed", "all"):
        raise InputError(f"split: expected 'flawed' or 'all', got {split!r}")
    if model is None or isinstance(model, (str, Path)):
        if model is None and method == "cnn":
            raise ModelError("--method cnn needs --model (train one with 'ect cracks train "
                             "--method cnn'); no CNN model is shipped")
        model = load_cracks_model(model, method=method)
    elif method is not None and model.method != method:
        raise ModelError(f"model is a {model.method!r} cracks model, but method {method!r} "
                         "was asked")
    prep = prepared or prepare(grey, labels, spacing=spacing)
    ids = prep.ids
    slice_prob = None
    sweep = None
    if model.method == "cnn":
        from electrode_ct.cracks.cnn_model import flawed_by_slices, m_sweep

        size = model.size if slice_size is None else int(slice_size)
        if size != model.size:
            raise ModelError(f"cracks-cnn model: trained for {model.size}x{model.size} slices, "
                             f"--slice-size {size} was asked")
        slices = cnn_slices(prep, ids, image=model.config.image, k=k or model.k,
                            axes=model.axes if axes is None else axes, size=size)
        slice_prob = model.slice_probabilities(slices)
        score = model.scores(slice_prob)
        thr = model.default_threshold(score) if threshold is None else float(threshold)
        flawed = flawed_by_slices(slice_prob, min_slices) if min_slices else score >= thr
        sweep = m_sweep(slice_prob)
    else:
        if min_slices:
            raise InputError("min_slices: only the cnn method classifies slices")
        score = model.score(prep.descriptors)
        thr = model.default_threshold(score) if threshold is None else float(threshold)
        flawed = score >= thr
    split_ids = ids[flawed] if split == "flawed" else ids
    intact = ids[~flawed]
    phases, crack_tab, grey_thr = three_phase(prep.grey, prep.healed, split_ids,
                                              labels=prep.labels, spacing=prep.spacing,
                                              reference=intact if intact.size else ids,
                                              fine=prep.fine)
    base = prep.candidates.set_index("label").loc[ids]
    table = pd.DataFrame({
        "label": ids.astype(np.uint32),
        "flaw_score": score,
        "flawed": flawed.astype(bool),
        "volume_um3": base["volume_um3"].to_numpy(),
        "equivalent_diameter_um": base["equivalent_diameter_um"].to_numpy(),
        "centroid_z": base["centroid_z"].to_numpy(),
        "centroid_y": base["centroid_y"].to_numpy(),
        "centroid_x": base["centroid_x"].to_numpy(),
        "crack_fraction_pv": np.clip(prep.descriptors["pv_deficit"].to_numpy(), 0, 1),
    })
    table = table.merge(crack_tab, on="label", how="left")
    for c in ("crack_voxels", "crack_volume_um3", "crack_volume_fraction", "crack_surface_um2",
              "crack_volume_pv_um3", "crack_volume_fraction_pv"):
        table[c] = table[c].fillna(0)
    table["crack_voxels"] = table["crack_voxels"].astype(np.int64)
    pos = table[f"centroid_{'zyx'[depth_axis]}"].to_numpy()
    depth = evaluate.depth_profile(flawed, pos, extent=(0, prep.grey.shape[depth_axis]),
                                   bins=depth_bins, from_end=collector_end)
    summary: dict[str, Any] = {
        "n_particles": int(len(ids)),
        "n_flawed": int(flawed.sum()),
        "percent_flawed": evaluate.percent_flawed(flawed),
        "percent_flawed_expected": float(100.0 * np.mean(score)) if len(score) else float("nan"),
        "n_labels": int(len(prep.candidates)),
        "n_truncated": int(prep.candidates["truncated"].sum()),
        "n_outliers": int(prep.candidates["outlier"].sum()),
        "method": model.method,
        "threshold": thr,
        "min_slices": min_slices,
        "in_mask_threshold": grey_thr,
        "depth_axis": "zyx"[depth_axis],
        "percent_flawed_by_depth": depth["percent_flawed"].tolist(),
        "depth_bins_voxels": depth["depth_start"].tolist() + [float(depth["depth_stop"].iloc[-1])],
        "crack_volume_um3": float(table["crack_volume_um3"].sum()),
        "crack_volume_pv_um3": float(np.nansum(table["crack_volume_pv_um3"])),
    }
    if sweep is not None:
        summary["percent_flawed_vs_m"] = sweep
    if truth is not None:
        ref = reference_flawed(truth, ids)
        table["reference_flawed"] = ref.astype(bool)
        ev = evaluate.summary(ref, score, threshold=thr)
        ev["confusion"] = evaluate.confusion(ref, flawed)
        summary.update({"auc": ev["auc"], "confusion": ev["confusion"],
                        "accuracy": float((ref == flawed).mean()),
                        "percent_flawed_truth": ev["percent_flawed_truth"],
                        "youden_threshold": evaluate.select_threshold(ref, score)})
    return CracksResult(table=table, phases=phases, summary=summary, slice_prob=slice_prob)


def train(grey: Any, labels: Any, truth: pd.DataFrame, *,
          spacing: float | Iterable[float] = (1.0, 1.0, 1.0), method: str = "features",
          k: int = 10, axes: int | str | list[int] = 0, slice_size: int = 128,
          threshold: float | None = None, estimator: str = "logistic", seed: int = 0,
          cnn_config: Any = None, prepared: Prepared | None = None) -> Any:
    """Train a cracks model on one labelled scan.

    Parameters
    ----------
    grey, labels : numpy.ndarray or Volume
        Grey volume and particle labels.
    truth : pandas.DataFrame
        ``label`` + ``flawed`` (0/1) or ``cracked``; every candidate particle needs a row.
    method : {"features", "cnn"}
        Which classifier.
    k, axes, slice_size : int, axes, int
        CNN slice sampling.
    threshold : float, optional
        Fixed score threshold stored in the model (CNN default 0.4); features models
        without one default to the count-matching ``expected`` rule.
    estimator : {"logistic", "boosting"}
        Features classifier.
    seed : int
        Random seed.
    cnn_config : CNNConfig, optional
        CNN settings (``size`` is set to ``slice_size``).

    Returns
    -------
    FeaturesModel or CNNModel
    """
    if method not in METHODS:
        raise InputError(f"method: expected features or cnn, got {method!r}")
    prep = prepared or prepare(grey, labels, spacing=spacing)
    y = reference_flawed(truth, prep.ids)
    if method == "features":
        from electrode_ct.cracks.features_model import train_features

        return train_features(prep.descriptors, y, estimator=estimator,
                              threshold=0.5 if threshold is None else threshold,
                              threshold_rule="expected" if threshold is None else "fixed",
                              seed=seed)
    from dataclasses import replace

    from electrode_ct.cracks.cnn_model import PUBLISHED_THRESHOLD, CNNConfig, train_cnn
    from electrode_ct.cracks.sampling import parse_axes

    cfg = replace(cnn_config or CNNConfig(seed=seed), size=int(slice_size))
    cfg = replace(cfg, image=choose_image(cfg.image, prep.descriptors, y))
    ax = list(parse_axes(axes))
    slices = cnn_slices(prep, prep.ids, image=cfg.image, k=k, axes=ax, size=cfg.size)
    return train_cnn(slices, y, config=cfg, k=k, axes=ax,
                     threshold=PUBLISHED_THRESHOLD if threshold is None else threshold)
