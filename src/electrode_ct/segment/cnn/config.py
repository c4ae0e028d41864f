"""Hyper-parameters of CNN training (:class:`TrainConfig`) and the default network sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from electrode_ct.errors import ConfigError
from electrode_ct.segment.cnn.nets import ARCH_DEFAULTS
from electrode_ct.segment.cnn.normalise import NORMALISATIONS

SCHEDULES = ("cosine", "step", "constant")
"""Learning-rate schedules (:func:`~.fit.learning_rate`)."""

KEEP = ("last", "best")
"""Which weights each network keeps (see :attr:`TrainConfig.keep`)."""

DEFAULT_SIZES: dict[str, dict[str, int]] = {"lrcs": {"channels": 8}, "unet": {"channels": 16}}
"""Sizes of the default models where they differ from :data:`~.nets.ARCH_DEFAULTS`. The
default architecture is a 16-channel U-Net: on the one-slice nano-CT protocol it ends
~0.04–0.05 mean IoU above an LRCS-Net of 8 channels after the same number of epochs (its
concatenated skips keep the thin carbon-binder and pore detail that index unpooling
loses), at about half the prediction speed (~0.5–1 Mpixel/s on one CPU thread); LRCS-Net
wider than 8 channels gained nothing there (measured in ``benchmarks/cnn.py``; see
docs/cnn.md)."""


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`~.train.train` (defaults chosen for CPU training).

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
        Number of epochs; the cosine schedule anneals over them (20: 40 scored 0.005–0.01
        mean IoU lower in docs/cnn.md *Figures*).
    lr : float
        Initial Adam learning rate.
    schedule : {"cosine", "step", "constant"}
        Cosine annealing to ``lr_floor`` over ``epochs``; or SegmentPy's step decay
        (× ``step_gamma`` every ``step_epochs``, never below ``lr_floor``).
    dice_weight : float
        Weight of the Dice term added to the cross-entropy.
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
        Which weights each network keeps after all ``epochs`` (or the time limit):
        ``last`` — the final ones (averaged with ``ema``), the validation slice only
        reported; ``best`` — those of the epoch with the best validation mean IoU (without
        a validation slice: the lowest training loss). There is no early stopping (the
        ``patience`` option was removed: validation-based stopping lost on the one-slice
        protocol, docs/cnn.md).
    normalisation : {"auto", "image", "fixed"}
        Input normalisation (see :mod:`~electrode_ct.segment.cnn.normalise`). ``auto``
        (default) trains with ``image`` and, when a validation slice is given, keeps
        ``fixed`` (the training slice's statistics for every input) instead if the
        trained model scores a higher validation mean IoU with it: slices of one
        calibrated scan share their grey scale, and renormalising each by its own
        statistics then shifts images whose phase fractions differ; slices whose grey
        levels drift need ``image``. Without a validation slice ``auto`` is ``image``.
    seed : int
        Random seed (patches, augmentation, initial weights); member ``i`` uses ``seed + i``.
    members : int
        Networks trained one after the other with different seeds (each given
        ``time_limit_s / members``); prediction averages their probabilities. Default 3:
        +0.01–0.02 mean IoU over one network on the one-slice nano-CT protocol, ~0.5
        Mpixel/s on 2 CPU threads (docs/cnn.md, *Figures*).
    transforms : int
        Test-time augmentation stored as the model's prediction default: dihedral
        transforms (rotations/flips) averaged at prediction (1 = none, up to 8).
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
    class_weighting: str = "balanced"
    balance: float = 0.5
    augment: bool = True
    noise: float = 0.1
    contrast: float = 0.15
    brightness: float = 0.15
    elastic: float = 2.0
    ema: float = 0.995
    keep: str = "last"
    normalisation: str = "auto"
    seed: int = 0
    members: int = 3
    transforms: int = 1
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
        choices = (("schedule", SCHEDULES), ("normalisation", ("auto", *NORMALISATIONS)),
                   ("class_weighting", ("balanced", "none")), ("keep", KEEP))
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key.replace('_', ' ')} {getattr(self, key)!r}: expected "
                                  f"one of {', '.join(allowed)}")
        for key in ("patch", "patches_per_epoch", "batch_size", "epochs", "step_epochs",
                    "members"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key}: expected a positive integer, got {getattr(self, key)}")
        if self.patch < 8:
            raise ConfigError(f"--patch {self.patch}: expected at least 8 pixels")
        if not 1 <= int(self.transforms) <= 8:
            raise ConfigError(f"transforms {self.transforms}: expected 1 to 8")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema {self.ema}: expected a decay 0 <= value < 1 (0 = off)")
        if not self.lr > 0 or self.lr_floor < 0:
            raise ConfigError(f"learning rate {self.lr} / floor {self.lr_floor}: expected > 0")
