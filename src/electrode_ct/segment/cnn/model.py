"""The ``cnn`` model kind: a trained network plus everything needed to apply it.

Saved through the archive registry of :mod:`electrode_ct.segment.models`: ``model.json``
holds the architecture and its sizes, training hyper-parameters, normalisation, class
values and names; ``state_dict.pt`` holds the weights (loaded with ``weights_only``); a
model of several members (networks of the same architecture trained with different seeds,
their probabilities averaged) stores the others as ``state_dict_1.pt``, ``state_dict_2.pt``...
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ModelError
from electrode_ct.segment.cnn._torch import (
    default_threads,
    require_torch,
    resolve_device,
    set_threads,
)
from electrode_ct.segment.cnn.nets import build_net
from electrode_ct.segment.cnn.normalise import normalise
from electrode_ct.segment.cnn.predict import as_members, predict_volume
from electrode_ct.segment.models import (
    Prediction,
    entropy,
    load_model,
    read_member,
    register_kind,
    write_archive,
)
from electrode_ct.segment.priors import adapt
from electrode_ct.volume import Volume

torch = require_torch()

KIND = "cnn"

PRIORS = ("none", "em")
"""Prediction-time class-prior options: ``none``, or ``em`` — each input's class priors
re-estimated by EM and its probabilities adjusted to them (:mod:`electrode_ct.segment.priors`)."""


class CNNModel:
    """A trained 2-D segmentation network.

    Parameters
    ----------
    net : torch.nn.Module or list of torch.nn.Module
        The network (built by :func:`~electrode_ct.segment.cnn.nets.build_net`), or several
        networks of the same architecture (members) whose probabilities are averaged.
    arch : dict
        ``{"name": ..., "channels": ..., "depth": ..., "kernel": ...}``.
    class_values : list of int
        Label values 1..K written for the network's outputs 0..K-1.
    class_names : list of str
        Names of the classes.
    normalisation : dict
        ``{"mode": "image"|"slice"|"fixed", "train_center": ..., "train_scale": ...}``.
    training : dict, optional
        Hyper-parameters and training summary (stored, not used to predict).
    prediction : dict, optional
        Prediction defaults: ``{"mode": "auto"|"slice"|"triplanar", "axis": 0,
        "transforms": 1, "adapt_bn": False, "priors": "none", "train_prior": None}``
        (``transforms``: test-time dihedral transforms averaged; ``adapt_bn``: batch-norm
        statistics re-estimated on each input; ``priors``: see :data:`PRIORS`;
        ``train_prior``: the K class priors the networks' probabilities correspond to — the
        mean predicted probability over the training planes, set by training; uniform when
        absent).
    """

    kind = KIND

    def __init__(self, net: Any, *, arch: dict[str, Any], class_values: list[int],
                 class_names: list[str], normalisation: dict[str, Any],
                 training: dict[str, Any] | None = None,
                 prediction: dict[str, Any] | None = None) -> None:
        self.nets = as_members(net)
        self.arch = dict(arch)
        self.class_values = [int(v) for v in class_values]
        self.class_names = [str(n) for n in class_names]
        self.normalisation = dict(normalisation)
        self.training = dict(training or {})
        self.prediction = {"mode": "auto", "axis": 0, "transforms": 1, "adapt_bn": False,
                           "priors": "none", "train_prior": None, **(prediction or {})}

    @property
    def net(self) -> Any:
        """The first (or only) member network."""
        return self.nets[0]

    # -- inference --------------------------------------------------------------------
    def normalise(self, data: np.ndarray) -> np.ndarray:
        """Apply the model's input normalisation to grey values (any shape)."""
        n = self.normalisation
        stats = None
        if n.get("train_center") is not None:
            stats = (float(n["train_center"]), float(n["train_scale"]))
        return normalise(data, mode=n.get("mode", "image"), stats=stats)

    def predict_proba(self, data: np.ndarray, *, mode: str | None = None, axis: int | None = None,
                      tile: int = 512, overlap: int = 32, batch_size: int = 2,
                      device: str = "cpu", transforms: int | None = None,
                      threads: int | None = None, adapt_bn: bool | None = None,
                      priors: str | None = None, progress: Any = None) -> np.ndarray:
        """Class probabilities (K, z, y, x) of a grey volume (z, y, x) or image (y, x).

        Parameters
        ----------
        data : numpy.ndarray
            Grey values; a 2-D image is treated as one slice.
        mode : {"auto", "slice", "triplanar"}, optional
            ``auto`` (default from the model): tri-planar for volumes with >= 8 voxels on
            every axis unless the model was trained as 2-D slices, else slice-wise.
        axis : int, optional
            Slicing axis for slice-wise prediction (0 = z).
        tile, overlap, batch_size : int
            Tiling (pixels) and tiles per forward pass.
        device : {"cpu", "cuda"}
            Compute device.
        transforms : int, optional
            Test-time augmentation: dihedral transforms averaged (1–8; default from the
            model's ``prediction`` record, 1 unless set at training).
        threads : int, optional
            Torch CPU threads (default :data:`~._torch.DEFAULT_THREADS`, 2).
        adapt_bn : bool, optional
            Re-estimate batch-norm statistics on this input before predicting
            (:func:`~.predict.adapt_batchnorm`; default from the model's ``prediction``
            record).
        priors : {"none", "em"}, optional
            ``em``: re-estimate the class priors of this input (the whole image or volume)
            by EM from its probabilities and adjust them to those priors (label-shift
            correction, Saerens et al. 2002; :func:`electrode_ct.segment.priors.adapt`,
            relative to the model's ``train_prior``). Default from the model's
            ``prediction`` record.
        progress : callable, optional
            Wraps the plane iterator.
        """
        set_threads(default_threads(threads))
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"image: expected 2-D or 3-D grey values, got shape {arr.shape}")
        mode = mode or self.prediction.get("mode", "auto")
        axis = self.prediction.get("axis", 0) if axis is None else axis
        if mode == "auto":
            mode = "triplanar" if min(arr.shape) >= 8 else "slice"
        if transforms is None:
            transforms = int(self.prediction.get("transforms", 1))
        if adapt_bn is None:
            adapt_bn = bool(self.prediction.get("adapt_bn", False))
        priors = priors or self.prediction.get("priors", "none")
        if priors not in PRIORS:
            raise InputError(f"priors {priors!r}: expected one of {', '.join(PRIORS)}")
        dev = resolve_device(device)
        for member in self.nets:  # channels-last: ~1.4x faster convolutions on CPU (oneDNN)
            member.to(dev, memory_format=torch.channels_last).eval()
        prob = predict_volume(self.nets, self.normalise(arr), mode=mode, axis=axis,
                              tile=tile, overlap=overlap, batch_size=batch_size, device=dev,
                              transforms=transforms, progress=progress, adapt_bn=adapt_bn)
        return self.adjust_priors(prob) if priors == "em" else prob

    def train_prior(self) -> np.ndarray:
        """The K class priors the networks' probabilities correspond to (uniform if unset)."""
        stored = self.prediction.get("train_prior")
        k = len(self.class_values)
        return np.full(k, 1.0 / k) if stored is None else np.asarray(stored, np.float64)

    def adjust_priors(self, prob: np.ndarray) -> np.ndarray:
        """``prob`` (K, ...) adjusted to the class priors EM-estimated from ``prob`` itself."""
        return adapt(prob, self.train_prior())[0]

    def predict(self, volume: Volume | np.ndarray, *, probabilities: bool = False,
                uncertainty: bool = False, **options: Any) -> Prediction:
        """Segment a volume.

        Parameters
        ----------
        volume : Volume or numpy.ndarray
            Grey values (z, y, x) or a 2-D image.
        probabilities : bool
            Return the per-class probabilities (K, z, y, x).
        uncertainty : bool
            Return the normalised entropy of the probabilities (0 certain – 1 uniform).
        **options
            Passed to :meth:`predict_proba` (mode, axis, tile, overlap, batch_size, device,
            transforms, threads, adapt_bn, priors, progress).

        Returns
        -------
        Prediction
            Labels (class values, uint8, (z, y, x)) and optionally probabilities/entropy.
        """
        data = volume.numpy() if isinstance(volume, Volume) else np.asarray(volume)
        prob = self.predict_proba(data, **options)
        lut = np.asarray(self.class_values, dtype=np.uint8)
        labels = lut[prob.argmax(axis=0)]
        return Prediction(labels=labels, probabilities=prob if probabilities else None,
                          uncertainty=entropy(prob) if uncertainty else None)

    # -- persistence ------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The ``model.json`` content."""
        return {"kind": KIND, "arch": self.arch, "class_values": self.class_values,
                "class_names": self.class_names, "normalisation": self.normalisation,
                "training": self.training, "prediction": self.prediction,
                "members": len(self.nets),
                "torch_version": torch.__version__}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (atomically)."""
        members = {}
        for i, member in enumerate(self.nets):
            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in member.state_dict().items()}, buf)
            members[_member_file(i)] = buf.getvalue()
        return write_archive(path, self.header(), members)


def _member_file(index: int) -> str:
    """Archive member holding the weights of network ``index``."""
    return "state_dict.pt" if index == 0 else f"state_dict_{index}.pt"


def net_from_arch(arch: dict[str, Any], n_classes: int) -> Any:
    """Build the network described by an ``arch`` record."""
    return build_net(arch["name"], n_classes=n_classes, channels=arch.get("channels"),
                     depth=arch.get("depth"), kernel=arch.get("kernel"))


def _loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> CNNModel:
    try:
        arch = header["arch"]
        values = header["class_values"]
        nets = []
        for i in range(int(header.get("members", 1))):
            net = net_from_arch(arch, len(values))
            state = torch.load(read_member(archive, _member_file(i)), map_location="cpu",
                               weights_only=True)
            net.load_state_dict(state)
            nets.append(net.eval())
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: damaged cnn model ({type(exc).__name__}: {exc})") from exc
    return CNNModel(nets, arch=arch, class_values=values, class_names=header["class_names"],
                    normalisation=header.get("normalisation", {"mode": "image"}),
                    training=header.get("training"), prediction=header.get("prediction"))


def load_cnn(path: str | os.PathLike[str]) -> CNNModel:
    """Load a ``cnn`` model; a model file of another kind is a :class:`ModelError`."""
    return load_model(path, kind=KIND)


register_kind(KIND, _loader)
