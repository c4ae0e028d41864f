"""Tiled network inference with smooth blending; slice-wise or tri-planar for volumes.

Memory is bounded by one batch of tiles (or one stack of whole planes per thread,
:data:`PIXELS_PER_PASS` pixels) plus the output accumulator (K float32 per voxel): planes
larger than a tile are processed plane by plane and tile by tile; planes that fit one
tile are stacked several per forward pass, the stacks shared by a thread pool.
Prediction runs on eval copies of the networks with batch-norm folded into the
convolutions (:func:`~electrode_ct.segment.cnn.nets.fold_batch_norm`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.segment.cnn._torch import require_torch

torch = require_torch()

MODES = ("slice", "triplanar")


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    out = list(range(0, n - tile, stride))
    out.append(n - tile)
    return out


def _window(n: int, overlap: int) -> np.ndarray:
    """1-D blending weights: raised-cosine ramps of ``overlap`` samples at both ends."""
    w = np.ones(n, np.float32)
    ramp = min(overlap, n // 2)
    if ramp > 0:
        t = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        w[:ramp] = edge
        w[n - ramp:] = edge[::-1]
    return np.maximum(w, 1e-3)


def _dihedral(x: Any, k: int, inverse: bool = False) -> Any:
    """One of the 8 rotations/flips of the last two axes (``k`` in 0..7)."""
    rot, flip = k % 4, k >= 4
    if not inverse:
        if flip:
            x = torch.flip(x, dims=(-1,))
        return torch.rot90(x, rot, dims=(-2, -1))
    x = torch.rot90(x, -rot, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x

def as_members(net: Any) -> list[Any]:
    """The member networks of ``net``: a list/tuple of networks, or one network."""
    return list(net) if isinstance(net, (list, tuple)) else [net]


def evenly_spaced(n: int, m: int) -> np.ndarray:
    """At most ``m`` (at least 1) evenly spaced indices of ``range(n)``, increasing; all of
    them when ``n <= m``."""
    m = max(1, int(m))
    if n <= m:
        return np.arange(n)
    return np.linspace(0, n - 1, m).round().astype(np.intp)


def _run_batch(runs: list[tuple[Any, int]], batch: Any, device: Any,
               return_std: bool = False) -> tuple[Any, Any]:
    """Mean class probabilities (N, K, H, W) of a batch (N, 1, H, W) over the (member,
    dihedral transform) ``runs``, on the CPU, and the mean of their squares (or None)."""
    batch = batch.to(device, memory_format=torch.channels_last)
    mean = m2 = None
    for member, k in runs:
        prob = torch.softmax(member(_dihedral(batch, k)), dim=1)
        prob = _dihedral(prob, k, inverse=True).float().cpu()
        mean = prob if mean is None else mean + prob
        if return_std:
            m2 = prob ** 2 if m2 is None else m2 + prob ** 2
    return mean / len(runs), (m2 / len(runs) if return_std else None)


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 16 or overlap < 0 or overlap * 2 >= tile:
        raise InputError(f"tile {tile} / overlap {overlap}: expected tile >= 16 and "
                         "0 <= 2 * overlap < tile")


def predict_plane(net: Any, image: np.ndarray, *, tile: int = 256, overlap: int = 32,
                  batch_size: int = 4, device: Any = "cpu", transforms: int = 1,
                  return_std: bool = False) -> Any:
    """Class probabilities of one normalised 2-D image.

    Parameters
    ----------
    net : torch.nn.Module or sequence of torch.nn.Module
        Network in eval mode returning logits (N, K, H, W); several networks (an ensemble
        of members) have their probabilities averaged.
    image : numpy.ndarray
        Normalised 2-D image (y, x), float32.
    tile : int
        Tile edge in pixels (images up to this size are predicted whole).
    overlap : int
        Overlap of neighbouring tiles in pixels; blended with raised-cosine weights.
    batch_size : int
        Tiles per forward pass (memory bound).
    device : torch.device or str
        Compute device.
    transforms : int
        Test-time augmentation: number of dihedral transforms averaged (1 = none, up to 8).
    return_std : bool
        Also return the per-class standard deviation over the transforms (and members).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        Probabilities (K, y, x) float32 [and their std over the transforms and members].
    """
    if image.ndim != 2:
        raise InputError(f"predict_plane: expected a 2-D image, got shape {image.shape}")
    _check_tiling(tile, overlap)
    h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    ys = _starts(h, th, th - overlap)
    xs = _starts(w, tw, tw - overlap)
    wy = _window(th, overlap if len(ys) > 1 else 0)
    wx = _window(tw, overlap if len(xs) > 1 else 0)
    weight = torch.from_numpy(np.outer(wy, wx))
    transforms = max(1, min(8, int(transforms)))
    nets = as_members(net)
    runs = [(m, k) for m in nets for k in range(transforms)]
    acc = sq = None
    norm = torch.zeros((h, w))
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    coords = [(y, x) for y in ys for x in xs]
    with torch.inference_mode():
        for b in range(0, len(coords), batch_size):
            chunk = coords[b:b + batch_size]
            batch = torch.stack([img[y:y + th, x:x + tw] for y, x in chunk])[:, None]
            mean, m2 = _run_batch(runs, batch, device, return_std)
            if acc is None:
                acc = torch.zeros((mean.shape[1], h, w))
                sq = torch.zeros_like(acc) if return_std else None
            for (y, x), p in zip(chunk, mean, strict=True):
                acc[:, y:y + th, x:x + tw] += p * weight
                norm[y:y + th, x:x + tw] += weight
            if return_std:
                var = (m2 - mean ** 2).clamp_min(0)
                for (y, x), v in zip(chunk, var, strict=True):
                    sq[:, y:y + th, x:x + tw] += v.sqrt() * weight
    prob = (acc / norm).numpy().astype(np.float32)
    if return_std:
        return prob, (sq / norm).numpy().astype(np.float32)
    return prob


def predict_volume(net: Any, volume: np.ndarray, *, mode: str = "slice", axis: int = 0,
                   progress: Callable[[Any], Any] | None = None,
                   **options: Any) -> np.ndarray:
    """Class probabilities of a normalised (z, y, x) volume.

    Parameters
    ----------
    net : torch.nn.Module or sequence of torch.nn.Module
        Network(s) in eval mode (see :func:`predict_plane`).
    volume : numpy.ndarray
        Normalised volume (z, y, x), float32.
    mode : {"slice", "triplanar"}
        ``slice``: 2-D planes perpendicular to ``axis``; ``triplanar``: the mean of the
        probabilities from the z, y and x planes (a volume needs >= 2 voxels on every axis).
    axis : int
        Slicing axis for ``mode="slice"`` (0 = z, 1 = y, 2 = x).
    progress : callable, optional
        Wraps the plane iterator (e.g. a tqdm progress bar).
    **options
        Passed to :func:`predict_plane` (tile, overlap, batch_size, device, transforms).

    Returns
    -------
    numpy.ndarray
        Probabilities (K, z, y, x) float32.
    """
    if volume.ndim != 3:
        raise InputError(f"predict_volume: expected a (z, y, x) volume, got {volume.shape}")
    if mode not in MODES:
        raise InputError(f"prediction mode {mode!r}: expected one of {', '.join(MODES)}")
    if axis not in (0, 1, 2):
        raise InputError(f"slicing axis {axis}: expected 0 (z), 1 (y) or 2 (x)")
    axes = (0, 1, 2) if mode == "triplanar" else (axis,)
    options.pop("return_std", None)
    _check_tiling(options.get("tile", 256), options.get("overlap", 32))
    acc = None
    for ax in axes:
        plane_shape = [s for i, s in enumerate(volume.shape) if i != ax]
        if max(plane_shape) <= options.get("tile", 256):
            acc = _add_stacked(net, volume, ax, acc, progress=progress, **options)
            continue
        n = volume.shape[ax]
        planes = range(n) if progress is None else progress(range(n))
        for i in planes:
            sl = [slice(None)] * 3
            sl[ax] = i
            prob = predict_plane(net, volume[tuple(sl)], **options)
            if acc is None:
                acc = np.zeros((prob.shape[0], *volume.shape), np.float32)
            acc[(slice(None), *sl)] += prob
    if len(axes) > 1:
        acc /= np.float32(len(axes))
    return acc


PIXELS_PER_PASS = 1 << 18
"""Whole planes stacked into one forward pass: up to this many pixels (16 planes of 128²).
One plane per pass left 2 torch threads mostly waiting on each other (0.85 Mvoxel/s
tri-planar at 128³; docs/particles.md)."""


def _add_stacked(net: Any, volume: np.ndarray, ax: int, acc: np.ndarray | None, *,
                 progress: Callable[[Any], Any] | None = None, device: Any = "cpu",
                 transforms: int = 1, **_: Any) -> np.ndarray:
    """Add the class probabilities of the planes perpendicular to ``ax`` to ``acc``
    (K, z, y, x; created when None), several whole planes per forward pass.

    The same numbers as :func:`predict_plane` plane by plane when a plane fits one tile
    (its blending weights are then all 1)."""
    planes = np.moveaxis(volume, ax, 0)
    n, h, w = planes.shape
    step = max(1, PIXELS_PER_PASS // (h * w))
    runs = [(m, k) for m in as_members(net) for k in range(max(1, min(8, int(transforms))))]
    starts = range(0, n, step)
    if acc is None:
        k = _run_batch(runs, torch.zeros((1, 1, 16, 16)), device)[0].shape[1]
        acc = np.zeros((k, *volume.shape), np.float32)
    view = np.moveaxis(acc, ax + 1, 1)

    def one(i: int) -> None:
        with torch.inference_mode():
            chunk = torch.from_numpy(np.ascontiguousarray(planes[i:i + step],
                                                          dtype=np.float32))
            prob = _run_batch(runs, chunk[:, None], device)[0].numpy()
        view[:, i:i + step] += prob.transpose(1, 0, 2, 3)

    _parallel(one, starts if progress is None else progress(starts))
    return acc


def _parallel(fn: Callable[[int], None], items: Any) -> None:
    """``fn`` on each item, on torch's thread count of Python threads with one torch thread
    each (the stacks are independent: no barrier between threads). On the shared 2-core
    machine (load 12-16) this ran tri-planar prediction at 0.36 Mvoxel/s against 0.10 with
    2 torch threads on each stack (docs/particles.md); the numbers are the same."""
    threads = torch.get_num_threads()
    if threads == 1:
        for i in items:
            fn(i)
        return
    from concurrent.futures import ThreadPoolExecutor

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, items))
    finally:
        torch.set_num_threads(threads)
