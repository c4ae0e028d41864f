"""Training labels of a forest: threshold seeds (Bailey et al.'s ML1–ML3), a user's
scribbles and further strokes (the correction loop) drawn over each other in that order,
and the regions to label next from a trained model's uncertainty.

Shared by ``ect segment train-forest`` and the pipeline's segment step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.segment.scribbles import (
    ML_VARIANTS,
    merge_scribbles,
    seed_slices,
    threshold_seeds,
    uncertain_regions,
)

SEED_METHODS = ("multiotsu", "otsu", "li", "triangle")
"""Threshold methods that give the seeds' cuts, besides explicit grey levels."""


def seed_cuts(image: np.ndarray, thresholds: str | Sequence[float], *,
              n_classes: int | None = None) -> list[float]:
    """The seeds' cut values: grey levels as given, or a method's on the whole image.

    Parameters
    ----------
    image : numpy.ndarray
        Grey volume.
    thresholds : str or sequence of float
        Cut values (or their text ``"85,160"``), or one of :data:`SEED_METHODS`.
    n_classes : int, optional
        Classes for ``multiotsu`` (default 3); the other methods give 2.
    """
    from electrode_ct.segment.threshold import threshold_values

    text = thresholds.strip().lower() if isinstance(thresholds, str) else None
    if text is not None and text not in SEED_METHODS:
        try:
            thresholds = [float(p) for p in text.replace(",", " ").split()]
        except ValueError:
            thresholds = []
        if not thresholds:
            raise InputError("--seed-thresholds: expected cut values or one of "
                             f"{', '.join(SEED_METHODS)}, got {text!r}")
    if text not in SEED_METHODS:
        return sorted(float(c) for c in thresholds)
    classes = n_classes or (3 if text == "multiotsu" else 2)
    if text != "multiotsu" and classes != 2:
        raise InputError(f"--seed-thresholds {text}: gives 2 classes, but {classes} class "
                         "names were given")
    return [float(c) for c in threshold_values(image, method=text, classes=classes)]


def seed_labels(image: np.ndarray, *, variant: str, thresholds: str | Sequence[float],
                slices: str | None = None, margin: float | None = None,
                n_classes: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Threshold seeds of a (z, y, x) image and their description.

    Returns
    -------
    seeds : numpy.ndarray
        uint8 labels (0 unlabelled, 1..K by grey level), see :func:`threshold_seeds`.
    info : dict
        ``variant``, ``thresholds``, ``slices``, ``margin``, ``n_seeded``.
    """
    v = str(variant).strip().upper()
    if v not in ML_VARIANTS:
        raise InputError(f"--seeded: expected one of {', '.join(ML_VARIANTS)}, got {variant!r}")
    if margin is not None and not (np.isfinite(margin) and margin >= 0):
        raise InputError(f"--seed-margin: expected grey levels >= 0, got {margin}")
    cuts = seed_cuts(image, thresholds, n_classes=n_classes)
    zs = seed_slices(image.shape[0], slices, variant=v)
    seeds = threshold_seeds(image, cuts, variant=v, margin=margin, slices=zs)
    return seeds, {"variant": v, "thresholds": cuts, "slices": zs.tolist(), "margin": margin,
                   "n_seeded": int(np.count_nonzero(seeds))}


def merged_labels(shape: Sequence[int], *, seeds: np.ndarray | None = None,
                  scribbles: np.ndarray | None = None,
                  added: Sequence[tuple[str, np.ndarray]] = ()) -> tuple[np.ndarray, dict]:
    """Seeds, then scribbles, then each added stroke set drawn over what came before.

    Parameters
    ----------
    shape : 3 ints
        The image's shape.
    seeds, scribbles : numpy.ndarray, optional
        Labels (0 = unlabelled) of that shape.
    added : sequence of (name, numpy.ndarray)
        The correction rounds in order (name: the file, for messages).

    Returns
    -------
    labels : numpy.ndarray
        uint8 training labels.
    info : dict
        ``n_labelled``, ``n_added`` (voxels the added strokes label), ``n_relabelled`` (of
        those, voxels that had another label before).
    """
    shape = tuple(int(s) for s in shape)
    lab = np.zeros(shape, np.uint8) if seeds is None else np.asarray(seeds, np.uint8)
    if scribbles is not None:
        lab = merge_scribbles(lab, _shaped(scribbles, shape, "scribbles"))
    before = lab
    for name, strokes in added:
        lab = merge_scribbles(lab, _shaped(strokes, shape, f"{name}: added strokes"))
    changed = lab != before
    return lab, {"n_labelled": int(np.count_nonzero(lab)),
                 "n_added": int(np.count_nonzero(changed)),
                 "n_relabelled": int(np.count_nonzero(changed & (before > 0)))}


def _shaped(arr: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(arr)
    a = a[None] if a.ndim == 2 else a
    if a.shape != shape:
        raise ShapeError(f"{what} have shape {a.shape} but the image has shape {shape}; "
                         "expected the same shape")
    return a


def next_regions(model: Any, image: Any, *, n: int = 5,
                 size: int = 32) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The ``n`` windows (edge ``size``) of highest mean uncertainty of ``model`` on
    ``image``, highest first, and the uncertainty map (normalised entropy)."""
    if n < 1 or size < 1:
        raise InputError(f"--next-n / --next-size: expected at least 1, got {n} / {size}")
    unc = np.asarray(model.predict(image, uncertainty=True).uncertainty)
    return uncertain_regions(unc, n=n, size=size), unc


def regions_table(regions: Sequence[dict[str, Any]]) -> Any:
    """The regions to label next as a points table: ``rank, z, y, x, mean_uncertainty``."""
    import pandas as pd

    table = pd.DataFrame(list(regions), columns=["z", "y", "x", "mean_uncertainty"])
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
