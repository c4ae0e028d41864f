"""k-means clustering of voxels on (grey level, Sobel gradient magnitude).

The fit reads a *hashed sample*: voxel i (its flat index in the whole image) is drawn
when a seeded 64-bit hash of i falls below ``rate`` (about ``max_samples`` voxels in
all). Which voxels are drawn depends only on their position, never on how the image is
split into blocks, so the out-of-core path (:func:`segment.blockwise.kmeans_blockwise`)
gathers the same sample block by block and gets the same centres and labels. The
features are standardised by the sample's mean and σ, every voxel goes to its nearest
centre (elementwise distances, no matrix product whose rounding could depend on the
block), and the codes are ordered by the centres' grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from electrode_ct.blocks import Block
from electrode_ct.filters._checks import as_float, check_image
from electrode_ct.segment.classes import check_classes
from electrode_ct.segment.watershed import gradient_magnitude

MAX_SAMPLES = 200_000
"""Default number of voxels (on average) the centres are fitted on."""

BYTES_PER_VOXEL = 40.0
"""Working memory of the assignment per voxel of a block plus halo: the float32 grey,
smoothed and gradient images, two standardised copies, distances and codes."""

TRUNCATE = 4.0
"""Gaussian truncation (σ) of :func:`gradient_magnitude` (scipy's default)."""

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class KMeansFit:
    """Standardisation and centres of a k-means fit.

    Attributes
    ----------
    mean, sd : numpy.ndarray
        Mean and σ of (grey, gradient) over the sample (float64, 2 values each).
    weight : float
        Factor on the standardised gradient.
    centres : numpy.ndarray
        (N, 2) float32 centres in standardised units, ordered by grey level (code k is
        row k).
    """

    mean: np.ndarray
    sd: np.ndarray
    weight: float
    centres: np.ndarray


def halo(sigma: float) -> int:
    """Voxels of context the gradient feature reads: Gaussian radius + 1 (Sobel)."""
    return (int(TRUNCATE * float(sigma) + 0.5) if sigma > 0 else 0) + 1


def features(image: np.ndarray, *, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and Sobel gradient magnitude (float32 or float64, shape of ``image``)."""
    img = as_float(np.asarray(image))
    return img, gradient_magnitude(img, sigma=sigma)


def sample_rate(shape: tuple[int, ...], max_samples: int) -> float:
    """Probability of drawing a voxel: ``max_samples`` of the image on average."""
    return min(1.0, float(max_samples) / max(1, int(np.prod(shape))))


def _drawn(flat: np.ndarray, seed: int, rate: float) -> np.ndarray:
    """Whether each flat index is drawn (splitmix64 hash of index and seed)."""
    if rate >= 1.0:
        return np.ones(flat.shape, bool)
    with np.errstate(over="ignore"):
        z = flat.astype(np.uint64) + (np.uint64(int(seed) % (1 << 63))
                                      * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    z ^= z >> np.uint64(31)
    return z < np.uint64(min(int(rate * 2.0**64), 2**64 - 1))


def _sample_rows(grey: np.ndarray, grad: np.ndarray, write: tuple[slice, ...],
                 shape: tuple[int, ...], seed: int, rate: float) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(s.start, s.stop) for s in write), indexing="ij")
    flat = np.ravel_multi_index(tuple(grids), shape).ravel()
    pick = np.flatnonzero(_drawn(flat, seed, rate))
    return np.stack([flat[pick].astype(np.float64), grey.ravel()[pick].astype(np.float64),
                     grad.ravel()[pick].astype(np.float64)], axis=1)


def sample_features(region: np.ndarray, block: Block, *, shape: tuple[int, ...],
                    sigma: float, seed: int, rate: float) -> np.ndarray:
    """The drawn voxels of a block's interior: (n, 3) float64 rows (flat index, grey,
    gradient), in increasing flat index.

    Parameters
    ----------
    region : numpy.ndarray
        The block plus the :func:`halo` (``block.read``).
    block : Block
        Its geometry in the whole image of shape ``shape``.
    shape : tuple of int
        Shape of the whole image.
    sigma, seed : float, int
        As in :func:`kmeans`.
    rate : float
        :func:`sample_rate`.
    """
    check_image(block.crop(region), name="image")  # NaN / inf refused as in memory
    grey, grad = features(region, sigma=sigma)
    return _sample_rows(block.crop(grey), block.crop(grad), block.write, shape, seed, rate)


def fit_sample(rows: np.ndarray, *, classes: int, seed: int,
               gradient_weight: float) -> KMeansFit:
    """Fit the centres on sample rows from :func:`sample_features` (any block order).

    Raises
    ------
    InputError
        Fewer than 2 classes.
    """
    n = check_classes(classes)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]  # the image's order, whatever the blocks
    vals = rows[:, 1:]
    mean = vals.mean(axis=0)
    sd = vals.std(axis=0)
    sd[sd == 0] = 1.0
    feats = ((vals - mean) / sd).astype(np.float32)
    feats[:, 1] *= np.float32(gradient_weight)
    centres = KMeans(n_clusters=n, n_init=4, random_state=seed).fit(feats).cluster_centers_
    centres = centres[np.argsort(centres[:, 0], kind="stable")].astype(np.float32)
    return KMeansFit(mean, sd, float(gradient_weight), centres)


def assign(grey: np.ndarray, grad: np.ndarray, fit: KMeansFit) -> np.ndarray:
    """Code (uint8) of the nearest centre of every voxel (elementwise float32 distances)."""
    g = ((grey - fit.mean[0]) / fit.sd[0]).astype(np.float32)
    w = ((grad - fit.mean[1]) / fit.sd[1]).astype(np.float32) * np.float32(fit.weight)
    best = np.full(g.shape, np.inf, np.float32)
    out = np.zeros(g.shape, np.uint8)
    for k, (c0, c1) in enumerate(fit.centres):
        d = (g - c0) ** 2 + (w - c1) ** 2
        closer = d < best
        out[closer] = k
        best[closer] = d[closer]
    return out


def kmeans(
    image: np.ndarray,
    *,
    classes: int = 3,
    seed: int = 0,
    gradient_weight: float = 0.5,
    sigma: float = 1.0,
    max_samples: int = MAX_SAMPLES,
) -> np.ndarray:
    """Cluster voxels into N phases with k-means on grey level and gradient magnitude.

    Both features are standardised (zero mean, unit σ over the sample); the gradient is
    multiplied by ``gradient_weight`` so that it can separate interface voxels without
    dominating the grey level. The centres are fitted on the hashed sample (module
    notes) of about ``max_samples`` voxels and every voxel is then assigned to its
    nearest centre.

    Parameters
    ----------
    image : numpy.ndarray
        Grey-level image, 2-D or 3-D (z, y, x); no NaN.
    classes : int
        Number of phases N (>= 2).
    seed : int
        Random seed of the sampling and of the k-means initialisation.
    gradient_weight : float
        Weight of the standardised gradient feature (0 = grey level only).
    sigma : float
        Gaussian smoothing (voxels) before the Sobel gradient.
    max_samples : int
        Number of voxels (on average) used to fit the centres.

    Returns
    -------
    numpy.ndarray
        uint8 phase codes 0..N−1 ordered by the centres' grey level.

    Raises
    ------
    InputError
        Fewer than 2 classes, NaN or empty image.
    """
    img = check_image(image)
    check_classes(classes)
    grey, grad = features(img, sigma=sigma)
    rows = _sample_rows(grey, grad, tuple(slice(0, n) for n in img.shape), img.shape, seed,
                        sample_rate(img.shape, max_samples))
    fit = fit_sample(rows, classes=classes, seed=seed, gradient_weight=gradient_weight)
    return assign(grey, grad, fit)
