"""The ``particles-cnn`` model kind: a learned particle instance model (needs torch).

A 2-D network that predicts, per pixel of a grey slice, background / particle interior /
boundary between touching particles (:data:`INSTANCE_CLASSES`), trained from instance
label volumes (one id per particle, 0 = background): rendered phantoms with exact truth
(:mod:`electrode_ct.synth`) or any user-corrected label volume. A crack inside a particle
belongs to its body in the labels (the phantoms' ``particles`` volume), so the network
learns to see a dark line inside a convex body as interior, and only the neck between
two bodies as boundary.

Training draws labelled planes along z, y and x (:func:`~.train.train`); prediction is
tri-planar: the probabilities of the XY, XZ and YZ planes are averaged
(:func:`plane_probabilities`). Markers, the 3-D watershed and the clean-up are in
:mod:`electrode_ct.particles.learned`. The file is a model archive like the ``cnn`` kind
(``model.json`` + ``state_dict.pt`` read with ``weights_only``; no pickle) with its own
kind, so a segmentation model is refused where an instance model is expected.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ModelError, ShapeError
from electrode_ct.segment.cnn.boundary import boundary_targets
from electrode_ct.segment.cnn.config import TrainConfig
from electrode_ct.segment.cnn.model import CNNModel, _loader
from electrode_ct.segment.models import load_model, register_kind

INSTANCE_KIND = "particles-cnn"

INSTANCE_CLASSES: dict[str, int] = {"background": 1, "interior": 2, "boundary": 3}
"""Class values of the instance model (the boundary targets' 1, 2, 3)."""

INSTANCE_CONFIG = TrainConfig(arch="unet", channels=8, depth=2, patch=64, batch_size=8,
                              patches_per_epoch=128, epochs=12, members=1,
                              normalisation="image", ema=0.99)
"""Training defaults: an 8-channel, 2-level U-Net (small enough to predict ~1 Mvoxel/s
tri-planar on 2 CPU cores), one member, 64-pixel patches."""


class InstanceModel(CNNModel):
    """A trained particle instance network (see the module docstring).

    Same constructor and prediction as :class:`~.model.CNNModel`; its ``predict`` gives the
    per-voxel classes of :data:`INSTANCE_CLASSES`.
    """

    kind = INSTANCE_KIND

    def header(self) -> dict[str, Any]:
        """The ``model.json`` content (kind ``particles-cnn``)."""
        return {**super().header(), "kind": INSTANCE_KIND}

    def class_index(self, name: str) -> int:
        """Output channel of class ``name`` (background, interior or boundary)."""
        return self.class_names.index(name)


def _instance_loader(header: dict[str, Any], archive: zipfile.ZipFile,
                     path: Path) -> InstanceModel:
    base = _loader(header, archive, path)
    if base.class_names != list(INSTANCE_CLASSES):
        raise ModelError(f"{path}: particles-cnn model with classes {base.class_names}, "
                         f"expected {list(INSTANCE_CLASSES)}")
    return InstanceModel(base.nets, arch=base.arch, class_values=base.class_values,
                         class_names=base.class_names, normalisation=base.normalisation,
                         training=base.training, prediction=base.prediction)


def load_instance_model(path: str | os.PathLike[str]) -> InstanceModel:
    """Load a ``particles-cnn`` model; any other kind is a :class:`ModelError`."""
    return load_model(path, kind=INSTANCE_KIND)


def instance_targets(labels: Any, *, name: str = "labels") -> np.ndarray:
    """Background / interior / boundary training labels (1, 2, 3) of an instance volume.

    The boundary is 1 voxel on each side of a contact between two particles
    (:func:`~.boundary.boundary_targets` with ``touching_only``).

    Raises
    ------
    InputError
        Non-integer labels, labels with fewer than 2 particle ids (a binary phase mask
        is not an instance label volume) or without background.
    """
    lab = np.asarray(getattr(labels, "data", labels))
    if lab.dtype == bool or lab.dtype.kind not in "iu":
        raise InputError(f"{name}: expected integer particle ids (0 = background), got dtype "
                         f"{lab.dtype}")
    ids = np.unique(lab)
    ids = ids[ids != 0]
    if ids.size < 2:
        raise InputError(f"{name}: holds {ids.size} particle id(s) {ids.tolist()}: a binary "
                         "mask, not instance labels; give one id per particle (e.g. the "
                         "phantom's particles volume or 'ect particles' output)")
    if lab.min() != 0:
        raise InputError(f"{name}: no background (0) voxels; expected particle ids with "
                         "0 = background (not a phase or class map)")
    return boundary_targets(lab, touching_only=True)


def _pairs(greys: Any, labels: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Grey / target lists from one pair or lists of pairs (shapes checked)."""
    gs = greys if isinstance(greys, (list, tuple)) else [greys]
    ls = labels if isinstance(labels, (list, tuple)) else [labels]
    if len(gs) != len(ls):
        raise InputError(f"labels: {len(ls)} label volumes for {len(gs)} grey volumes")
    grey_out, target_out = [], []
    for i, (g, lab) in enumerate(zip(gs, ls, strict=True)):
        g = np.asarray(getattr(g, "data", g))
        lab = np.asarray(getattr(lab, "data", lab))
        if g.shape != lab.shape:
            raise ShapeError(f"labels[{i}]: shape {lab.shape} differs from the grey volume's "
                             f"{g.shape}")
        grey_out.append(g)
        target_out.append(instance_targets(lab, name=f"labels[{i}]"))
    return grey_out, target_out


def train_instances(greys: Any, labels: Any, *, config: TrainConfig | None = None,
                    val: tuple[Any, Any] | None = None, callback: Any = None,
                    init: Any = None) -> Any:
    """Train a particle instance model from grey volumes and their instance labels.

    Parameters
    ----------
    greys : numpy.ndarray or list of numpy.ndarray
        Grey volumes (z, y, x) (or 2-D images).
    labels : numpy.ndarray or list of numpy.ndarray
        Instance labels of the same shapes (one id per particle, 0 = background; a
        cracked particle's crack voxels may carry its id).
    config : TrainConfig, optional
        Hyper-parameters (default :data:`INSTANCE_CONFIG`); the patch is cut to the
        smallest image edge (a multiple of 4).
    val : (grey, labels), optional
        A validation pair (instance labels), scored every epoch (mean IoU of the classes).
    callback : callable, optional
        Called with each epoch's history record.
    init : InstanceModel, optional
        Continue training from this model's weights (its architecture is used).

    Returns
    -------
    TrainResult
        With ``model`` an :class:`InstanceModel`.

    Raises
    ------
    InputError, ShapeError
        Binary-mask labels, non-integer labels, grey and labels of different shapes.
    """
    from electrode_ct.segment.cnn.train import train

    g, t = _pairs(greys, labels)
    v = None
    if val is not None:
        vg, vt = _pairs(val[0], val[1])
        v = (vg[0], vt[0])
    if not any((tt == INSTANCE_CLASSES["boundary"]).any() for tt in t):
        raise InputError("labels: no contact between particles (no boundary voxels) in the "
                         "training labels; an instance model needs touching particles")
    cfg = config or INSTANCE_CONFIG
    edge = min(min(a.shape[-2:]) if a.ndim == 2 else min(a.shape) for a in g)
    cfg = replace(cfg, patch=max(8, min(cfg.patch, edge - edge % 4)))
    res = train(g, t, config=cfg, val=v, init=init,
                class_names=list(INSTANCE_CLASSES), callback=callback)
    m = res.model
    model = InstanceModel(m.nets, arch=m.arch, class_values=m.class_values,
                          class_names=m.class_names, normalisation=m.normalisation,
                          training=m.training, prediction={**m.prediction, "mode": "triplanar"})
    return replace(res, model=model)


def grey_volume(grey: Any) -> np.ndarray:
    """``grey`` as an array, checked to be a (z, y, x) volume with >= 2 voxels per axis."""
    arr = np.asarray(grey)
    if arr.ndim != 3 or min(arr.shape) < 2:
        raise ShapeError(f"grey: expected a (z, y, x) volume with >= 2 voxels per axis, got "
                         f"shape {arr.shape}")
    return arr


def plane_probabilities(model: InstanceModel, grey: np.ndarray, *, device: str = "cpu",
                        threads: int | None = None) -> list[np.ndarray]:
    """Class probabilities (3, z, y, x) of slice-wise prediction along z, y and x.

    Their mean is the tri-planar prediction; each alone is one plane direction's view.
    """
    arr = grey_volume(grey)
    return [model.predict_proba(arr, mode="slice", axis=ax, device=device, threads=threads)
            for ax in (0, 1, 2)]


register_kind(INSTANCE_KIND, _instance_loader)
