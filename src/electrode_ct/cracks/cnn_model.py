"""A small VGG-style CNN on particle slices (model kind ``cracks-cnn``; needs torch).

Each particle is seen through ``k`` slices (:func:`~electrode_ct.cracks.sampling.sample_slices`);
the network gives each slice a flaw probability, the particle's score is the mean slice
probability, and the particle is flawed when the score is at least a threshold (0.4 is
the published rule and the default; a count-matching threshold chosen on held-out
training particles is stored too, see :class:`CNNModel`) or, alternatively, when at least
``m`` of its ``k`` slices are (:func:`m_sweep` shows the % flawed against ``m`` to choose
it).

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
THRESHOLD_RULES = ("count", "fixed")
"""Default threshold rules of a CNN model (:attr:`CNNModel.threshold_rule`)."""


def _check_rule(threshold_rule: str) -> None:
    """Raise a one-line :class:`InputError` unless ``threshold_rule`` is a known rule."""
    if threshold_rule not in THRESHOLD_RULES:
        raise InputError(f"threshold_rule: expected one of {', '.join(THRESHOLD_RULES)}, "
                         f"got {threshold_rule!r}")
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
        else ``grey`` (:func:`~electrode_ct.cracks.classify.choose_image`, resolved before
        training; a trained model never holds ``auto``).
    calibrate : bool
        Apply the Platt scaling fitted on the validation particles to the particle scores
        (:func:`platt`; always recorded as ``training["platt"]``). Off by default: on the
        phantoms it did not carry over to another scan (the % flawed at 0.4 moved from
        +2.8 / -7.0 pp to -8.8 / -8.5 pp on micro / nano, docs/cracks.md).
    count_folds : int
        Folds of the held-out scores behind the count threshold
        (:attr:`CNNModel.count_threshold`): the validation particles, scored by the model,
        and ``count_folds - 1`` chunks of the training particles, each scored by an extra
        network fitted (same settings) without it, so every particle gets a held-out score
        and training costs about ``count_folds`` times one fit; 1: the validation
        particles only (default, no extra cost). Neither carried over to another scan on
        the phantoms (nano -13 / -10 pp with 1 / 5 folds, micro +5.6 pp with 5), so the
        default rule stays the published 0.4 (``threshold_rule="fixed"``).
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
    calibrate: bool = False
    count_folds: int = 1

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
        images, size, size)`` from :func:`~electrode_ct.cracks.classify.cnn_slices`
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
        Fixed score threshold (0.4 published), used when ``threshold_rule`` is ``fixed``.
    threshold_rule : {"count", "fixed"}
        Default threshold when none is given: ``count`` uses ``count_threshold``, the
        score threshold whose % flawed on held-out training particles (see
        :attr:`CNNConfig.count_folds`) equals their true % flawed (count-matching, as the features
        classifier's ``expected`` rule); ``fixed`` uses ``threshold``. Models saved before
        the option load as ``fixed``.
    count_threshold : float or None
        The count-matching threshold on the validation particles' scores (same scale as
        :meth:`scores`); None for models saved before the option.
    training : dict
        Training record (epochs run, best validation loss/AUC, counts).
    calibration : (float, float) or None
        Platt scaling of the particle score, fitted on the validation particles:
        ``score = sigmoid(a * logit(mean slice probability) + b)``; None: the plain mean.
    """

    kind = KIND
    method = "cnn"

    def __init__(self, net: Any, *, config: CNNConfig, k: int = 10, axes: list[int] | None = None,
                 threshold: float = PUBLISHED_THRESHOLD, threshold_rule: str = "fixed",
                 count_threshold: float | None = None,
                 training: dict[str, Any] | None = None,
                 calibration: tuple[float, float] | None = None) -> None:
        _check_rule(threshold_rule)
        if threshold_rule == "count" and count_threshold is None:
            raise InputError("threshold_rule 'count' needs a count_threshold")
        self.threshold_rule = threshold_rule
        self.count_threshold = None if count_threshold is None else float(count_threshold)
        self.net = net
        self.config = config
        self.k = int(k)
        self.axes = list(axes or [0])
        self.threshold = float(threshold)
        self.training = dict(training or {})
        self.calibration = None if calibration is None else (float(calibration[0]),
                                                             float(calibration[1]))

    def scores(self, slice_prob: np.ndarray) -> np.ndarray:
        """Calibrated per-particle score from the slice probabilities (rows = particles)."""
        return apply_platt(particle_scores(slice_prob), self.calibration)

    def default_threshold(self, score: np.ndarray | None = None) -> float:
        """The threshold used when none is given (``score``, the scan's scores, is unused:
        the CNN's rules are fixed numbers; same signature as the features model's)."""
        if self.threshold_rule == "count":
            return float(self.count_threshold)
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
                "threshold_rule": self.threshold_rule, "count_threshold": self.count_threshold,
                "training": self.training, "calibration": self.calibration,
                "class_values": [0, 1],
                "class_names": ["intact", "flawed"], "torch_version": torch.__version__}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (atomically)."""
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, buf)
        return write_archive(path, self.header(), {"state_dict.pt": buf.getvalue()})


def particle_scores(slice_prob: np.ndarray) -> np.ndarray:
    """Per-particle score: the mean slice probability (rows = particles), uncalibrated
    (:meth:`CNNModel.scores` applies the model's calibration)."""
    return np.asarray(slice_prob, np.float64).mean(axis=1)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def apply_platt(score: np.ndarray, pair: tuple[float, float] | None) -> np.ndarray:
    """``sigmoid(a * logit(score) + b)`` for ``pair = (a, b)``; ``score`` itself for None."""
    if pair is None:
        return np.asarray(score, np.float64)
    a, b = pair
    return 1.0 / (1.0 + np.exp(-(a * _logit(score) + b)))


def platt(score: np.ndarray, flawed: np.ndarray, *,
          prior: float | None = None) -> tuple[float, float] | None:
    """Platt scaling ``(a, b)`` of scores against 0/1 labels (None when a class is missing).

    A logistic regression (mildly regularised, C = 10) of the labels on ``logit(score)``.
    With ``prior`` (the flawed fraction of the whole labelled set), the classes are
    weighted so that the fit sees that fraction rather than the one of the (small)
    calibration sample, whose chance imbalance would otherwise shift every score.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(flawed).astype(np.int64).ravel()
    if y.min() == y.max():
        return None
    w = None
    if prior is not None:
        pv = float(y.mean())
        w = np.where(y == 1, prior / pv, (1 - prior) / (1 - pv))
    lr = LogisticRegression(C=10.0, max_iter=1000).fit(_logit(score)[:, None], y,
                                                      sample_weight=w)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


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
    n, c = x.shape[:2]
    gain = 1 + 0.1 * torch.randn(n, c - 1, 1, 1, generator=gen)
    noise = 0.05 * torch.randn((n, c - 1, *x.shape[2:]), generator=gen)
    val = (x[:, :-1] * gain + noise) * x[:, -1:]
    return torch.cat([val, x[:, -1:]], dim=1)


def train_cnn(slices: np.ndarray, flawed: np.ndarray, *, config: CNNConfig | None = None,
              k: int | None = None, axes: list[int] | None = None,
              threshold: float = PUBLISHED_THRESHOLD,
              threshold_rule: str = "fixed") -> CNNModel:
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
        Fixed particle score threshold stored with the model.
    threshold_rule : {"count", "fixed"}
        Default rule stored with the model (see :class:`CNNModel`); the count threshold is
        computed and stored either way.

    Raises
    ------
    InputError
        Size mismatch, wrong label count, fewer than 3 particles of either class.
    """
    import torch

    from electrode_ct.cracks.evaluate import roc_auc, select_threshold
    from electrode_ct.segment.cnn._torch import require_torch, set_threads

    require_torch()
    _check_rule(threshold_rule)
    cfg = config or CNNConfig(size=int(slices.shape[-1]))
    if cfg.image not in IMAGES:
        raise InputError(f"image: expected one of {', '.join(IMAGES)} (resolve 'auto' with "
                         f"classify.choose_image first), got {cfg.image!r}")
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
    model = CNNModel(_net(tuple(cfg.channels), cfg.n_images), config=cfg,
                     k=k or slices.shape[1], axes=axes, threshold=threshold)
    best, history = _fit(model, slices, y, tr, val, gen)
    raw_val = particle_scores(model.slice_probabilities(np.ascontiguousarray(slices[val])))
    auc = roc_auc(y[val], raw_val)
    pair = platt(raw_val, y[val], prior=float(y.mean()))
    model.calibration = pair if cfg.calibrate else None
    # held-out scores of every particle: the validation particles from this network, each
    # further chunk of the training particles from a network fitted without it
    held, raw = [val], [raw_val]
    n_extra = max(int(cfg.count_folds), 1) - 1
    for chunk in (np.array_split(tr, n_extra) if n_extra else []):
        if chunk.size < 2:
            continue
        extra = CNNModel(_net(tuple(cfg.channels), cfg.n_images), config=cfg)
        _fit(extra, slices, y, np.setdiff1d(tr, chunk), chunk, gen)
        held.append(chunk)
        raw.append(particle_scores(extra.slice_probabilities(
            np.ascontiguousarray(slices[chunk]))))
    yh = y[np.concatenate(held)]
    both = 0 < yh.sum() < len(yh)  # else no count to match: fall back to ``threshold``
    model.count_threshold = select_threshold(
        yh, apply_platt(np.concatenate(raw), model.calibration), rule="prevalence") \
        if both else None
    model.threshold_rule = threshold_rule if both else "fixed"
    model.training = {"epochs_run": len(history), "best_epoch": best[2],
                      "best_val_loss": best[0], "val_auc": auc, "n_particles": len(y),
                      "n_flawed": int(y.sum()), "n_val_flawed": int(y[val].sum()),
                      "n_val": int(len(val)), "platt": pair, "val_history": history,
                      "n_count_particles": int(len(yh)), "count_folds": len(held)}
    return model


def _fit(model: CNNModel, slices: np.ndarray, y: np.ndarray, tr: np.ndarray, val: np.ndarray,
         gen: Any) -> tuple[tuple[float, Any, int], list[float]]:
    """Fit ``model.net`` on the particles ``tr``, early-stopped on the particles ``val``
    (best weights kept); returns ``(best val loss, weights, epoch)`` and the loss history."""
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
            sched.step()
        ps = np.clip(particle_scores(model.slice_probabilities(xv)), 1e-6, 1 - 1e-6)
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
    return best, history


def _loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> CNNModel:
    from electrode_ct.segment.cnn._torch import require_torch

    torch = require_torch()
    try:
        cfg_d = dict(header["config"])
        cfg_d["channels"] = tuple(cfg_d["channels"])
        cfg_d.setdefault("image", "grey")  # saved before the option existed
        cfg = CNNConfig(**cfg_d)
        net = _net(cfg.channels, cfg.n_images)
        state = torch.load(read_member(archive, "state_dict.pt"), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state)
        net.eval()
        return CNNModel(net, config=cfg, k=header.get("k", 10), axes=header.get("axes"),
                        threshold=header.get("threshold", PUBLISHED_THRESHOLD),
                        threshold_rule=header.get("threshold_rule", "fixed"),
                        count_threshold=header.get("count_threshold"),
                        training=header.get("training"), calibration=header.get("calibration"))
    except (KeyError, TypeError, RuntimeError, ValueError, InputError) as exc:
        raise ModelError(f"{path}: damaged cracks-cnn model ({type(exc).__name__})") from exc


register_kind(KIND, _loader)
