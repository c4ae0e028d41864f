"""A small VGG-style CNN on particle slices (model kind ``cracks-cnn``; needs torch).

Each particle is seen through ``k`` slices (:func:`~electrode_ct.cracks.sampling.sample_slices`);
the network gives each slice a flaw probability, the particle's score is the mean slice
probability, and the particle is flawed when the score is at least 0.4 (the published
rule) or, alternatively, when at least ``m`` of its ``k`` slices are (:func:`m_sweep`
shows the % flawed against ``m`` to choose it).

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
from electrode_ct.segment.models import read_member, register_kind, write_archive

KIND = "cracks-cnn"
PUBLISHED_THRESHOLD = 0.4


@dataclass
class CNNConfig:
    """Architecture and training settings.

    Attributes
    ----------
    channels : tuple of int
        Channels of the VGG blocks (conv 3×3, batch norm, ReLU, conv, ReLU, max-pool 2).
    size : int
        Slice side in pixels the network is trained for.
    epochs, patience : int
        Maximum epochs; early-stopping patience (epochs without validation improvement).
    batch : int
        Slices per batch.
    lr : float
        Adam learning rate.
    val_fraction : float
        Fraction of particles held out for early stopping.
    seed : int
        Seed of the split, the initial weights, the batches and the augmentation.
    threads : int
        Torch CPU threads.
    """

    channels: tuple[int, ...] = (8, 16, 32, 32)
    size: int = 128
    epochs: int = 30
    patience: int = 5
    batch: int = 64
    lr: float = 2e-3
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 2


def _net(channels: tuple[int, ...]) -> Any:
    from torch import nn

    layers: list[Any] = []
    c_in = 1
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(c_in, c_in), nn.ReLU(inplace=True), nn.Dropout(0.2),
                         nn.Linear(c_in, 1))


class CNNModel:
    """A trained slice classifier.

    Attributes
    ----------
    net : torch.nn.Module
        The network (eval mode).
    config : CNNConfig
        Settings it was built and trained with.
    k, axes : int, list of int
        Slices per axis and axes used in training (defaults for classification).
    threshold : float
        Score threshold (0.4 published).
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

        if slices.ndim != 4 or slices.shape[-2:] != (self.size, self.size):
            raise ModelError(f"cracks-cnn model: trained for {self.size}x{self.size} slices, "
                             f"got slices of shape {tuple(slices.shape[-2:])}")
        set_threads(self.config.threads)
        flat = slices.reshape(-1, 1, self.size, self.size)
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
                "class_names": ["intact", "flawed"], "torch_version": torch.__version__}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (atomically)."""
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, buf)
        return write_archive(path, self.header(), {"state_dict.pt": buf.getvalue()})


def particle_scores(slice_prob: np.ndarray) -> np.ndarray:
    """Per-particle score: the mean slice probability (rows = particles)."""
    return np.asarray(slice_prob, np.float64).mean(axis=1)


def flawed_by_slices(slice_prob: np.ndarray, m: int, *, slice_threshold: float = 0.5) -> np.ndarray:
    """Flawed when at least ``m`` slices have a probability >= ``slice_threshold``."""
    return (np.asarray(slice_prob) >= slice_threshold).sum(axis=1) >= int(m)


def m_sweep(slice_prob: np.ndarray, *, slice_threshold: float = 0.5) -> dict[int, float]:
    """% flawed for every rule "at least m of the slices flawed", m = 1 .. n_slices."""
    hits = (np.asarray(slice_prob) >= slice_threshold).sum(axis=1)
    n = max(len(hits), 1)
    return {m: float(100.0 * (hits >= m).sum() / n) for m in range(1, slice_prob.shape[1] + 1)}


def _augment(x: Any, gen: Any) -> Any:
    import torch

    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, dims=[3])
    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, dims=[2])
    k = int(torch.randint(0, 4, (1,), generator=gen).item())
    x = torch.rot90(x, k, dims=[2, 3])
    n = x.shape[0]
    gain = 1 + 0.1 * torch.randn(n, 1, 1, 1, generator=gen)
    offset = 0.05 * torch.randn(n, 1, 1, 1, generator=gen)
    noise = 0.05 * torch.randn(x.shape, generator=gen)
    inside = x > -0.999
    return torch.where(inside, x * gain + offset + noise, x)


def train_cnn(slices: np.ndarray, flawed: np.ndarray, *, config: CNNConfig | None = None,
              k: int | None = None, axes: list[int] | None = None,
              threshold: float = PUBLISHED_THRESHOLD) -> CNNModel:
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
        Particle score threshold stored with the model.

    Raises
    ------
    InputError
        Size mismatch, wrong label count, fewer than 3 particles of either class.
    """
    import torch

    from electrode_ct.cracks.evaluate import roc_auc
    from electrode_ct.segment.cnn._torch import require_torch, set_threads

    require_torch()
    cfg = config or CNNConfig(size=int(slices.shape[-1]))
    if slices.ndim != 4 or slices.shape[-2:] != (cfg.size, cfg.size):
        raise InputError(f"slices: expected (n, k, {cfg.size}, {cfg.size}), got {slices.shape}")
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
    n_sl = slices.shape[1]
    xt = torch.from_numpy(np.ascontiguousarray(slices[tr].reshape(-1, 1, cfg.size, cfg.size)))
    yt = torch.from_numpy(np.repeat(y[tr], n_sl))
    xv = np.ascontiguousarray(slices[val])
    net = _net(tuple(cfg.channels))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    pos = float(yt.mean())
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor((1 - pos) / max(pos, 1e-6)))
    model = CNNModel(net, config=cfg, k=k or n_sl, axes=axes, threshold=threshold)
    best = (np.inf, None, 0)
    history = []
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(xt.shape[0], generator=gen)
        for i in range(0, len(perm), cfg.batch):
            b = perm[i:i + cfg.batch]
            if len(b) < 2:
                continue
            opt.zero_grad()
            loss = loss_fn(net(_augment(xt[b], gen))[:, 0], yt[b])
            loss.backward()
            opt.step()
        pv = model.slice_probabilities(xv)
        ps = np.clip(particle_scores(pv), 1e-6, 1 - 1e-6)
        yv = y[val]
        vloss = float(-np.mean(yv * np.log(ps) + (1 - yv) * np.log(1 - ps)))
        history.append(vloss)
        if vloss < best[0] - 1e-4:
            best = (vloss, {k_: v.clone() for k_, v in net.state_dict().items()}, epoch)
        elif epoch - best[2] >= cfg.patience:
            break
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    auc = roc_auc(y[val], particle_scores(model.slice_probabilities(xv)))
    model.training = {"epochs_run": len(history), "best_epoch": best[2],
                      "best_val_loss": best[0], "val_auc": auc, "n_particles": len(y),
                      "n_flawed": int(y.sum()), "val_history": history}
    return model


def _loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> CNNModel:
    from electrode_ct.segment.cnn._torch import require_torch

    torch = require_torch()
    try:
        cfg_d = dict(header["config"])
        cfg_d["channels"] = tuple(cfg_d["channels"])
        cfg = CNNConfig(**cfg_d)
        net = _net(cfg.channels)
        state = torch.load(read_member(archive, "state_dict.pt"), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: damaged cracks-cnn model ({type(exc).__name__})") from exc
    net.eval()
    return CNNModel(net, config=cfg, k=header.get("k", 10), axes=header.get("axes"),
                    threshold=header.get("threshold", PUBLISHED_THRESHOLD),
                    training=header.get("training"))


register_kind(KIND, _loader)
