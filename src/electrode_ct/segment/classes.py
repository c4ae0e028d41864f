"""Phase codes of classical segmentations: 0..N−1 ordered by mean grey level, with names."""

from __future__ import annotations

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.volume import default_class_map


def check_classes(classes: int, *, name: str = "classes", maximum: int = 255) -> int:
    """Check a class count (2..255) and return it as an int.

    Raises
    ------
    InputError
        Fewer than 2 classes or more than ``maximum``.
    """
    try:
        n = int(classes)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a whole number of classes, got {classes!r}") from None
    if n != classes or n < 2:
        raise InputError(f"{name}: need at least 2 classes, got {classes!r}")
    if n > maximum:
        raise InputError(f"{name}: at most {maximum} classes are supported, got {n}")
    return n


def order_by_grey(labels: np.ndarray, image: np.ndarray, *, classes: int) -> np.ndarray:
    """Renumber labels 0..N−1 so that the codes increase with the mean grey level.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels in ``0 .. classes−1`` (any order), same shape as ``image``.
    image : numpy.ndarray
        The grey image the labels were made from.
    classes : int
        Number of classes N. Classes absent from ``labels`` keep their relative order
        after the present ones of lower code.

    Returns
    -------
    numpy.ndarray
        uint8 labels; code 0 has the lowest mean grey level.
    """
    lab = np.asarray(labels).ravel().astype(np.intp, copy=False)
    counts = np.bincount(lab, minlength=classes)[:classes]
    sums = np.bincount(lab, weights=np.asarray(image, np.float64).ravel(), minlength=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[:classes] / counts
    # absent classes: sort by their code, after everything (stable and deterministic)
    key = np.where(counts > 0, means, np.inf)
    order = np.argsort(key, kind="stable")
    lut = np.empty(classes, np.uint8)
    lut[order] = np.arange(classes, dtype=np.uint8)
    return lut[np.asarray(labels)]


def class_map(classes: int) -> dict[str, int]:
    """Class map (name -> code) of a classical segmentation with ``classes`` phases.

    Three classes are pore, cbd, active (the project default); two are pore, active;
    other counts are ``phase0 .. phase{N−1}``.
    """
    return default_class_map(check_classes(classes))
