"""Labeller uncertainty: an ensemble trained on perturbed ground truth, and TTA.

Each member is trained on the labels after :func:`~.perturb.perturb_labels` with its own
seed; the spread (standard deviation over members) of the per-class volume fraction,
surface area, interface voxel percentage and IoU against the unperturbed labels states how
much the labeller's placement of interfaces moves the results (SegmentPy, Su et al. 2022).
Test-time augmentation (the 8 rotations/flips averaged) is the cheap alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.metrics.compare import compare
from electrode_ct.segment.cnn.perturb import interface_mask, perturb_labels
from electrode_ct.segment.models import Prediction
from electrode_ct.volume import Spacing

MEMBER_COLUMNS = ("member", "class_value", "class_name", "volume_fraction", "surface_area_um2",
                  "interface_voxel_percent", "iou")


@dataclass
class EnsembleResult:
    """What :func:`train_ensemble` returns.

    Attributes
    ----------
    models : list
        The trained :class:`~.model.CNNModel` members.
    labels : numpy.ndarray
        Majority vote of the members' predictions (class values, uint8, (z, y, x)).
    disagreement : numpy.ndarray
        Fraction of members that disagree with the majority vote, float32 (z, y, x).
    members : pandas.DataFrame
        One row per member and class (:data:`MEMBER_COLUMNS`).
    summary : pandas.DataFrame
        Per class: ``<measure>_mean`` and ``<measure>_std`` over the members.
    """

    models: list[Any]
    labels: np.ndarray
    disagreement: np.ndarray
    members: Any
    summary: Any


def surface_area(labels: np.ndarray, value: int, *, spacing: Spacing = (1.0, 1.0, 1.0)
                 ) -> float:
    """Area of the faces between voxels of ``value`` and other voxels, in µm².

    Voxel-face counting (:func:`electrode_ct.metrics.surface.phase_surface_area` with
    ``method="face"``: an over-estimate of a smooth surface, but consistent between members).
    Faces on the array border are not counted; for a single slice (z = 1) the in-plane
    edges count with area edge × z-spacing.
    """
    from electrode_ct.metrics.surface import phase_surface_area

    return phase_surface_area(np.asarray(labels) == value, method="face", spacing=spacing)


def member_measures(pred: np.ndarray, values: list[int], names: list[str], *,
                    reference: np.ndarray | None = None, spacing: Spacing = (1.0, 1.0, 1.0),
                    mode: str = "auto") -> list[dict[str, Any]]:
    """Per-class volume fraction, surface area (µm²), interface voxel % and IoU of one map.

    ``reference`` (0 = unlabelled, ignored) gives the IoU; NaN without it.
    """
    n = pred.size
    iface = interface_mask(pred, mode=mode)
    ious: dict[str, float] = {}
    if reference is not None:
        cm = {str(v): int(v) for v in values}
        ious = compare(pred, reference, ignore=0, class_map=cm)["iou"]
    rows = []
    for v, name in zip(values, names, strict=True):
        mask = pred == v
        rows.append({"class_value": int(v), "class_name": name,
                     "volume_fraction": float(np.count_nonzero(mask)) / n,
                     "surface_area_um2": surface_area(pred, v, spacing=spacing),
                     "interface_voxel_percent": 100.0 * np.count_nonzero(iface & mask) / n,
                     "iou": float(ious.get(str(v), np.nan))})
    return rows


def summarise(members: Any) -> Any:
    """Mean and standard deviation (ddof=1) over members of every measure, per class."""
    measures = list(MEMBER_COLUMNS[3:])
    g = members.groupby(["class_value", "class_name"], sort=True)[measures]
    mean = g.mean().add_suffix("_mean")
    std = g.std(ddof=1).add_suffix("_std")
    out = mean.join(std).reset_index()
    return out[["class_value", "class_name"] + [f"{m}_{s}" for m in measures
                                                for s in ("mean", "std")]]


def _vote(preds: list[np.ndarray], values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.stack([sum((p == v).astype(np.uint16) for p in preds) for v in values])
    win = counts.argmax(axis=0)
    labels = np.asarray(values, np.uint8)[win]
    agree = np.take_along_axis(counts, win[None], axis=0)[0]
    return labels, (1.0 - agree / len(preds)).astype(np.float32)


def train_ensemble(image: np.ndarray, labels: np.ndarray, *, n: int = 5, config: Any = None,
                   fraction: float = 0.1, iterations: int = 5, mode: str = "auto",
                   val: tuple[Any, Any] | None = None, slices_2d: bool = False,
                   class_names: list[str] | None = None, spacing: Spacing = (1.0, 1.0, 1.0),
                   seed: int = 0, predict_options: dict[str, Any] | None = None,
                   callback: Callable[[int, Any], None] | None = None) -> EnsembleResult:
    """Train ``n`` models on perturbed labels and measure the spread of their results.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image (y, x) or volume (z, y, x).
    labels : numpy.ndarray
        Training labels, same shape (0 = unlabelled, 1..K).
    n : int
        Ensemble members (default 5; SegmentPy used 15).
    config : TrainConfig, optional
        Training hyper-parameters (default: one network per member; member ``i`` uses seed
        ``config.seed + i``).
    fraction, iterations : float, int
        Perturbation: fraction of interface voxels moved per round, rounds (10 %, 5).
    mode : {"auto", "2d", "3d"}
        Perturbation neighbourhood (``2d`` for isolated slices; forced when ``slices_2d``).
    val : (image, labels), optional
        Validation data (unperturbed; see ``TrainConfig.keep``).
    slices_2d : bool
        Treat a volume as independent 2-D slices.
    class_names : list of str, optional
        Names of classes 1..K.
    spacing : tuple of float
        Voxel size (z, y, x) in µm for the surface areas.
    seed : int
        Seed of the perturbations (member ``i``: ``seed + i``).
    predict_options : dict, optional
        Passed to ``model.predict`` (tile, mode, device...).
    callback : callable, optional
        ``callback(i, train_result)`` after each member.

    Returns
    -------
    EnsembleResult
    """
    import pandas as pd

    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.train import train

    if n < 2:
        raise InputError(f"--n {n}: an ensemble needs at least 2 members")
    cfg = config or TrainConfig(members=1)  # each member is one network
    lab = np.asarray(labels)
    pmode = "2d" if slices_2d else mode
    models, preds, rows = [], [], []
    for i in range(n):
        pert = perturb_labels(lab, fraction=fraction, iterations=iterations, mode=pmode,
                              seed=seed + i)
        res = train(image, pert, config=replace(cfg, seed=cfg.seed + i), val=val,
                    class_names=class_names, slices_2d=slices_2d)
        if callback is not None:
            callback(i, res)
        pred = res.model.predict(image, **(predict_options or {})).labels
        ref = lab if lab.ndim == 3 else lab[None]
        for row in member_measures(pred, res.model.class_values, res.model.class_names,
                                   reference=ref, spacing=spacing, mode=pmode):
            rows.append({"member": i, **row})
        models.append(res.model)
        preds.append(pred)
    members = pd.DataFrame(rows, columns=list(MEMBER_COLUMNS))
    vote, disagreement = _vote(preds, models[0].class_values)
    return EnsembleResult(models=models, labels=vote, disagreement=disagreement,
                          members=members, summary=summarise(members))


def tta_uncertainty(model: Any, volume: Any, *, transforms: int = 8,
                    **options: Any) -> Prediction:
    """Test-time-augmentation prediction: probabilities averaged over dihedral transforms.

    Parameters
    ----------
    model : CNNModel
        A trained model.
    volume : Volume or numpy.ndarray
        Grey values.
    transforms : int
        Number of the 8 rotations/flips averaged (2–8).
    **options
        Passed to ``model.predict``.

    Returns
    -------
    Prediction
        Labels, averaged probabilities and their normalised entropy (the uncertainty).
    """
    if not 2 <= transforms <= 8:
        raise InputError(f"TTA transforms: expected 2..8, got {transforms}")
    return model.predict(volume, probabilities=True, uncertainty=True, transforms=transforms,
                         **options)



