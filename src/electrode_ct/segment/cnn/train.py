"""Train a segmentation model from one or a few labelled 2-D slices.

:func:`train` prepares the labelled planes (:mod:`~.data`), trains ``members`` networks one
after the other with seeds ``seed``, ``seed + 1``, ... (:func:`~.fit.fit`), chooses the
input normalisation on the validation slice (``normalisation="auto"``,
:func:`~.evaluate.choose_normalisation`), checks for a collapse onto the majority class and
returns the model with its training record. Hyper-parameters: :class:`~.config.TrainConfig`;
loss: :mod:`~.loss`; hyper-parameter search: :mod:`~.search`.

Labels: 0 = unlabelled (ignored), 1..K = classes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.io.tables import clean_json
from electrode_ct.segment.cnn._torch import (
    default_threads,
    require_torch,
    resolve_device,
    set_threads,
)
from electrode_ct.segment.cnn.config import TrainConfig
from electrode_ct.segment.cnn.data import Planes, training_planes, validation_planes
from electrode_ct.segment.cnn.evaluate import (
    CollapseWarning,
    choose_normalisation,
    collapse_check,
    evaluate,
)
from electrode_ct.segment.cnn.fit import EpochCallback, fit
from electrode_ct.segment.cnn.loss import class_weights
from electrode_ct.segment.cnn.model import CNNModel, load_cnn, net_from_arch
from electrode_ct.segment.models import array_digest

torch = require_torch()

__all__ = ["CollapseWarning", "TrainConfig", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : CNNModel
        The trained model (final averaged weights, or those of the best validation epoch
        with ``keep="best"``).
    history : list of dict
        Per epoch: ``member`` (0-based), ``epoch``, ``lr``, ``loss`` (mean loss of the
        epoch's augmented batches), the learning curves ``train_loss``, ``train_mean_iou``,
        ``val_loss``, ``val_mean_iou`` (NaN without validation;
        :func:`~.fit.learning_curves`), ``seconds``. Also stored in the model's
        ``training["history"]`` (NaN as null).
    best_epoch : int
        Epoch whose weights were kept (1-based; of the first member).
    stopped_early : bool
        True when the time limit ended training.
    wall_s, cpu_s : float
        Wall-clock and process CPU time of training in seconds.
    collapsed : bool
        True when predictions collapsed onto the dominant class (a warning was issued).
    """

    model: CNNModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    collapsed: bool = False


def _initial_model(init: CNNModel | str | None) -> CNNModel | None:
    """The model to fine-tune from (loaded from a path), or None."""
    if init is None or isinstance(init, CNNModel):
        return init
    return load_cnn(init)


def _check_base(base: CNNModel, k: int) -> None:
    """A base model (``init``) must have the training labels' number of classes."""
    if len(base.class_values) != k:
        raise InputError(f"--init: the base model has {len(base.class_values)} classes "
                         f"({', '.join(base.class_names)}), the training labels {k}; "
                         "fine-tune a base model of the same class count")


def _class_names(class_names: Sequence[str] | None, values: np.ndarray) -> list[str]:
    names = list(class_names) if class_names else [f"class{int(v)}" for v in values]
    if len(names) != values.size:
        raise InputError(f"class names: {len(names)} names for {values.size} classes "
                         f"{values.tolist()}")
    return names


def _train_members(arch: dict[str, Any], base: CNNModel | None, planes: Planes,
                   val_planes: Planes, cfg: TrainConfig, *, weight: Any, device: Any,
                   callback: EpochCallback | None, t0: float,
                   ) -> tuple[list[Any], list[dict[str, Any]]]:
    """Train ``cfg.members`` networks (seeds ``cfg.seed + i``), sharing what is left of the
    time limit equally; each starts from ``base``'s weights where their shapes match."""
    nets, runs = [], []
    for member in range(cfg.members):
        left = None
        if cfg.time_limit_s is not None:
            left = max(0.0, cfg.time_limit_s - (time.perf_counter() - t0))
            left /= cfg.members - member
        mcfg = replace(cfg, seed=cfg.seed + member, time_limit_s=left)
        torch.manual_seed(mcfg.seed)
        net = net_from_arch(arch, int(weight.shape[0]))
        if base is not None:
            state = {key: v for key, v in base.net.state_dict().items()
                     if v.shape == net.state_dict()[key].shape}
            net.load_state_dict(state, strict=False)
        runs.append(fit(net, planes, val_planes, mcfg, weight=weight, device=device,
                        callback=callback, member=member))
        nets.append(net.eval())
    return nets, runs


def _record(cfg: TrainConfig, runs: list[dict[str, Any]], *, best_val: float | None,
            init: CNNModel | str | None, wall: float, cpu: float,
            choice: dict[str, float] | None) -> dict[str, Any]:
    """The model's ``training`` record."""
    has_val = best_val is not None
    training = {"config": asdict(cfg), "best_epoch": runs[0]["best_epoch"],
                "epochs_run": sum(len(r["history"]) for r in runs),
                "best_val_mean_iou": best_val, "wall_s": wall, "cpu_s": cpu,
                "init": None if init is None else str(getattr(init, "kind", init)),
                "members": [{"seed": cfg.seed + i, "best_epoch": r["best_epoch"],
                             "epochs_run": len(r["history"]),
                             "best_val_mean_iou": r["best"] if has_val else None}
                            for i, r in enumerate(runs)]}
    if choice is not None:
        training["normalisation_choice"] = choice
    return training


def _listed(arrays: Any) -> list[np.ndarray]:
    """One array or a list of arrays as a list of numpy arrays."""
    items = arrays if isinstance(arrays, (list, tuple)) else [arrays]
    return [np.asarray(a) for a in items]


def train(images: Any, labels: Any, *, config: TrainConfig | None = None,
          val: tuple[Any, Any] | None = None, init: CNNModel | str | None = None,
          class_names: Sequence[str] | None = None, slices_2d: bool = False,
          callback: EpochCallback | None = None) -> TrainResult:
    """Train a segmentation network (or a seed ensemble of them) on labelled 2-D slices.

    Parameters
    ----------
    images : numpy.ndarray or list of numpy.ndarray
        Grey images (y, x) or volumes (z, y, x).
    labels : numpy.ndarray or list of numpy.ndarray
        Integer labels of the same shapes: 0 = unlabelled, 1..K = classes.
    config : TrainConfig, optional
        Hyper-parameters (defaults: :class:`TrainConfig`).
    val : (image, labels), optional
        Validation image and labels: reported per epoch, choose the ``auto`` normalisation
        and, with ``keep="best"``, the kept weights.
    init : CNNModel or path, optional
        Transfer learning: start from this model's weights (its architecture is used); it
        must have the same number of classes as ``labels`` (else :class:`InputError`).
    class_names : sequence of str, optional
        Names of classes 1..K (default ``class1``...).
    slices_2d : bool
        The volumes are stacks of independent 2-D slices: sample and predict z-slices only
        (default: labelled planes along every axis, tri-planar prediction).
    callback : callable, optional
        Called with each epoch's history record.

    Returns
    -------
    TrainResult

    Raises
    ------
    ShapeError, InputError, ConfigError
        Mismatched shapes, fewer than 2 classes, a patch larger than an image, bad options.
    """
    cfg = config or TrainConfig()
    cfg.check()
    t0, c0 = time.perf_counter(), time.process_time()
    set_threads(default_threads(cfg.threads))
    device = resolve_device(cfg.device)
    norm_mode = "image" if cfg.normalisation == "auto" else cfg.normalisation
    planes, values, stats = training_planes(images, labels, normalisation=norm_mode,
                                    all_axes=not slices_2d)
    k = values.size
    val_planes = [] if val is None else validation_planes(val, norm_mode, stats, values)
    names = _class_names(class_names, values)
    arch = cfg.arch_record()
    base = _initial_model(init)
    if base is not None:
        _check_base(base, k)
        arch = dict(base.arch)
    weight = torch.from_numpy(class_weights(planes, k, cfg.class_weighting)).to(device)
    nets, runs = _train_members(arch, base, planes, val_planes, cfg, weight=weight,
                                device=device, callback=callback, t0=t0)
    choice = evaluated = None
    if cfg.normalisation == "auto" and val is not None:
        norm_mode, choice, val_planes, evaluated = choose_normalisation(
            nets, val_planes, validation_planes(val, "fixed", stats, values), k, device)
    score, pred_frac, ref_frac = evaluated or evaluate(nets, (val_planes or planes)[:4], k,
                                                       device)
    message = collapse_check(pred_frac, ref_frac)
    if message:
        warnings.warn(message, CollapseWarning, stacklevel=2)
    best_val = None
    if val_planes:
        best_val = runs[0]["best"] if len(nets) == 1 else score
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = CNNModel([net.cpu() for net in nets], arch=arch, class_values=values.tolist(),
                     class_names=names,
                     normalisation={"mode": norm_mode, "train_center": stats[0],
                                    "train_scale": stats[1]},
                     training=_record(cfg, runs, best_val=best_val, init=init, wall=wall,
                                      cpu=cpu, choice=choice),
                     prediction={"mode": "slice" if slices_2d else "auto", "axis": 0,
                                 "transforms": int(cfg.transforms)})
    pairs = [*_listed(images), *_listed(labels)]
    model.training["training_data"] = {"images_labels_sha256": array_digest(*pairs)}
    history = [rec for r in runs for rec in r["history"]]
    model.training["history"] = clean_json(history)  # the learning curves (NaN -> null)
    return TrainResult(model=model, history=history,
                       best_epoch=runs[0]["best_epoch"],
                       stopped_early=any(r["stopped"] for r in runs), wall_s=wall, cpu_s=cpu,
                       collapsed=message is not None)
