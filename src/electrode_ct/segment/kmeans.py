"""k-means clustering of voxels on (grey level, Sobel gradient magnitude)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from electrode_ct.filters._checks import as_float, check_image
from electrode_ct.segment.classes import check_classes, order_by_grey
from electrode_ct.segment.watershed import gradient_magnitude


def kmeans(
    image: np.ndarray,
    *,
    classes: int = 3,
    seed: int = 0,
    gradient_weight: float = 0.5,
    sigma: float = 1.0,
    max_samples: int = 200_000,
) -> np.ndarray:
    """Cluster voxels into N phases with k-means on grey level and gradient magnitude.

    Both features are standardised (zero mean, unit σ); the gradient is multiplied by
    ``gradient_weight`` so that it can separate interface voxels without dominating the
    grey level. The centres are fitted on a seeded random sample of at most
    ``max_samples`` voxels and every voxel is then assigned to its nearest centre.

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
        Number of voxels used to fit the centres.

    Returns
    -------
    numpy.ndarray
        uint8 phase codes 0..N−1 ordered by mean grey level.

    Raises
    ------
    InputError
        Fewer than 2 classes, NaN or empty image.
    """
    img = as_float(check_image(image))
    n = check_classes(classes)
    grey = img.ravel()
    grad = gradient_magnitude(img, sigma=sigma).ravel()
    feats = np.empty((grey.size, 2), np.float32)
    for j, f in enumerate((grey, grad)):
        sd = float(f.std()) or 1.0
        feats[:, j] = (f - float(f.mean())) / sd
    feats[:, 1] *= float(gradient_weight)
    rng = np.random.default_rng(seed)
    sample = feats
    if grey.size > max_samples:
        sample = feats[rng.choice(grey.size, size=max_samples, replace=False)]
    model = KMeans(n_clusters=n, n_init=4, random_state=seed).fit(sample)
    centres = model.cluster_centers_.astype(np.float32)
    # nearest centre for every voxel, in blocks to bound memory
    lab = np.empty(grey.size, np.uint8)
    step = 1 << 20
    c2 = (centres**2).sum(axis=1)
    for start in range(0, grey.size, step):
        block = feats[start:start + step]
        d = c2[None, :] - 2.0 * block @ centres.T
        lab[start:start + step] = np.argmin(d, axis=1)
    return order_by_grey(lab.reshape(img.shape), img, classes=n)
