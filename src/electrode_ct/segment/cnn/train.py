"""Train a segmentation network from one or a few labelled 2-D slices.

Random patches (a fixed number per epoch, half of them centred on a class drawn
uniformly, so thin phases such as the carbon-binder are seen), augmentation (flips, 90°
rotations, small elastic deformation with nearest-neighbour labels, contrast/brightness,
Gaussian noise), weighted cross-entropy + Dice loss, Adam with a cosine (default) or
SegmentPy step-decay schedule, early stopping on a validation slice, seeded.

Labels: 0 = unlabelled (ignored), 1..K = classes.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from electrode_ct.errors import ConfigError, InputError, ShapeError
from electrode_ct.segment.cnn._torch import (
    default_threads,
    require_torch,
    resolve_device,
    set_threads,
)
from electrode_ct.segment.cnn.averaging import WeightAverage, capped_decay
from electrode_ct.segment.cnn.distill import (
    MAX_PLANES,
    TEACHER_TRANSFORMS,
    class_dice,
    soft_loss,
    teacher_targets,
    unlabelled_planes,
)
from electrode_ct.segment.cnn.model import PRIORS, CNNModel, load_cnn, net_from_arch
from electrode_ct.segment.cnn.nets import ARCH_DEFAULTS
from electrode_ct.segment.cnn.normalise import NORMALISATIONS, normalise, robust_stats
from electrode_ct.segment.cnn.predict import (
    adapt_batchnorm,
    as_members,
    evenly_spaced,
    predict_plane,
)

torch = require_torch()
F = torch.nn.functional

IGNORE = -100


class CollapseWarning(UserWarning):
    """Predictions collapsed onto the dominant class (the majority-class pitfall)."""


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (defaults chosen for CPU training).

    Attributes
    ----------
    arch : {"lrcs", "unet"}
        Architecture; ``channels``, ``depth``, ``kernel`` default per architecture
        (:data:`~electrode_ct.segment.cnn.nets.ARCH_DEFAULTS` overridden by
        :data:`DEFAULT_SIZES`).
    patch : int
        Square patch edge in pixels.
    patches_per_epoch : int
        Patches drawn per epoch.
    batch_size : int
        Patches per optimiser step.
    epochs : int
        Maximum number of epochs; the cosine schedule anneals over them (20: one-slice
        training early-stops at epoch ~13–16, so 20 lets the learning rate decay before the
        kept snapshot; 40 scored 0.005–0.01 mean IoU lower in docs/cnn.md *Figures*).
    lr : float
        Initial Adam learning rate.
    schedule : {"cosine", "step", "constant"}
        Cosine annealing to ``lr_floor`` over ``epochs``; or SegmentPy's step decay
        (× ``step_gamma`` every ``step_epochs``, never below ``lr_floor``).
    dice_weight : float
        Weight of the Dice term added to the cross-entropy.
    label_smoothing : float
        Cross-entropy label smoothing (0 = none; 0.1 spreads 10 % of each target over the
        classes).
    class_weighting : {"balanced", "none"}
        Cross-entropy weights ∝ frequency^-1/2 of the labelled classes, or none.
    balance : float
        Fraction of patches centred on a voxel of a uniformly drawn class.
    augment : bool
        Flips/rotations, elastic deformation, contrast/brightness, noise.
    noise, contrast, brightness, elastic : float
        Augmentation strengths: noise std (normalised units), ± relative contrast,
        ± brightness (normalised units), maximum elastic displacement (pixels).
    ema : float
        Exponential moving average of the weights (:mod:`~electrode_ct.segment.cnn.averaging`):
        per-step decay in (0, 1), 0 = off. The averaged weights are the ones validated each
        epoch and kept (the raw weights only drive the optimiser). Default 0.995 (a span of
        ~200 steps, ~6 epochs of 32 steps; never more than a third of the planned steps,
        :func:`~.averaging.capped_decay`, re-estimated from the pace under a time limit)
        with ``keep="last"``: on the one-slice nano-CT
        protocol +0.018 (A) / +0.005 (C) test mean IoU over the best-validation raw weights
        in the same training runs (docs/cnn.md, *Weight averaging*).
    keep : {"last", "best"}
        Which weights each network keeps: ``last`` — the final ones (averaged with ``ema``)
        after all ``epochs`` (or the time limit), the validation slice only reported;
        ``best`` — those of the epoch with the best validation mean IoU, with early stopping
        after ``patience`` epochs without gain (the behaviour before ``keep`` existed).
    patience : int
        With ``keep="best"``: epochs without validation improvement before stopping (0 =
        never stop early); unused with ``keep="last"``.
    normalisation : {"auto", "image", "slice", "fixed"}
        Input normalisation (see :mod:`~electrode_ct.segment.cnn.normalise`). ``auto``
        (default) trains with ``image`` and, when a validation slice is given, keeps
        ``fixed`` (the training slice's statistics for every input) instead if the
        trained model scores a higher validation mean IoU with it: slices of one
        calibrated scan share their grey scale, and renormalising each by its own
        statistics then shifts images whose phase fractions differ; slices whose grey
        levels drift need ``image``. Without a validation slice ``auto`` is ``image``.
    seed : int
        Random seed (patches, augmentation, initial weights); member ``i`` uses ``seed + i``.
    transforms : int
        Test-time augmentation stored as the model's prediction default: dihedral
        transforms (rotations/flips) averaged at prediction (1 = none, up to 8).
    adapt_bn : bool
        Test-time batch-norm adaptation stored as the model's prediction default: batch-norm
        statistics re-estimated on each input (:func:`~.predict.adapt_batchnorm`); the
        validation score then uses it too.
    priors : {"none", "em"}
        Prediction-time class-prior (label-shift) correction stored as the model's default
        (:data:`~.model.PRIORS`): ``em`` re-estimates each input's phase fractions by EM and
        adjusts its probabilities to them, relative to the model's ``train_prior`` (the mean
        predicted probability over the training planes, always stored). Not used for the
        validation score.
    members : int
        Networks trained one after the other with different seeds (each early-stopped on the
        validation slice, each given ``time_limit_s / members``); prediction averages their
        probabilities. Default 3: +0.01–0.02 mean IoU over one network on the one-slice
        nano-CT protocol, ~0.5 Mpixel/s on 2 CPU threads (docs/cnn.md, *Figures*).
    distill : bool
        After the ``members`` (teachers), train one student network (seed ``seed + members``)
        on the members' averaged probabilities (8 rotations/flips) over the training planes
        and any ``unlabelled`` planes passed to :func:`train`, and ship the student alone
        (one network to predict; :mod:`~electrode_ct.segment.cnn.distill`). The time limit is
        then shared by ``members + 1`` networks.
    device : {"cpu", "cuda"}
        Compute device.
    threads : int, optional
        Torch CPU threads (default :data:`~._torch.DEFAULT_THREADS`, 2).
    time_limit_s : float, optional
        Stop after this many seconds of training (wall clock).
    """

    arch: str = "unet"
    channels: int | None = None
    depth: int | None = None
    kernel: int | None = None
    patch: int = 96
    patches_per_epoch: int = 256
    batch_size: int = 8
    epochs: int = 20
    lr: float = 2e-3
    schedule: str = "cosine"
    step_epochs: int = 10
    step_gamma: float = 0.3
    lr_floor: float = 1e-5
    weight_decay: float = 0.0
    dice_weight: float = 1.0
    label_smoothing: float = 0.0
    class_weighting: str = "balanced"
    balance: float = 0.5
    augment: bool = True
    noise: float = 0.1
    contrast: float = 0.15
    brightness: float = 0.15
    elastic: float = 2.0
    ema: float = 0.995
    keep: str = "last"
    patience: int = 8
    normalisation: str = "auto"
    seed: int = 0
    members: int = 3
    distill: bool = False
    transforms: int = 1
    adapt_bn: bool = False
    priors: str = "none"
    device: str = "cpu"
    threads: int | None = None
    time_limit_s: float | None = None

    def arch_record(self) -> dict[str, Any]:
        """Architecture name and sizes with defaults filled in."""
        if self.arch not in ARCH_DEFAULTS:
            raise ConfigError(f"--arch {self.arch!r}: expected one of {', '.join(ARCH_DEFAULTS)}")
        sizes = {**ARCH_DEFAULTS[self.arch], **DEFAULT_SIZES.get(self.arch, {})}
        for key in ("channels", "depth", "kernel"):
            if getattr(self, key) is not None:
                sizes[key] = int(getattr(self, key))
        return {"name": self.arch, **sizes}

    def check(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if self.schedule not in ("cosine", "step", "constant"):
            raise ConfigError(f"schedule {self.schedule!r}: expected cosine, step or constant")
        if self.normalisation not in (*NORMALISATIONS, "auto"):
            raise ConfigError(f"normalisation {self.normalisation!r}: expected one of "
                              f"auto, {', '.join(NORMALISATIONS)}")
        if self.class_weighting not in ("balanced", "none"):
            raise ConfigError(f"class weighting {self.class_weighting!r}: expected balanced "
                              "or none")
        for key in ("patch", "patches_per_epoch", "batch_size", "epochs", "step_epochs",
                    "members"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key}: expected a positive integer, got {getattr(self, key)}")
        if self.patch < 8:
            raise ConfigError(f"--patch {self.patch}: expected at least 8 pixels")
        if not 1 <= int(self.transforms) <= 8:
            raise ConfigError(f"transforms {self.transforms}: expected 1 to 8")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label smoothing {self.label_smoothing}: expected 0 <= value < 1")
        if self.priors not in PRIORS:
            raise ConfigError(f"priors {self.priors!r}: expected one of {', '.join(PRIORS)}")
        if self.keep not in ("last", "best"):
            raise ConfigError(f"keep {self.keep!r}: expected last or best")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema {self.ema}: expected a decay 0 <= value < 1 (0 = off)")
        if not self.lr > 0 or self.lr_floor < 0:
            raise ConfigError(f"learning rate {self.lr} / floor {self.lr_floor}: expected > 0")


DEFAULT_SIZES: dict[str, dict[str, int]] = {"lrcs": {"channels": 8}, "unet": {"channels": 16}}
"""Sizes of the default models where they differ from :data:`~.nets.ARCH_DEFAULTS`. The
default architecture is a 16-channel U-Net: on the one-slice nano-CT protocol it ends
~0.04–0.05 mean IoU above an LRCS-Net of 8 channels after the same number of epochs (its
concatenated skips keep the thin carbon-binder and pore detail that index unpooling
loses), at about half the prediction speed (~0.5–1 Mpixel/s on one CPU thread); LRCS-Net
wider than 8 channels gained nothing there (measured in ``benchmarks/cnn.py``; see
docs/cnn.md)."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : CNNModel
        The trained model (final averaged weights, or those of the best validation epoch
        with ``keep="best"``).
    history : list of dict
        Per epoch: ``member`` (0-based), ``epoch``, ``lr``, ``loss``, ``val_mean_iou`` (NaN
        without validation), ``seconds``.
    best_epoch : int
        Epoch whose weights were kept (1-based; of the first member).
    stopped_early : bool
        True when early stopping or the time limit ended training.
    wall_s, cpu_s : float
        Wall-clock and process CPU time of training in seconds.
    collapsed : bool
        True when predictions collapsed onto the dominant class (a warning was issued).
    teachers : CNNModel or None
        With distillation: the teacher ensemble (its members averaged), for comparison or
        to distil again (``train(..., teachers=...)``); None otherwise.
    """

    model: CNNModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    collapsed: bool = False
    teachers: CNNModel | None = None


# -- data preparation -------------------------------------------------------------------
def _as_list(x: Any) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, Sequence) and not isinstance(x, str):
        return [np.asarray(a) for a in x]
    return [np.asarray(getattr(x, "data", x))]


def _planes(image: np.ndarray, labels: np.ndarray, *, all_axes: bool,
            max_planes: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labelled 2-D planes (views) of an image/labels pair."""
    if image.ndim == 2:
        return [(image, labels)]
    axes = (0, 1, 2) if all_axes and min(image.shape) > 1 else (0,)
    out = []
    for ax in axes:
        img = np.moveaxis(image, ax, 0)
        lab = np.moveaxis(labels, ax, 0)
        idx = np.flatnonzero((lab != 0).reshape(lab.shape[0], -1).any(axis=1))
        out += [(img[i], lab[i]) for i in idx[evenly_spaced(idx.size, max_planes)]]
    return out


def prepare(images: Any, labels: Any, *, normalisation: str = "image",
            all_axes: bool = True, name: str = "labels",
            stats: tuple[float, float] | None = None,
            ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, tuple[float, float]]:
    """Normalise images and turn labels 1..K into class indices (unlabelled → ignore).

    ``stats`` (centre, scale) are the ``fixed`` normalisation's statistics (default: those
    of the first image; pass the training statistics for validation images).

    Returns
    -------
    planes : list of (image, index) 2-D pairs
        Normalised float32 images and int64 class indices (``IGNORE`` = unlabelled).
    values : numpy.ndarray
        The class values (sorted) found in the labels.
    stats : (float, float)
        Centre and scale of the first training image (stored for ``fixed`` normalisation).
    """
    imgs, labs = _as_list(images), _as_list(labels)
    if len(imgs) != len(labs):
        raise InputError(f"{name}: {len(labs)} label arrays for {len(imgs)} images")
    for img, lab in zip(imgs, labs, strict=True):
        if img.shape != lab.shape:
            raise ShapeError(f"{name}: shape {lab.shape} differs from the image shape {img.shape}")
        if lab.dtype.kind not in "iub":
            raise InputError(f"{name}: expected integer labels (0 = unlabelled, 1..K), "
                             f"got dtype {lab.dtype}")
    values = np.unique(np.concatenate([np.unique(lab) for lab in labs]))
    values = values[values != 0]
    if values.size < 2:
        raise InputError(f"{name}: found {values.size} class(es) ({values.tolist()}); "
                         "training needs at least 2 labelled classes (0 = unlabelled)")
    if values.min() < 0 or values.max() > 255:
        raise InputError(f"{name}: class values must be 1..255, got {values.min()}..{values.max()}")
    stats = robust_stats(imgs[0]) if stats is None else stats
    lut = np.full(int(values.max()) + 1, IGNORE, np.int64)
    lut[values] = np.arange(values.size)
    planes = []
    for img, lab in zip(imgs, labs, strict=True):
        norm = normalise(img, mode=normalisation, stats=stats)
        idx = lut[lab.astype(np.int64)]
        planes += _planes(norm, idx, all_axes=all_axes)
    return planes, values, stats


class PatchSampler:
    """Random square patches from labelled planes, half of them class-balanced."""

    def __init__(self, planes: list[tuple[np.ndarray, np.ndarray]], n_classes: int, *,
                 patch: int, balance: float, rng: np.random.Generator,
                 max_points: int = 50_000, targets: list[np.ndarray] | None = None) -> None:
        for img, _ in planes:
            if min(img.shape) < patch:
                raise InputError(f"--patch {patch}: larger than a training image of "
                                 f"{img.shape[0]} x {img.shape[1]} pixels; use a smaller patch")
        self.planes, self.patch, self.balance, self.rng = planes, patch, balance, rng
        self.targets = targets  # soft targets (K, y, x) per plane, or None
        self.n_classes = n_classes
        counts = np.array([(lab != IGNORE).sum() for _, lab in planes], np.float64)
        self.plane_p = counts / counts.sum()
        # per class: (plane index, flat index) of a bounded sample of its pixels
        self.points: list[np.ndarray] = []
        for c in range(n_classes):
            pts = [np.stack([np.full(f.size, i), f]) for i, (_, lab) in enumerate(planes)
                   for f in [np.flatnonzero(lab == c)]]
            allp = np.concatenate(pts, axis=1) if pts else np.zeros((2, 0), np.int64)
            if allp.shape[1] > max_points:
                allp = allp[:, rng.choice(allp.shape[1], max_points, replace=False)]
            self.points.append(allp)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images (n, 1, P, P) float32 and class indices (n, P, P) int64.

        With soft ``targets``: probabilities (n, K, P, P) float32 instead of indices.
        """
        p = self.patch
        xs = np.empty((n, 1, p, p), np.float32)
        ys = (np.empty((n, p, p), np.int64) if self.targets is None
              else np.empty((n, self.n_classes, p, p), np.float32))
        present = [c for c in range(self.n_classes) if self.points[c].shape[1]]
        for k in range(n):
            if self.rng.random() < self.balance:
                pts = self.points[present[self.rng.integers(len(present))]]
                i, flat = pts[:, self.rng.integers(pts.shape[1])]
                img, lab = self.planes[i]
                cy, cx = np.unravel_index(flat, lab.shape)
                y0 = int(np.clip(cy - p // 2 + self.rng.integers(-p // 4, p // 4 + 1), 0,
                                 lab.shape[0] - p))
                x0 = int(np.clip(cx - p // 2 + self.rng.integers(-p // 4, p // 4 + 1), 0,
                                 lab.shape[1] - p))
            else:
                i = self.rng.choice(len(self.planes), p=self.plane_p)
                img, lab = self.planes[i]
                y0 = int(self.rng.integers(lab.shape[0] - p + 1))
                x0 = int(self.rng.integers(lab.shape[1] - p + 1))
            xs[k, 0] = img[y0:y0 + p, x0:x0 + p]
            src = lab if self.targets is None else self.targets[i]
            ys[k] = src[..., y0:y0 + p, x0:x0 + p]
        return xs, ys


# -- augmentation and loss --------------------------------------------------------------
def augment(x: Any, y: Any, cfg: TrainConfig, gen: Any) -> tuple[Any, Any]:
    """Random dihedral transforms, elastic deformation, contrast/brightness and noise.

    ``x``: (N, 1, P, P) float; ``y``: (N, P, P) int64 class indices, resampled by nearest
    neighbour, or (N, K, P, P) float probabilities, resampled bilinearly.
    """
    n, _, p, _ = x.shape
    ks = torch.randint(0, 8, (n,), generator=gen)
    xs, ys = [], []
    for i in range(n):
        k = int(ks[i])
        xi, yi = x[i], y[i]
        if k >= 4:
            xi, yi = torch.flip(xi, (-1,)), torch.flip(yi, (-1,))
        xs.append(torch.rot90(xi, k % 4, (-2, -1)))
        ys.append(torch.rot90(yi, k % 4, (-2, -1)))
    x, y = torch.stack(xs), torch.stack(ys)
    if cfg.elastic > 0:
        coarse = max(2, p // 16)
        disp = torch.randn((n, 2, coarse, coarse), generator=gen) * (cfg.elastic / 2)
        disp = F.interpolate(disp, size=(p, p), mode="bicubic", align_corners=True)
        disp = disp.clamp(-cfg.elastic, cfg.elastic) * (2.0 / p)
        base = torch.linspace(-1, 1, p)
        gy, gx = torch.meshgrid(base, base, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)[None] + disp.permute(0, 2, 3, 1)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                          align_corners=True)
        if y.ndim == 4:
            y = F.grid_sample(y, grid, mode="bilinear", padding_mode="reflection",
                              align_corners=True)
        else:
            yf = F.grid_sample(y[:, None].float(), grid, mode="nearest",
                               padding_mode="reflection", align_corners=True)
            y = yf[:, 0].round().long()
    gain = 1 + (torch.rand((n, 1, 1, 1), generator=gen) * 2 - 1) * cfg.contrast
    shift = (torch.rand((n, 1, 1, 1), generator=gen) * 2 - 1) * cfg.brightness
    sigma = torch.rand((n, 1, 1, 1), generator=gen) * cfg.noise
    x = x * gain + shift + torch.randn(x.shape, generator=gen) * sigma
    return x, y


def loss_fn(logits: Any, target: Any, weight: Any, dice_weight: float, *,
            label_smoothing: float = 0.0) -> Any:
    """Weighted (optionally label-smoothed) cross-entropy plus soft Dice over labelled pixels."""
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE,
                         label_smoothing=label_smoothing)
    if dice_weight <= 0:
        return ce
    valid = (target != IGNORE)
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(target.clamp_min(0), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot * valid[:, None]
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = class_dice(prob, onehot)
    dice_loss = 1 - dice[present].mean() if present.any() else ce * 0
    return ce + dice_weight * dice_loss


def class_weights(planes: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
                  mode: str) -> np.ndarray:
    """Cross-entropy weights ∝ frequency^-1/2 (mean 1) of labelled pixels, or ones."""
    if mode == "none":
        return np.ones(n_classes, np.float32)
    counts = np.zeros(n_classes)
    for _, lab in planes:
        counts += np.bincount(lab[lab != IGNORE], minlength=n_classes)[:n_classes]
    w = 1.0 / np.sqrt(np.maximum(counts, 1))
    return (w / w.mean()).astype(np.float32)


def learning_rate(epoch: int, cfg: TrainConfig, *, elapsed_s: float | None = None) -> float:
    """Learning rate of a 0-based epoch under the configured schedule.

    With a ``time_limit_s``, the cosine schedule follows whichever is further along: the
    epochs or the elapsed training time (``elapsed_s``, seconds), so a time-limited run
    still anneals before it is cut.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return max(cfg.lr * cfg.step_gamma ** (epoch // cfg.step_epochs), cfg.lr_floor)
    t = epoch / max(1, cfg.epochs - 1)
    if cfg.time_limit_s and elapsed_s is not None:
        t = min(1.0, max(t, elapsed_s / cfg.time_limit_s))
    return cfg.lr_floor + 0.5 * (cfg.lr - cfg.lr_floor) * (1 + np.cos(np.pi * t))


# -- evaluation ---------------------------------------------------------------------------
def _validation_planes(val: tuple[Any, Any], mode: str, stats: tuple[float, float],
                       values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation planes normalised by ``mode`` (``fixed``: the training ``stats``), labels
    as training class indices."""
    vp, vvals, _ = prepare(val[0], val[1], normalisation=mode, all_axes=False,
                           name="validation labels", stats=stats)
    if not set(vvals.tolist()) <= set(values.tolist()):
        raise InputError(f"validation labels: classes {vvals.tolist()} not all among the "
                         f"training classes {values.tolist()}")
    remap = np.searchsorted(values, vvals)
    return [(img, np.where(lab == IGNORE, IGNORE, remap[np.clip(lab, 0, None)]))
            for img, lab in vp]


def _choose_normalisation(nets: Any, image_planes: list[tuple[np.ndarray, np.ndarray]],
                          fixed_planes: list[tuple[np.ndarray, np.ndarray]], k: int,
                          device: Any, *, adapt_bn: bool = False,
                          ) -> tuple[str, dict[str, float], list[tuple[np.ndarray, np.ndarray]],
                                     tuple[float, np.ndarray, np.ndarray]]:
    """``normalisation="auto"``: ``image`` or ``fixed``, whichever validates better.

    Returns the chosen mode, both validation mean IoUs, the validation planes in the
    chosen normalisation and their :func:`_evaluate` result (not computed again). A tie
    keeps ``image``.
    """
    runs = {mode: (planes, _evaluate(nets, planes[:4], k, device, adapt_bn=adapt_bn))
            for mode, planes in (("image", image_planes), ("fixed", fixed_planes))}
    scores = {mode: run[1][0] for mode, run in runs.items()}
    mode = "fixed" if scores["fixed"] > scores["image"] else "image"
    return mode, scores, *runs[mode]


def _evaluate(net: Any, planes: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
              device: Any, *, adapt_bn: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean IoU over labelled pixels, and predicted / reference class fractions.

    ``net``: one network or a list of members (probabilities averaged); ``adapt_bn``:
    batch-norm statistics re-estimated on each plane first.
    """
    for member in as_members(net):
        member.eval()
    conf = np.zeros((n_classes, n_classes), np.int64)
    for img, lab in planes:
        nets = adapt_batchnorm(net, [img], device=device) if adapt_bn else net
        pred = predict_plane(nets, img, device=device, tile=512, overlap=32).argmax(axis=0)
        keep = lab != IGNORE
        conf += np.bincount(lab[keep] * n_classes + pred[keep],
                            minlength=n_classes ** 2).reshape(n_classes, n_classes)
    tp = np.diag(conf).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (conf.sum(0) + conf.sum(1) - tp)
    total = max(conf.sum(), 1)
    return float(np.nanmean(iou)), conf.sum(0) / total, conf.sum(1) / total


def mean_probability(net: Any, planes: list[tuple[np.ndarray, np.ndarray]],
                     device: Any) -> list[float]:
    """Mean predicted class probability over (at most 16 evenly spaced) training planes.

    The class priors the network's probabilities correspond to, for the prediction-time
    prior correction (``priors="em"``; class balancing in training makes them differ from
    the labelled fractions). Whole planes, labelled or not, are averaged.
    """
    acc = None
    for i in evenly_spaced(len(planes), MAX_PLANES):
        prob = predict_plane(net, planes[i][0], device=device, tile=512, overlap=32)
        mean = prob.reshape(prob.shape[0], -1).astype(np.float64).mean(axis=1)
        acc = mean if acc is None else acc + mean
    total = acc / acc.sum()
    return [float(v) for v in total]


def collapse_check(pred_frac: np.ndarray, ref_frac: np.ndarray) -> str | None:
    """A message when predictions collapsed onto the dominant class, else None.

    Collapse: a class with >= 2 % of the reference pixels receives < 10 % of its share,
    while the dominant predicted class is over-predicted.
    """
    missing = (ref_frac >= 0.02) & (pred_frac < 0.1 * ref_frac)
    top = int(np.argmax(pred_frac))
    if missing.any() and pred_frac[top] > ref_frac[top]:
        return (f"predictions collapsed onto class index {top} ({pred_frac[top]:.0%} predicted "
                f"vs {ref_frac[top]:.0%} labelled); classes {np.flatnonzero(missing).tolist()} "
                "are almost never predicted: check the labels, use class balancing, more "
                "epochs or a lower learning rate")
    return None


# -- training -------------------------------------------------------------------------------
def train(images: Any, labels: Any, *, config: TrainConfig | None = None,
          val: tuple[Any, Any] | None = None, init: CNNModel | str | None = None,
          class_names: Sequence[str] | None = None, slices_2d: bool = False,
          unlabelled: Any = None, teachers: CNNModel | str | None = None,
          callback: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train a segmentation network on labelled 2-D slices.

    Parameters
    ----------
    images : numpy.ndarray or list of numpy.ndarray
        Grey images (y, x) or volumes (z, y, x).
    labels : numpy.ndarray or list of numpy.ndarray
        Integer labels of the same shapes: 0 = unlabelled, 1..K = classes.
    config : TrainConfig, optional
        Hyper-parameters (defaults: :class:`TrainConfig`).
    val : (image, labels), optional
        Validation image and labels for early stopping and model selection.
    init : CNNModel or path, optional
        Transfer learning: start from this model's weights (its architecture is used; the
        output layer is re-initialised when the number of classes differs).
    class_names : sequence of str, optional
        Names of classes 1..K (default ``class1``...).
    slices_2d : bool
        The volumes are stacks of independent 2-D slices: sample and predict z-slices only
        (default: labelled planes along every axis, tri-planar prediction).
    unlabelled : numpy.ndarray or list of numpy.ndarray, optional
        Unlabelled grey images or volumes (e.g. the other slices of the volume to be
        segmented) on which the student also learns the teachers' probabilities; used only
        with ``config.distill`` (no labels are read from them).
    teachers : CNNModel or path, optional
        Distil from this already-trained model (its members are the teachers, its
        architecture is used) instead of training ``config.members`` teachers; implies
        distillation.
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
    train_norm = "image" if cfg.normalisation == "auto" else cfg.normalisation
    planes, values, stats = prepare(images, labels, normalisation=train_norm,
                                    all_axes=not slices_2d)
    k = values.size
    val_planes: list[tuple[np.ndarray, np.ndarray]] = []
    if val is not None:
        val_planes = _validation_planes(val, train_norm, stats, values)
    names = list(class_names) if class_names else [f"class{int(v)}" for v in values]
    if len(names) != k:
        raise InputError(f"class names: {len(names)} names for {k} classes {values.tolist()}")
    arch = cfg.arch_record()
    base = None
    if init is not None:
        base = load_cnn(init) if not isinstance(init, CNNModel) else init
        arch = dict(base.arch)
    weight = torch.from_numpy(class_weights(planes, k, cfg.class_weighting)).to(device)

    nets, history, runs = [], [], []
    n_teachers = cfg.members
    if teachers is not None:
        tmodel = teachers if isinstance(teachers, CNNModel) else load_cnn(teachers)
        if tmodel.class_values != values.tolist():
            raise InputError(f"teachers: classes {tmodel.class_values} differ from the "
                             f"training classes {values.tolist()}")
        arch, nets, n_teachers = dict(tmodel.arch), [n.to(device) for n in tmodel.nets], 0
        cfg = replace(cfg, distill=True, members=len(nets))
    n_nets = n_teachers + int(cfg.distill)
    for member in range(n_teachers):
        left = None
        if cfg.time_limit_s is not None:
            left = max(0.0, cfg.time_limit_s - (time.perf_counter() - t0))
            left /= n_nets - member
        mcfg = replace(cfg, seed=cfg.seed + member, time_limit_s=left)
        torch.manual_seed(mcfg.seed)
        net = net_from_arch(arch, k)
        if base is not None:
            state = {key: v for key, v in base.net.state_dict().items()
                     if v.shape == net.state_dict()[key].shape}
            net.load_state_dict(state, strict=False)
        run = _fit(net, planes, val_planes, mcfg, weight=weight, device=device,
                   callback=callback, member=member)
        nets.append(net.eval())
        history += run["history"]
        runs.append(run)
    norm_mode, choice, evaluated = train_norm, None, None
    if cfg.normalisation == "auto" and val is not None:
        norm_mode, choice, val_planes, evaluated = _choose_normalisation(
            nets, val_planes, _validation_planes(val, "fixed", stats, values), k, device,
            adapt_bn=cfg.adapt_bn)
    check_planes = val_planes or planes
    norm_record = {"mode": norm_mode, "train_center": stats[0], "train_scale": stats[1]}
    ens_score, pred_frac, ref_frac = evaluated or _evaluate(nets, check_planes[:4], k, device,
                                                            adapt_bn=cfg.adapt_bn)
    distilled = teacher_model = None
    if cfg.distill:
        teacher_model = CNNModel(list(nets), arch=arch, class_values=values.tolist(),
                                 class_names=names, normalisation=norm_record)
        extra = (unlabelled_planes(_as_list(unlabelled), normalisation=norm_mode,
                                   stats=stats, all_axes=not slices_2d)
                 if unlabelled is not None else [])
        left = (None if cfg.time_limit_s is None
                else max(0.0, cfg.time_limit_s - (time.perf_counter() - t0)))
        student, run = _distill(nets, arch, planes, extra, val_planes,
                                replace(cfg, seed=cfg.seed + cfg.members, time_limit_s=left),
                                weight=weight, device=device, callback=callback)
        history += run["history"]
        distilled = {"teachers": ([{"seed": cfg.seed + i, "best_epoch": r["best_epoch"],
                                    "epochs_run": len(r["history"]),
                                    "best_val_mean_iou": r["best"] if val_planes else None}
                                   for i, r in enumerate(runs)] if teachers is None
                                  else tmodel.training.get("members", [])),
                     "teacher_val_mean_iou": ens_score if val_planes else None,
                     "teacher_transforms": TEACHER_TRANSFORMS,
                     "labelled_planes": min(len(planes), MAX_PLANES),
                     "unlabelled_planes": min(len(extra), MAX_PLANES)}
        nets, runs = [student], [run]
        ens_score, pred_frac, ref_frac = _evaluate(nets, check_planes[:4], k, device,
                                                   adapt_bn=cfg.adapt_bn)
    message = collapse_check(pred_frac, ref_frac)
    if message:
        warnings.warn(message, CollapseWarning, stacklevel=2)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    best_val = None
    if val_planes:
        best_val = runs[0]["best"] if len(nets) == 1 else ens_score
    training = {"config": asdict(cfg), "best_epoch": runs[0]["best_epoch"],
                "epochs_run": len(history), "best_val_mean_iou": best_val, "wall_s": wall,
                "cpu_s": cpu, "init": None if init is None else str(getattr(init, "kind", init)),
                "members": [{"seed": cfg.seed + i, "best_epoch": r["best_epoch"],
                             "epochs_run": len(r["history"]),
                             "best_val_mean_iou": r["best"] if val_planes else None}
                            for i, r in enumerate(runs)]}
    if choice is not None:
        training["normalisation_choice"] = choice
    if distilled is not None:
        training["members"] = [{**training["members"][0], "seed": cfg.seed + cfg.members}]
        training["distilled"] = distilled
    model = CNNModel([net.cpu() for net in nets], arch=arch, class_values=values.tolist(),
                     class_names=names,
                     normalisation=norm_record,
                     training=training,
                     prediction={"mode": "slice" if slices_2d else "auto", "axis": 0,
                                 "transforms": int(cfg.transforms),
                                 "adapt_bn": bool(cfg.adapt_bn), "priors": cfg.priors,
                                 "train_prior": mean_probability(nets, planes, device)})
    return TrainResult(model=model, history=history, best_epoch=runs[0]["best_epoch"],
                       stopped_early=any(r["stopped"] for r in runs), wall_s=wall, cpu_s=cpu,
                       collapsed=message is not None,
                       teachers=None if teacher_model is None else _on_cpu(teacher_model))


def _on_cpu(model: CNNModel) -> CNNModel:
    for net in model.nets:
        net.cpu()
    return model


def _distill(teachers: list[Any], arch: dict[str, Any],
             planes: list[tuple[np.ndarray, np.ndarray]], extra: list[np.ndarray],
             val_planes: list[tuple[np.ndarray, np.ndarray]], cfg: TrainConfig, *,
             weight: Any, device: Any,
             callback: Callable[[dict[str, float]], None] | None) -> tuple[Any, dict[str, Any]]:
    """Train one student on the teachers' averaged probabilities (labelled + extra planes).

    At most :data:`~.distill.MAX_PLANES` labelled and as many extra planes (evenly spaced)
    are labelled by the teachers, bounding the one-off teacher cost on volumes.
    """
    images = ([planes[i][0] for i in evenly_spaced(len(planes), MAX_PLANES)]
              + [extra[i] for i in evenly_spaced(len(extra), MAX_PLANES)])
    targets = teacher_targets(teachers, images, device=device)
    soft_planes = [(img, t.argmax(axis=0)) for img, t in zip(images, targets, strict=True)]
    torch.manual_seed(cfg.seed)
    student = net_from_arch(arch, int(weight.shape[0]))
    run = _fit(student, soft_planes, val_planes, cfg, weight=weight, device=device,
               callback=callback, member=cfg.members, targets=targets)
    return student.eval(), run


def _fit(net: Any, planes: list[tuple[np.ndarray, np.ndarray]],
         val_planes: list[tuple[np.ndarray, np.ndarray]], cfg: TrainConfig, *, weight: Any,
         device: Any, callback: Callable[[dict[str, float]], None] | None,
         member: int, targets: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Train one network in place; keep its final (``keep="last"``) or best-validation weights.

    ``targets``: soft targets (K, y, x) per plane (distillation) instead of the labels.

    Returns ``{"history", "best", "best_epoch", "stopped"}`` (``best_epoch``: the epoch whose
    weights were kept; ``best``: its validation mean IoU, or minus its training loss without
    validation).
    """
    t0 = time.perf_counter()
    k = int(weight.shape[0])
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = PatchSampler(planes, k, patch=cfg.patch, balance=cfg.balance, rng=rng,
                           targets=targets)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, cfg.patches_per_epoch // cfg.batch_size)
    average = (WeightAverage(net, capped_decay(cfg.ema, cfg.epochs * steps)) if cfg.ema > 0
               else None)
    judged = net if average is None else average.net  # the weights validated and kept
    history: list[dict[str, float]] = []
    best, best_state, best_epoch, stale, stopped = -np.inf, None, 0, 0, False
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        lr = learning_rate(epoch, cfg, elapsed_s=te - t0)
        for group in opt.param_groups:
            group["lr"] = lr
        if average is not None and cfg.time_limit_s and epoch:
            # epochs the time limit will allow at this pace: the span stays a third of those
            planned = min(cfg.epochs, epoch * cfg.time_limit_s / max(te - t0, 1e-9))
            average.decay = capped_decay(cfg.ema, int(planned * steps))
        net.train()
        total = 0.0
        for _ in range(steps):
            xb, yb = sampler.sample(cfg.batch_size)
            x, y = torch.from_numpy(xb), torch.from_numpy(yb)
            if cfg.augment:
                x, y = augment(x, y, cfg, gen)
            x, y = x.to(device), y.to(device)
            loss = (loss_fn(net(x), y, weight, cfg.dice_weight,
                            label_smoothing=cfg.label_smoothing) if targets is None
                    else soft_loss(net(x), y, weight, cfg.dice_weight))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if average is not None:
                average.update(net)
            total += float(loss.detach())
        mean_loss = total / steps
        score = (_evaluate(judged, val_planes, k, device, adapt_bn=cfg.adapt_bn)[0]
                 if val_planes else -mean_loss)
        rec = {"member": member, "epoch": epoch + 1, "lr": lr, "loss": mean_loss,
               "val_mean_iou": score if val_planes else float("nan"),
               "seconds": time.perf_counter() - te}
        history.append(rec)
        if callback is not None:
            callback(rec)
        if cfg.keep == "last":
            best, best_epoch = score, epoch + 1  # the final weights are kept: no selection
        elif score > best:
            best, best_epoch, stale = score, epoch + 1, 0
            best_state = copy.deepcopy(judged.state_dict())
        else:
            stale += 1
        if cfg.keep == "best" and cfg.patience and stale >= cfg.patience:
            stopped = True
            break
        if cfg.time_limit_s is not None and time.perf_counter() - t0 > cfg.time_limit_s:
            stopped = True
            break
    if cfg.keep == "last" and average is not None:
        best_state = average.net.state_dict()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"history": history, "best": best, "best_epoch": best_epoch, "stopped": stopped}


# -- hyper-parameter search ---------------------------------------------------------------
SEARCH_KEYS = ("lr", "batch_size", "channels", "kernel", "depth", "arch", "patch", "dice_weight")


def search(images: Any, labels: Any, *, val: tuple[Any, Any], space: dict[str, list[Any]],
           config: TrainConfig | None = None, strategy: str = "grid", n_trials: int = 8,
           seed: int = 0) -> Any:
    """Small hyper-parameter search ranked by validation mean IoU.

    Parameters
    ----------
    images, labels
        Training data as for :func:`train`.
    val : (image, labels)
        Validation data (required: the ranking criterion).
    space : dict
        Candidate values per :class:`TrainConfig` field, e.g.
        ``{"lr": [1e-3, 3e-3], "channels": [8, 16], "kernel": [3, 5]}``.
    config : TrainConfig, optional
        Base configuration (short ``epochs`` recommended).
    strategy : {"grid", "random"}
        Every combination, or ``n_trials`` random draws from the grid.
    n_trials : int
        Trials for the random strategy.
    seed : int
        Seed of the random draws.

    Returns
    -------
    pandas.DataFrame
        One row per trial, best first: the varied parameters, ``val_mean_iou`` (of the
        weights the trial kept, see ``TrainConfig.keep``), ``best_epoch``, ``train_s`` (wall
        seconds), ``rank``.
    """
    import itertools

    import pandas as pd

    base = config or TrainConfig(members=1)
    known = {f.name for f in fields(TrainConfig)}
    bad = [key for key in space if key not in known]
    if bad:
        raise ConfigError(f"search space: unknown parameter(s) {bad}; known: {sorted(known)}")
    if strategy not in ("grid", "random"):
        raise ConfigError(f"search strategy {strategy!r}: expected grid or random")
    keys = list(space)
    combos = list(itertools.product(*(space[key] for key in keys)))
    if strategy == "random" and len(combos) > n_trials:
        pick = np.random.default_rng(seed).choice(len(combos), n_trials, replace=False)
        combos = [combos[i] for i in sorted(pick)]
    rows = []
    for combo in combos:
        params = dict(zip(keys, combo, strict=True))
        res = train(images, labels, config=replace(base, **params), val=val)
        rows.append({**params, "val_mean_iou": res.model.training["best_val_mean_iou"],
                     "best_epoch": res.best_epoch, "train_s": res.wall_s})
    table = pd.DataFrame(rows).sort_values("val_mean_iou", ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)
