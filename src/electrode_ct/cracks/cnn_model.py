"""A small VGG-style CNN on particle slices (model kind ``cracks-cnn``; needs torch).

Each particle is seen through ``k`` slices (:func:`~electrode_ct.cracks.sampling.sample_slices`);
the network gives each slice a flaw probability, the particle's score is the mean slice
probability, and the particle is flawed when the score is at least a threshold (0.4, the
published rule, by default) or, alternatively, when at least ``m`` of its ``k`` slices
are (:func:`m_sweep` shows the % flawed against ``m`` to choose it).

Training takes labelled particles (user labels or phantom truth): every slice inherits its
particle's label, particles are split into training and validation sets (never slices of
one particle in both), slices are augmented (flips, 90° rotations, grey gain/offset,
noise), and training stops when the validation loss has not improved for ``patience``
epochs (the best weights are kept).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ModelError
from electrode_ct.segment.models import array_digest, load_weights, register_kind, write_archive

KIND = "cracks-cnn"
PUBLISHED_THRESHOLD = 0.4
"""Particle score threshold of the published rule (the default of every CNN model)."""
IMAGES = ("both", "fine", "grey")
"""Images the slices can be cut from (:attr:`CNNConfig.image`)."""


@dataclass
class CNNConfig:
    """Architecture and training settings.

    Attributes
    ----------
    channels : tuple of int
        Channels of the VGG blocks (2 × (conv 3×3, batch norm, ReLU), max-pool 2).
    size : int
        Slice side in pixels the network is trained for.
    epochs, patience : int
        Maximum epochs; early-stopping patience (epochs without validation improvement).
    batch : int
        Slices per batch.
    lr : float
        Peak AdamW learning rate (one-cycle schedule over ``epochs``).
    val_fraction : float
        Fraction of particles held out for early stopping.
    seed : int
        Seed of the split, the initial weights, the batches and the augmentation.
    threads : int
        Torch CPU threads.
    image : {"auto", "both", "fine", "grey"}
        What the slices are cut from: ``grey``, the contrast-normalised grey volume (models
        saved before the option existed); ``fine``, the fine-scale image
        (:func:`~electrode_ct.cracks.highpass.fine_scale`: shading and grey offsets removed,
        in units of its robust spread); ``both``, the two as two input channels; ``auto``
        (default), ``both`` when the fine scale carries the flaws of the training scan,
        else ``grey`` (:func:`~electrode_ct.cracks.train.choose_image`, resolved before
        training; a trained model never holds ``auto``).
    """

    channels: tuple[int, ...] = (16, 32, 64)
    size: int = 32
    epochs: int = 12
    patience: int = 6
    batch: int = 128
    lr: float = 3e-3
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 2
    image: str = "auto"

    @property
    def n_images(self) -> int:
        """Image channels of a slice (2 for ``both``)."""
        return 2 if self.image == "both" else 1


def _net(channels: tuple[int, ...], n_images: int = 1) -> Any:
    """VGG-style blocks (conv-BN-ReLU twice, max-pool 2; no pool after the last block),
    global max pooling (a crack is a local feature), dropout, one logit. Input channels:
    each image's slice minus its in-mask mean, then the particle mask."""
    from torch import nn

    def conv(i: int, o: int) -> list[Any]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o),
                nn.ReLU(inplace=True)]

    layers: list[Any] = []
    c_in = n_images + 1
    for j, c in enumerate(channels):
        layers += conv(c_in, c) + conv(c, c)
        if j < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(c_in, 1))


def network_input(slices: np.ndarray) -> np.ndarray:
    """Per-slice normalisation inside the particle mask: ``(n, images + 1, size, size)``.

    Each image channel is the slice minus the mean of its in-mask pixels (0 outside the
    mask), so smooth shading and particle-to-particle grey offsets do not reach the
    network; the last channel is the mask (pixels of the first image above the
    ``OUTSIDE`` value of ``sample_slices``).

    Parameters
    ----------
    slices : numpy.ndarray
        ``(n_particles, n_slices, size, size)`` (one image) or ``(n_particles, n_slices,
        images, size, size)`` from :func:`~electrode_ct.cracks.scan.cnn_slices`
        (``OUTSIDE`` = -1 outside the particle); float32 result.
    """
    from electrode_ct.cracks.sampling import OUTSIDE

    size = slices.shape[-1]
    n_img = slices.shape[2] if slices.ndim == 5 else 1
    x = np.asarray(slices, np.float32).reshape(-1, n_img, size, size)
    inside = x[:, :1] > OUTSIDE + 1e-3
    n = np.maximum(inside.sum(axis=(2, 3), keepdims=True), 1)
    mean = np.where(inside, x, 0.0).sum(axis=(2, 3), keepdims=True) / n
    val = np.where(inside, x - mean, 0.0)
    return np.concatenate([val, inside], axis=1).astype(np.float32)


class CrackSliceCNN:
    """A trained crack slice classifier (model kind ``cracks-cnn``).

    Attributes
    ----------
    net : torch.nn.Module
        The network (eval mode).
    config : CNNConfig
        Settings it was built and trained with.
    k, axes : int, list of int
        Slices per axis and axes used in training (defaults for classification).
    threshold : float
        Particle score threshold used when none is given (0.4 published).
    training : dict
        Training record (epochs run, best validation loss/AUC, counts).
    """

    kind = KIND
    method = "cnn"

    def __init__(self, net: Any, *, config: CNNConfig, k: int = 10, axes: list[int] | None = None,
                 threshold: float = PUBLISHED_THRESHOLD,
                 training: dict[str, Any] | None = None) -> None:
        self.net = net
        self.config = config
        self.k = int(k)
        self.axes = list(axes or [0])
        self.threshold = float(threshold)
        self.training = dict(training or {})

    def scores(self, slice_prob: np.ndarray) -> np.ndarray:
        """Per-particle score from the slice probabilities (rows = particles)."""
        return particle_scores(slice_prob)

    def default_threshold(self, score: np.ndarray | None = None) -> float:
        """The threshold used when none is given (``score``, the scan's scores, is unused:
        the CNN's rule is a fixed number; same signature as the features model's)."""
        return self.threshold

    @property
    def size(self) -> int:
        """Slice side (pixels) the network expects."""
        return int(self.config.size)

    def slice_probabilities(self, slices: np.ndarray, *, batch: int = 256) -> np.ndarray:
        """Flaw probability of every slice.

        Parameters
        ----------
        slices : numpy.ndarray
            ``(n_particles, n_slices, size, size)`` from ``sample_slices``.

        Raises
        ------
        ModelError
            When the slice size differs from the model's.
        """
        import torch

        from electrode_ct.segment.cnn._torch import set_threads

        if slices.shape[-2:] != (self.size, self.size):
            raise ModelError(f"cracks-cnn model: trained for {self.size}x{self.size} slices, "
                             f"got slices of shape {tuple(slices.shape[-2:])}")
        n_img = slices.shape[2] if slices.ndim == 5 else 1
        if slices.ndim not in (4, 5) or n_img != self.config.n_images:
            raise ModelError(f"cracks-cnn model: expects {self.config.n_images} image(s) per "
                             f"slice ({self.config.image}), got slices of shape {slices.shape}")
        set_threads(self.config.threads)
        flat = network_input(slices)
        out = np.empty(flat.shape[0], np.float32)
        self.net.eval()
        with torch.inference_mode():
            for i in range(0, flat.shape[0], batch):
                x = torch.from_numpy(np.ascontiguousarray(flat[i:i + batch]))
                out[i:i + batch] = torch.sigmoid(self.net(x)[:, 0]).numpy()
        return out.reshape(slices.shape[:2])

    def header(self) -> dict[str, Any]:
        """The ``model.json`` content."""
        import torch

        return {"kind": KIND, "method": "cnn", "config": asdict(self.config), "k": self.k,
                "axes": self.axes, "slice_size": self.size, "threshold": self.threshold,
                "training": self.training, "class_values": [0, 1],
                "training_data": self.training.get("training_data"),
                "training_spacing_um": self.training.get("spacing_um"),
                "class_names": ["intact", "flawed"], "torch_version": torch.__version__}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (atomically)."""
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, buf)
        return write_archive(path, self.header(), {"state_dict.pt": buf.getvalue()})


def particle_scores(slice_prob: np.ndarray) -> np.ndarray:
    """Per-particle score: the mean slice probability (rows = particles), float64."""
    return np.asarray(slice_prob, np.float64).mean(axis=1)


def check_min_slices(m: Any, n_slices: int, *, name: str = "--min-slices") -> int:
    """``m`` of the rule "at least m of the slices flawed": a whole number in
    1 .. ``n_slices``, else :class:`InputError` naming ``name``."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= n_slices:
        raise InputError(f"{name}: expected a number of flawed slices between 1 and the "
                         f"{n_slices} slices per particle, got {m!r}")
    return int(m)


def flawed_by_slices(slice_prob: np.ndarray, m: int, *, slice_threshold: float = 0.5) -> np.ndarray:
    """Flawed when at least ``m`` slices have a probability >= ``slice_threshold``
    (``m`` checked by :func:`check_min_slices`)."""
    m = check_min_slices(m, np.shape(slice_prob)[1])
    return (np.asarray(slice_prob) >= slice_threshold).sum(axis=1) >= m


def m_sweep(slice_prob: np.ndarray, *, slice_threshold: float = 0.5) -> dict[int, float]:
    """% flawed for every rule "at least m of the slices flawed", m = 1 .. n_slices."""
    hits = (np.asarray(slice_prob) >= slice_threshold).sum(axis=1)
    n = max(len(hits), 1)
    return {m: float(100.0 * (hits >= m).sum() / n) for m in range(1, slice_prob.shape[1] + 1)}


HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
"""Per-epoch training record of a CNN model (``training.history``): the mean weighted
BCE of the augmented training slices and their accuracy (logit > 0), the validation
particles' log loss of the particle score and their accuracy at the model's threshold."""


def _epoch_record(epoch: int, tot: np.ndarray, score: np.ndarray, y: np.ndarray,
                  threshold: float) -> dict[str, float]:
    """One epoch's :data:`HISTORY_KEYS` from the summed training loss / correct slices /
    slices ``tot`` and the validation particles' scores and 0/1 labels."""
    ps = np.clip(score, 1e-6, 1 - 1e-6)
    n = max(tot[2], 1.0)
    return {"epoch": float(epoch + 1), "train_loss": float(tot[0] / n),
            "train_accuracy": float(tot[1] / n),
            "val_loss": float(-np.mean(y * np.log(ps) + (1 - y) * np.log(1 - ps))),
            "val_accuracy": float(np.mean((score >= threshold) == (y > 0.5)))}


def _augment(x: Any, gen: Any) -> Any:
    import torch

    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, dims=[3])
    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, dims=[2])
    k = int(torch.randint(0, 4, (1,), generator=gen).item())
    x = torch.rot90(x, k, dims=[2, 3])
    n, c = x.shape[:2]
    gain = 1 + 0.1 * torch.randn(n, c - 1, 1, 1, generator=gen)
    noise = 0.05 * torch.randn((n, c - 1, *x.shape[2:]), generator=gen)
    val = (x[:, :-1] * gain + noise) * x[:, -1:]
    return torch.cat([val, x[:, -1:]], dim=1)


def train_cnn(slices: np.ndarray, flawed: np.ndarray, *, config: CNNConfig | None = None,
              k: int | None = None, axes: list[int] | None = None,
              threshold: float = PUBLISHED_THRESHOLD) -> CrackSliceCNN:
    """Train the slice classifier from labelled particles.

    Parameters
    ----------
    slices : numpy.ndarray
        ``(n_particles, n_slices, size, size)`` from ``sample_slices``.
    flawed : numpy.ndarray
        0/1 per particle.
    config : CNNConfig, optional
        Settings (``config.size`` must equal the slice size).
    k, axes : optional
        Sampling used (recorded in the model as the default for classification).
    threshold : float
        Particle score threshold stored with the model (used when none is given).

    Raises
    ------
    InputError
        Size mismatch, wrong label count, fewer than 3 particles of either class.
    """
    import torch

    from electrode_ct.cracks.evaluate import curves, roc_auc
    from electrode_ct.segment.cnn._torch import require_torch, set_threads

    require_torch()
    cfg = config or CNNConfig(size=int(slices.shape[-1]))
    if cfg.image not in IMAGES:
        raise InputError(f"image: expected one of {', '.join(IMAGES)} (resolve 'auto' with "
                         f"train.choose_image first), got {cfg.image!r}")
    want = (cfg.n_images,) if cfg.n_images > 1 else ()
    if slices.ndim != 4 + len(want) or slices.shape[2:] != (*want, cfg.size, cfg.size):
        dims = ", ".join(map(str, ("n", "k", *want, cfg.size, cfg.size)))
        raise InputError(f"slices: expected ({dims}) for image {cfg.image!r}, "
                         f"got {slices.shape}")
    y = np.asarray(flawed).astype(np.float32).ravel()
    if len(y) != slices.shape[0]:
        raise InputError(f"flawed: {len(y)} labels for {slices.shape[0]} particles")
    if min(int(y.sum()), int((y == 0).sum())) < 3:
        raise InputError("training labels: need at least 3 flawed and 3 intact particles")
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = rng.permutation(len(y))
    n_val = max(2, int(round(cfg.val_fraction * len(y))))
    val, tr = order[:n_val], order[n_val:]
    model = CrackSliceCNN(_net(tuple(cfg.channels), cfg.n_images), config=cfg,
                          k=k or slices.shape[1], axes=axes, threshold=threshold)
    best, history = _fit(model, slices, y, tr, val, gen)
    raw_val = particle_scores(model.slice_probabilities(np.ascontiguousarray(slices[val])))
    model.training = {"epochs_run": len(history["epoch"]), "best_epoch": best[2],
                      "best_val_loss": best[0], "val_auc": roc_auc(y[val], raw_val),
                      "n_particles": len(y), "n_flawed": int(y.sum()),
                      "n_val_flawed": int(y[val].sum()), "n_val": int(len(val)),
                      "val_history": history["val_loss"], "history": history,
                      "validation": curves(y[val], raw_val, raw_val >= threshold),
                      "training_data": {"slices_sha256": array_digest(slices, y)}}
    return model


def _fit(model: CrackSliceCNN, slices: np.ndarray, y: np.ndarray, tr: np.ndarray, val: np.ndarray,
         gen: Any) -> tuple[tuple[float, Any, int], dict[str, list[float]]]:
    """Fit ``model.net`` on the particles ``tr``, early-stopped on the particles ``val``
    (best weights kept); returns ``(best val loss, weights, epoch)`` and the history
    (:func:`_epoch_record` per epoch)."""
    import torch

    cfg = model.config
    net = model.net
    n_sl = slices.shape[1]
    xt = torch.from_numpy(network_input(slices[tr]))
    yt = torch.from_numpy(np.repeat(y[tr], n_sl))
    xv = np.ascontiguousarray(slices[val])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-3)
    steps = max(1, cfg.epochs * -(-xt.shape[0] // cfg.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    pos = float(yt.mean())
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor((1 - pos) / max(pos, 1e-6)))
    best: tuple[float, Any, int] = (np.inf, None, 0)
    history: dict[str, list[float]] = {k_: [] for k_ in HISTORY_KEYS}
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(xt.shape[0], generator=gen)
        tot = np.zeros(3)  # summed loss, correct slices, slices
        for i in range(0, len(perm), cfg.batch):
            b = perm[i:i + cfg.batch]
            if len(b) < 2:
                continue
            opt.zero_grad()
            logit = net(_augment(xt[b], gen))[:, 0]
            loss = loss_fn(logit, yt[b])
            loss.backward()
            opt.step()
            sched.step()
            hit = float(((logit > 0) == (yt[b] > 0.5)).sum())
            tot += (float(loss.detach()) * len(b), hit, len(b))
        ps = particle_scores(model.slice_probabilities(xv))
        rec = _epoch_record(epoch, tot, ps, y[val], model.threshold)
        for k_, v in rec.items():
            history[k_].append(v)
        vloss = rec["val_loss"]
        if vloss < best[0] - 1e-4:
            best = (vloss, {k_: v.clone() for k_, v in net.state_dict().items()}, epoch)
        elif epoch - best[2] >= cfg.patience:
            break
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    return best, history


REMOVED_OPTIONS = ("calibrate", "count_folds")
"""Training options of earlier versions, removed (docs/cracks.md). A model saved with
calibrated scores (``calibration`` in its header) or the ``count`` threshold rule does not
load; otherwise these keys are ignored and the model loads unchanged."""


def _loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> CrackSliceCNN:
    if header.get("calibration") is not None or header.get("threshold_rule", "fixed") != "fixed":
        raise ModelError(f"{path}: a cracks-cnn model with calibrated scores or the count "
                         "threshold rule, options removed in this version (they did not "
                         "carry over between scans); retrain it")
    try:
        cfg_d = {k: v for k, v in dict(header["config"]).items() if k not in REMOVED_OPTIONS}
        cfg_d["channels"] = tuple(cfg_d["channels"])
        cfg_d.setdefault("image", "grey")  # saved before the option existed
        cfg = CNNConfig(**cfg_d)
        net = _net(cfg.channels, cfg.n_images)
        net.load_state_dict(load_weights(archive, "state_dict.pt", path))
        net.eval()
        return CrackSliceCNN(net, config=cfg, k=header.get("k", 10), axes=header.get("axes"),
                             threshold=header.get("threshold", PUBLISHED_THRESHOLD),
                             training=header.get("training"))
    except (KeyError, TypeError, RuntimeError, ValueError, InputError) as exc:
        raise ModelError(f"{path}: damaged cracks-cnn model ({type(exc).__name__})") from exc


register_kind(KIND, _loader)
