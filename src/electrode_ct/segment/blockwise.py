"""Thresholds and k-means on the out-of-core engine (Zarr in, Zarr out).

Both follow the same plan: a reduction over blocks (:func:`compute.reduce_blocks`)
gives what the in-memory function computes from the whole image, merged exactly, and the
same code as in memory derives the parameters from it; the labels are then applied block
by block (:func:`compute.run_blocks`) with the halo the per-voxel rule reads.

- :func:`threshold_blockwise`: the value range (min / max) and the fine histogram in
  its fixed layout (:mod:`electrode_ct.histogram`) are summed over blocks, and
  :func:`threshold.cuts_from_histogram` gives the cuts (identical to the in-memory
  ones); the cuts are applied with halo 0. ``two_d`` runs on blocks of whole slices
  (each slice's cuts from its own histogram). Hysteresis labels by 3-D connectivity and
  is refused here (it runs per slice with ``two_d``).
- :func:`kmeans_blockwise`: the hashed voxel sample of :mod:`segment.kmeans` is
  gathered from every block, the centres are fitted on it, and every voxel is assigned
  with the gradient's halo (Gaussian radius + 1 for the Sobel stencil).

A seeded watershed floods each connected region of undecided voxels from the seeds
around it, and that region can cross the whole volume: no halo derived from the
parameters bounds it, so it is not offered blockwise (see ``docs/scale.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import ZarrRef, reduce_blocks, run_blocks
from electrode_ct.errors import InputError
from electrode_ct.histogram import Bins, bins_for, histogram, value_range
from electrode_ct.segment import kmeans as km
from electrode_ct.segment.threshold import (
    NBINS,
    cuts_from_histogram,
    label_slab,
    needs_histogram,
    threshold_values,
)

Source = ZarrRef | np.ndarray
Progress = Callable[[Iterable[Any]], Iterable[Any]] | None


def _open(src: Source) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def slab_shape(shape: Sequence[int], block_shape: Sequence[int],
               axis: int = 0) -> tuple[int, int, int]:
    """Blocks of whole planes perpendicular to ``axis`` (default z slices):
    ``block_shape``'s side along ``axis``, the volume's extent along the two others."""
    out = [int(n) for n in shape]
    out[axis] = max(1, min(int(block_shape[axis]), int(shape[axis])))
    return (out[0], out[1], out[2])


# -- reductions ------------------------------------------------------------------------
def _range_part(region: np.ndarray, block: Block) -> tuple[float, float]:
    return value_range(region[block.interior])


def _hist_part(region: np.ndarray, block: Block, *, bins: Bins) -> np.ndarray:
    v = region[block.interior]
    return histogram(v.astype(np.uint8) if v.dtype == bool else v, bins)


def grey_histogram_blockwise(src: Source, *, block_shape: Sequence[int], client: Any = None,
                             progress: Progress = None
                             ) -> tuple[tuple[np.ndarray, Bins], tuple[float, float]]:
    """The fine histogram and value range of a volume, summed over blocks.

    Returns
    -------
    ((numpy.ndarray, Bins), (float, float))
        The counts and layout :func:`electrode_ct.histogram.image_histogram` gives for the
        whole volume (bitwise), and its minimum and maximum grey level.
    """
    kw = {"block_shape": block_shape, "client": client, "progress": progress}
    parts = reduce_blocks(_range_part, src, **kw)
    lo, hi = min(p[0] for p in parts), max(p[1] for p in parts)
    bins = bins_for(lo, hi, integer=_open(src).dtype.kind in "uib")
    counts = np.sum(reduce_blocks(partial(_hist_part, bins=bins), src, **kw), axis=0)
    return (counts, bins), (lo, hi)


def _slice_cuts_part(region: np.ndarray, block: Block, *, options: dict[str, Any]
                     ) -> np.ndarray:
    return np.stack([threshold_values(plane, **options) for plane in region])


def _count_part(region: np.ndarray, block: Block) -> np.ndarray:
    return np.bincount(np.asarray(region[block.interior], np.uint8).ravel(), minlength=256)


def label_counts(labels: Source, *, block_shape: Sequence[int], client: Any = None,
                 progress: Progress = None) -> np.ndarray:
    """Voxels of every value 0..255 of a uint8 label volume (int64, 256), summed over
    blocks."""
    return np.sum(reduce_blocks(_count_part, labels, block_shape=block_shape, client=client,
                                progress=progress), axis=0)


# -- threshold -------------------------------------------------------------------------
def _apply_part(region: np.ndarray, block: Block, *, cuts: np.ndarray,
                method: str) -> np.ndarray:
    c = cuts if cuts.ndim == 1 else cuts[block.write[0]]
    return label_slab(region, c, method)


def threshold_bytes_per_voxel(dtype: Any) -> float:
    """Working memory of applying cuts per voxel: the grey block, a comparison mask and
    the uint8 codes."""
    return float(np.dtype(dtype).itemsize) + 2.0


def check_engine_threshold(method: str, two_d: bool) -> bool:
    """True when ``method`` runs blockwise; hysteresis in 3-D raises (before any work).

    Raises
    ------
    InputError
        ``hysteresis`` without ``two_d``: it labels by 3-D connectivity.
    """
    if not two_d and str(method).lower() == "hysteresis":
        raise InputError("method: hysteresis labels by 3-D connectivity and does not run "
                         "blockwise; run it in memory (no compute options) or with --2d")
    return True


def threshold_blockwise(src: Source, dst: ZarrRef | np.ndarray, *, method: str = "otsu",
                        classes: int | None = None,
                        thresholds: Sequence[float] | None = None,
                        fractions: Sequence[float] | None = None, offset: float = 0.0,
                        two_d: bool = False, nbins: int = NBINS,
                        block_shape: Sequence[int], client: Any = None,
                        progress: Progress = None, resume: bool = True) -> np.ndarray:
    """:func:`threshold.threshold_with_cuts` on the engine: labels into ``dst``, cuts back.

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        Grey volume (z, y, x) (numpy only with ``client=None``).
    dst : ZarrRef or numpy.ndarray
        uint8 labels of the same shape, created by the caller (chunks dividing the
        blocks; with ``two_d`` the blocks are :func:`slab_shape`).
    method, classes, thresholds, fractions, offset, two_d, nbins
        As in :func:`threshold.threshold`.
    block_shape : sequence of int
        Block shape (z, y, x) in voxels; with ``two_d`` only its z side is used.
    client : distributed.Client, optional
        One task per block on the cluster; ``None`` runs serially here.
    progress : callable, optional
        Wraps each pass over the blocks (e.g. a tqdm bar).
    resume : bool
        Skip label blocks finished by an earlier run into the same ``dst``.

    Returns
    -------
    numpy.ndarray
        The cut values, identical to the in-memory ones: (n_cuts,) or, with ``two_d``,
        (n_slices, n_cuts).

    Raises
    ------
    InputError
        ``hysteresis`` without ``two_d``; otherwise as :func:`threshold.threshold`.
    """
    shape = tuple(int(n) for n in _open(src).shape)
    opts = {"method": method, "classes": classes, "thresholds": thresholds,
            "fractions": fractions, "offset": offset, "nbins": nbins}
    run = {"client": client, "progress": progress}
    if two_d:
        block_shape = slab_shape(shape, block_shape)
        cuts = np.concatenate(reduce_blocks(partial(_slice_cuts_part, options=opts), src,
                                            block_shape=block_shape, **run))
    elif check_engine_threshold(method, two_d) and needs_histogram(method, thresholds):
        hist, rng = grey_histogram_blockwise(src, block_shape=block_shape, **run)
        cuts = cuts_from_histogram(hist if rng[0] < rng[1] else None, rng, **opts)
    else:
        parts = reduce_blocks(_range_part, src, block_shape=block_shape, **run)
        rng = (min(p[0] for p in parts), max(p[1] for p in parts))
        cuts = cuts_from_histogram(None, rng, **opts)
    run_blocks(partial(_apply_part, cuts=cuts, method=method), src, dst,
               block_shape=block_shape, resume=resume,
               bytes_per_voxel=threshold_bytes_per_voxel(_open(src).dtype), **run)
    return cuts


# -- k-means ---------------------------------------------------------------------------
def _sample_part(region: np.ndarray, block: Block, *, shape: tuple[int, ...], sigma: float,
                 seed: int, rate: float) -> np.ndarray:
    return km.sample_features(region, block, shape=shape, sigma=sigma, seed=seed, rate=rate)


def _assign_part(region: np.ndarray, block: Block, *, fit: km.KMeansFit,
                 sigma: float) -> np.ndarray:
    grey, grad = km.features(region, sigma=sigma)
    return block.crop(km.assign(grey, grad, fit))


def kmeans_blockwise(src: Source, dst: ZarrRef | np.ndarray, *, classes: int = 3,
                     seed: int = 0, gradient_weight: float = 0.5, sigma: float = 1.0,
                     max_samples: int = km.MAX_SAMPLES, block_shape: Sequence[int],
                     client: Any = None, progress: Progress = None,
                     resume: bool = True) -> km.KMeansFit:
    """:func:`segment.kmeans.kmeans` on the engine: identical labels into ``dst``.

    Parameters
    ----------
    src, dst, block_shape, client, progress, resume
        As in :func:`threshold_blockwise` (``dst`` uint8, same shape as ``src``).
    classes, seed, gradient_weight, sigma, max_samples
        As in :func:`segment.kmeans.kmeans`.

    Returns
    -------
    KMeansFit
        The standardisation and the centres, as the in-memory fit gives them.
    """
    shape = tuple(int(n) for n in _open(src).shape)
    halo = km.halo(sigma)
    run = {"client": client, "progress": progress}
    rate = km.sample_rate(shape, max_samples)
    parts = reduce_blocks(partial(_sample_part, shape=shape, sigma=sigma, seed=seed,
                                  rate=rate), src, block_shape=block_shape, halo=halo, **run)
    fit = km.fit_sample(np.concatenate(parts, axis=0), classes=classes, seed=seed,
                        gradient_weight=gradient_weight)
    run_blocks(partial(_assign_part, fit=fit, sigma=sigma), src, dst,
               block_shape=block_shape, halo=halo, resume=resume,
               bytes_per_voxel=km.BYTES_PER_VOXEL, **run)
    return fit
