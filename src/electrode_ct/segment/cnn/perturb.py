"""Perturbed ground truth: move label interfaces by a voxel to model the labeller's bias.

Following SegmentPy's uncertainty study (Su et al. 2022): in each iteration a random
fraction of the interface voxels (voxels with a face neighbour of another class) takes the
class of one of those neighbours, so the interface is pushed or pulled by one voxel at
that place. Voxels away from interfaces never change; after ``iterations`` rounds no voxel
farther than ``iterations`` voxels from an original interface has changed. The value 0
(unlabelled) is never perturbed and never spreads.
"""

from __future__ import annotations

import numpy as np

from electrode_ct.errors import InputError


def _offsets(ndim: int, spatial_ndim: int) -> list[tuple[int, ...]]:
    """Face-neighbour offsets over the last ``spatial_ndim`` axes of an ``ndim`` array."""
    out = []
    for ax in range(ndim - spatial_ndim, ndim):
        for step in (-1, 1):
            off = [0] * ndim
            off[ax] = step
            out.append(tuple(off))
    return out


def _shifted(labels: np.ndarray, offset: tuple[int, ...]) -> np.ndarray:
    """``out[i] = labels[i + offset]``, 0 (unlabelled) outside the array."""
    out = np.zeros_like(labels)
    src = tuple(slice(max(o, 0), n + min(o, 0)) for o, n in zip(offset, labels.shape, strict=True))
    dst = tuple(slice(max(-o, 0), n + min(-o, 0))
                for o, n in zip(offset, labels.shape, strict=True))
    out[dst] = labels[src]
    return out


def _spatial_ndim(labels: np.ndarray, mode: str) -> int:
    if mode not in ("auto", "2d", "3d"):
        raise InputError(f"perturbation mode {mode!r}: expected 'auto', '2d' or '3d'")
    if labels.ndim == 2 or mode == "2d":
        return 2
    if labels.ndim != 3:
        raise InputError(f"labels: expected a 2-D or 3-D array, got shape {labels.shape}")
    if mode == "3d":
        return 3
    return 2 if labels.shape[0] == 1 else 3


def interface_mask(labels: np.ndarray, *, mode: str = "auto") -> np.ndarray:
    """Voxels with a face neighbour of another (non-zero) class.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels, 2-D (y, x) or 3-D (z, y, x); 0 = unlabelled (never an interface).
    mode : {"auto", "2d", "3d"}
        Neighbourhood: ``"2d"`` looks within each z-slice only (isolated slices); ``"auto"``
        is 3-D for a volume with more than one slice.

    Returns
    -------
    numpy.ndarray of bool
    """
    lab = np.asarray(labels)
    nd = _spatial_ndim(lab, mode)
    mask = np.zeros(lab.shape, bool)
    for off in _offsets(lab.ndim, nd):
        nb = _shifted(lab, off)
        mask |= (nb != lab) & (nb != 0)
    return mask & (lab != 0)


def perturb_once(labels: np.ndarray, *, fraction: float = 0.1, mode: str = "auto",
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """One perturbation round: a ``fraction`` of interface voxels take a neighbour's class.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels (0 = unlabelled), 2-D or 3-D.
    fraction : float
        Fraction (0–1] of the current interface voxels to change.
    mode : {"auto", "2d", "3d"}
        Neighbourhood (see :func:`interface_mask`).
    rng : numpy.random.Generator, optional
        Random source (default: seeded with 0).

    Returns
    -------
    numpy.ndarray
        New labels; exactly ``round(fraction * n_interface)`` voxels differ.
    """
    if not 0 < fraction <= 1:
        raise InputError(f"perturbation fraction: expected a value in (0, 1], got {fraction}")
    rng = rng if rng is not None else np.random.default_rng(0)
    lab = np.asarray(labels)
    nd = _spatial_ndim(lab, mode)
    offsets = _offsets(lab.ndim, nd)
    iface = np.flatnonzero(interface_mask(lab, mode=mode))
    n_pick = int(round(fraction * iface.size))
    out = lab.copy()
    if n_pick == 0:
        return out
    picked = rng.choice(iface, size=n_pick, replace=False)
    flat = lab.ravel()
    # candidate classes: each face neighbour of another non-zero class; pick one at random
    cand = np.stack([_shifted(lab, off).ravel()[picked] for off in offsets])
    valid = (cand != flat[picked]) & (cand != 0)
    score = np.where(valid, rng.random(cand.shape), -1.0)
    choice = score.argmax(axis=0)
    out.ravel()[picked] = cand[choice, np.arange(n_pick)]
    return out


def perturb_labels(labels: np.ndarray, *, fraction: float = 0.1, iterations: int = 5,
                   mode: str = "auto", seed: int = 0) -> np.ndarray:
    """Perturbed ground truth: ``iterations`` rounds of :func:`perturb_once`.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels (0 = unlabelled), 2-D (y, x) or 3-D (z, y, x).
    fraction : float
        Fraction of interface voxels moved per round (default 10 %).
    iterations : int
        Rounds (default 5); the interface moves at most this many voxels.
    mode : {"auto", "2d", "3d"}
        ``"2d"`` for a stack of isolated slices; ``"auto"`` is 3-D for volumes.
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray
        Perturbed labels, same shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.ones((8, 8), np.uint8); lab[:, 4:] = 2
    >>> out = perturb_labels(lab, fraction=0.5, iterations=1, seed=1)
    >>> int((out != lab).sum()), bool(((out != lab) & ~interface_mask(lab)).any())
    (8, False)
    """
    if iterations < 0:
        raise InputError(f"perturbation iterations: expected >= 0, got {iterations}")
    rng = np.random.default_rng(seed)
    out = np.asarray(labels).copy()
    for _ in range(int(iterations)):
        out = perturb_once(out, fraction=fraction, mode=mode, rng=rng)
    return out


def interface_frequency(labels: np.ndarray, *, n: int = 20, fraction: float = 0.1,
                        iterations: int = 5, mode: str = "auto", seed: int = 0) -> np.ndarray:
    """How often each voxel lies on an interface over ``n`` perturbed labellings.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels (0 = unlabelled).
    n : int
        Number of perturbed realisations.
    fraction, iterations, mode
        As for :func:`perturb_labels`.
    seed : int
        Seed of the first realisation (realisation ``i`` uses ``seed + i``).

    Returns
    -------
    numpy.ndarray of float32
        Frequency in [0, 1] with which each voxel is an interface voxel.
    """
    if n < 1:
        raise InputError(f"interface frequency: n must be >= 1, got {n}")
    acc = np.zeros(np.shape(labels), np.float32)
    for i in range(n):
        pert = perturb_labels(labels, fraction=fraction, iterations=iterations, mode=mode,
                              seed=seed + i)
        acc += interface_mask(pert, mode=mode)
    return acc / n
