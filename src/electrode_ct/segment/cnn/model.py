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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.compute.heap import kept_heap
from electrode_ct.errors import ConfigError, InputError, ModelError
from electrode_ct.segment.cnn._torch import (
    default_threads,
    require_torch,
    resolve_device,
    set_threads,
)
from electrode_ct.segment.cnn.nets import build_net, fold_batch_norm
from electrode_ct.segment.cnn.normalise import normalise
from electrode_ct.segment.cnn.predict import as_members, predict_volume
from electrode_ct.segment.models import (
    Prediction,
    check_options,
    entropy,
    load_model,
    load_weights,
    register_kind,
    write_archive,
)
from electrode_ct.volume import Volume

torch = require_torch()

KIND = "cnn"

PREDICTION_OPTIONS: tuple[str, ...] = ("mode", "axis", "tile", "overlap", "batch_size",
                                       "device", "transforms", "threads")
"""The CNN's own :meth:`CNNModel.predict` options (see :class:`models.SegmentationModel`)."""


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
        "transforms": 1}`` (``transforms``: test-time dihedral transforms averaged). Other
        keys (``adapt_bn``, ``priors``, ``train_prior`` of older models) are kept in the
        file but not used.
    """

    kind = KIND
    prediction_options = PREDICTION_OPTIONS

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
        self.prediction = {"mode": "auto", "axis": 0, "transforms": 1, **(prediction or {})}

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
                      threads: int | None = None, progress: Any = None) -> np.ndarray:
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
        dev = resolve_device(device)
        for member in self.nets:
            member.to(dev).eval()
        # batch-norm folded into the convolutions; channels-last: ~1.4x faster
        # convolutions on CPU (oneDNN)
        nets = [fold_batch_norm(m).to(dev, memory_format=torch.channels_last)
                for m in self.nets]
        with kept_heap():  # activations reuse the heap: no page faults (compute.heap)
            return predict_volume(nets, self.normalise(arr), mode=mode, axis=axis,
                                  tile=tile, overlap=overlap, batch_size=batch_size,
                                  device=dev, transforms=transforms, progress=progress)

    def predict(self, volume: Volume | np.ndarray, *, probabilities: bool = False,
                uncertainty: bool = False, two_d: bool = False,
                progress: Callable[[Any], Any] | None = None,
                **options: Any) -> Prediction:
        """Segment a volume.

        Parameters
        ----------
        volume : Volume or numpy.ndarray
            Grey values (z, y, x) or a 2-D image.
        probabilities : bool
            Return the per-class probabilities (K, z, y, x).
        uncertainty : bool
            Return the normalised entropy of the probabilities (0 certain – 1 uniform).
        two_d : bool
            Segment every z slice (axis 0) on its own: ``mode="slice"``, ``axis=0``
            (instead of the model's default, tri-planar for volumes).
        progress : callable, optional
            Wraps the plane iterator.
        **options
            The CNN's own options (:data:`PREDICTION_OPTIONS`), passed to
            :meth:`predict_proba`: mode, axis, tile, overlap, batch_size, device,
            transforms, threads. Any other keyword raises :class:`ConfigError`.

        Returns
        -------
        Prediction
            Labels (class values, uint8, (z, y, x)) and optionally probabilities/entropy.

        Raises
        ------
        ConfigError
            An unknown option, or ``two_d`` with another mode or slicing axis.
        """
        check_options(self, options)
        if two_d:
            if options.get("mode", "slice") != "slice" or options.get("axis", 0) != 0:
                raise ConfigError(f"two_d (--2d) predicts z slices (mode 'slice', axis 0); "
                                  f"got mode {options.get('mode')!r}, axis "
                                  f"{options.get('axis')!r}")
            options = {**options, "mode": "slice", "axis": 0}
        data = volume.numpy() if isinstance(volume, Volume) else np.asarray(volume)
        prob = self.predict_proba(data, progress=progress, **options)
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
                "training_data": self.training.get("training_data"),
                "training_spacing_um": self.training.get("spacing_um"),
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
    if header.get("package"):  # a bioimage.io package exported by electrode-ct
        from electrode_ct.segment.cnn.bioimageio import load_bioimageio_model

        return load_bioimageio_model(header, archive, path)
    try:
        arch = header["arch"]
        values = header["class_values"]
        nets = []
        for i in range(int(header.get("members", 1))):
            net = net_from_arch(arch, len(values))
            net.load_state_dict(load_weights(archive, _member_file(i), path))
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
