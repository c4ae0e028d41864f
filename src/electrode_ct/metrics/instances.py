"""Instance-segmentation metrics: IoU matching, precision/recall/F1, COCO-style AP, splits/merges.

Predicted and reference particle label volumes are compared through a sparse
contingency table (one ``bincount`` over the pairs of labels that overlap), never a
loop over particles. See ``docs/particles.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
"""The COCO IoU thresholds 0.50:0.05:0.95."""


def check_labels(
    labels: Any, *, name: str = "labels", ndim: tuple[int, ...] = (2, 3)
) -> np.ndarray:
    """Return a label array as numpy, checking it is an integer array of the right rank.

    Parameters
    ----------
    labels : array-like
        Particle label image (0 = background).
    name : str
        Parameter or file name used in error messages.
    ndim : tuple of int
        Accepted numbers of dimensions.

    Raises
    ------
    InputError
        When the dtype is not integer (or bool) or the values are negative.
    ShapeError
        When the number of dimensions is not one of ``ndim``.
    """
    arr = np.asarray(getattr(labels, "data", labels))
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{name}: a label volume must have an integer dtype, got {arr.dtype} "
            "(round or convert the particle ids first)"
        )
    if arr.ndim not in ndim:
        want = " or ".join(f"{n}-D" for n in ndim)
        raise ShapeError(f"{name}: expected a {want} label array, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and arr.min() < 0:
        raise InputError(f"{name}: particle labels must be >= 0, got minimum {int(arr.min())}")
    return arr
