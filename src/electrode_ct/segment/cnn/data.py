"""Training data of the CNN: labelled planes, random patches and their augmentation.

Labels: 0 = unlabelled, 1..K = classes; on the planes they become class indices 0..K-1 with
:data:`IGNORE` for unlabelled pixels. Patches: a fixed number per epoch, a fraction of them
centred on a class drawn uniformly (so thin phases such as the carbon-binder are seen).
Augmentation: flips, 90° rotations, small elastic deformation with nearest-neighbour
labels, contrast/brightness, Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.segment.cnn._torch import require_torch
from electrode_ct.segment.cnn.config import TrainConfig
from electrode_ct.segment.cnn.normalise import normalise, robust_stats
from electrode_ct.segment.cnn.predict import evenly_spaced

torch = require_torch()
F = torch.nn.functional

IGNORE = -100
"""Class index of unlabelled pixels (ignored by the loss and the scores)."""

Planes = list[tuple[np.ndarray, np.ndarray]]
"""2-D (normalised image, class index) pairs."""


def _as_list(x: Any) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, Sequence) and not isinstance(x, str):
        return [np.asarray(a) for a in x]
    return [np.asarray(getattr(x, "data", x))]


def _planes(image: np.ndarray, labels: np.ndarray, *, all_axes: bool,
            max_planes: int = 64) -> Planes:
    """Labelled 2-D planes (views) of an image/labels pair, at most ``max_planes`` per axis."""
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


def _check_pairs(imgs: list[np.ndarray], labs: list[np.ndarray], name: str) -> np.ndarray:
    """The sorted class values of matching image/label pairs (errors name ``name``)."""
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
    return values


def training_planes(images: Any, labels: Any, *, normalisation: str = "image",
            all_axes: bool = True, name: str = "labels",
            stats: tuple[float, float] | None = None,
            ) -> tuple[Planes, np.ndarray, tuple[float, float]]:
    """Normalise images and turn labels 1..K into class indices (unlabelled → ignore).

    Parameters
    ----------
    images, labels : numpy.ndarray or sequence of numpy.ndarray
        Grey images (y, x) or volumes (z, y, x), and integer labels of the same shapes.
    normalisation : {"image", "fixed"}
        :func:`~.normalise.normalise` mode.
    all_axes : bool
        Labelled planes along z, y and x of a volume (else z only).
    name : str
        What the labels are called in error messages.
    stats : (float, float), optional
        Centre and scale (grey-value units) of the ``fixed`` normalisation (default: those
        of the first image; pass the training statistics for validation images).

    Returns
    -------
    planes : list of (image, index) 2-D pairs
        Normalised float32 images and int64 class indices (:data:`IGNORE` = unlabelled).
    values : numpy.ndarray
        The class values (sorted) found in the labels.
    stats : (float, float)
        Centre and scale of the first training image (stored for ``fixed`` normalisation).
    """
    imgs, labs = _as_list(images), _as_list(labels)
    values = _check_pairs(imgs, labs, name)
    stats = robust_stats(imgs[0]) if stats is None else stats
    lut = np.full(int(values.max()) + 1, IGNORE, np.int64)
    lut[values] = np.arange(values.size)
    planes = []
    for img, lab in zip(imgs, labs, strict=True):
        norm = normalise(img, mode=normalisation, stats=stats)
        planes += _planes(norm, lut[lab.astype(np.int64)], all_axes=all_axes)
    return planes, values, stats


def validation_planes(val: tuple[Any, Any], mode: str, stats: tuple[float, float],
                      values: np.ndarray) -> Planes:
    """Validation planes normalised by ``mode`` (``fixed``: the training ``stats``), labels
    as the training class indices.

    Raises
    ------
    InputError
        For a validation class that is not among the training ``values``.
    """
    vp, vvals, _ = training_planes(val[0], val[1], normalisation=mode, all_axes=False,
                           name="validation labels", stats=stats)
    if not set(vvals.tolist()) <= set(values.tolist()):
        raise InputError(f"validation labels: classes {vvals.tolist()} not all among the "
                         f"training classes {values.tolist()}")
    remap = np.searchsorted(values, vvals)
    return [(img, np.where(lab == IGNORE, IGNORE, remap[np.clip(lab, 0, None)]))
            for img, lab in vp]


class PatchSampler:
    """Random square patches from labelled planes, a ``balance`` fraction class-balanced.

    Parameters
    ----------
    planes : list of (image, index) pairs
        From :func:`training_planes`.
    n_classes : int
        Number of classes K.
    patch : int
        Patch edge in pixels (at most the smallest plane edge).
    balance : float
        Fraction of patches centred (± a quarter patch) on a pixel of a uniformly drawn class.
    rng : numpy.random.Generator
        Random source.
    max_points : int
        Pixels remembered per class to centre balanced patches on.
    """

    def __init__(self, planes: Planes, n_classes: int, *, patch: int, balance: float,
                 rng: np.random.Generator, max_points: int = 50_000) -> None:
        for img, _ in planes:
            if min(img.shape) < patch:
                raise InputError(f"--patch {patch}: larger than a training image of "
                                 f"{img.shape[0]} x {img.shape[1]} pixels; use a smaller patch")
        self.planes, self.patch, self.balance, self.rng = planes, patch, balance, rng
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

    def _corner(self, present: list[int]) -> tuple[int, int, int]:
        """Plane index and top-left corner of one patch."""
        p = self.patch
        if self.rng.random() < self.balance:
            pts = self.points[present[self.rng.integers(len(present))]]
            i, flat = pts[:, self.rng.integers(pts.shape[1])]
            shape = self.planes[i][1].shape
            cy, cx = np.unravel_index(flat, shape)
            y0 = int(np.clip(cy - p // 2 + self.rng.integers(-p // 4, p // 4 + 1), 0,
                             shape[0] - p))
            x0 = int(np.clip(cx - p // 2 + self.rng.integers(-p // 4, p // 4 + 1), 0,
                             shape[1] - p))
            return int(i), y0, x0
        i = self.rng.choice(len(self.planes), p=self.plane_p)
        shape = self.planes[i][1].shape
        y0 = int(self.rng.integers(shape[0] - p + 1))
        x0 = int(self.rng.integers(shape[1] - p + 1))
        return int(i), y0, x0

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images (n, 1, P, P) float32 and class indices (n, P, P) int64."""
        p = self.patch
        xs = np.empty((n, 1, p, p), np.float32)
        ys = np.empty((n, p, p), np.int64)
        present = [c for c in range(self.n_classes) if self.points[c].shape[1]]
        for k in range(n):
            i, y0, x0 = self._corner(present)
            img, lab = self.planes[i]
            xs[k, 0] = img[y0:y0 + p, x0:x0 + p]
            ys[k] = lab[y0:y0 + p, x0:x0 + p]
        return xs, ys


def _dihedral_batch(x: Any, y: Any, gen: Any) -> tuple[Any, Any]:
    """Each patch and its labels under one random rotation/flip of the 8."""
    ks = torch.randint(0, 8, (x.shape[0],), generator=gen)
    xs, ys = [], []
    for i in range(x.shape[0]):
        k = int(ks[i])
        xi, yi = x[i], y[i]
        if k >= 4:
            xi, yi = torch.flip(xi, (-1,)), torch.flip(yi, (-1,))
        xs.append(torch.rot90(xi, k % 4, (-2, -1)))
        ys.append(torch.rot90(yi, k % 4, (-2, -1)))
    return torch.stack(xs), torch.stack(ys)


def _elastic(x: Any, y: Any, strength: float, gen: Any) -> tuple[Any, Any]:
    """Smooth random displacement of at most ``strength`` pixels; labels by nearest neighbour."""
    n, _, p, _ = x.shape
    coarse = max(2, p // 16)
    disp = torch.randn((n, 2, coarse, coarse), generator=gen) * (strength / 2)
    disp = F.interpolate(disp, size=(p, p), mode="bicubic", align_corners=True)
    disp = disp.clamp(-strength, strength) * (2.0 / p)
    base = torch.linspace(-1, 1, p)
    gy, gx = torch.meshgrid(base, base, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None] + disp.permute(0, 2, 3, 1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    yf = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection",
                       align_corners=True)
    return x, yf[:, 0].round().long()


def augment(x: Any, y: Any, cfg: TrainConfig, gen: Any) -> tuple[Any, Any]:
    """Random dihedral transforms, elastic deformation, contrast/brightness and noise.

    Parameters
    ----------
    x : torch.Tensor
        (N, 1, P, P) float patches (normalised grey values).
    y : torch.Tensor
        (N, P, P) int64 class indices.
    cfg : TrainConfig
        Strengths: ``elastic`` (pixels), ``contrast`` (± relative), ``brightness`` and
        ``noise`` (normalised units).
    gen : torch.Generator
        Random source.
    """
    x, y = _dihedral_batch(x, y, gen)
    if cfg.elastic > 0:
        x, y = _elastic(x, y, cfg.elastic, gen)
    n = x.shape[0]
    gain = 1 + (torch.rand((n, 1, 1, 1), generator=gen) * 2 - 1) * cfg.contrast
    shift = (torch.rand((n, 1, 1, 1), generator=gen) * 2 - 1) * cfg.brightness
    sigma = torch.rand((n, 1, 1, 1), generator=gen) * cfg.noise
    x = x * gain + shift + torch.randn(x.shape, generator=gen) * sigma
    return x, y
