"""Input checks shared by the metrics modules: label arrays, phase selection, axes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.compare import _as_int_labels
from electrode_ct.volume import resolve_phase

AXIS_NAMES: dict[str, int] = {"z": 0, "y": 1, "x": 2}
"""Axis names used in options and JSON keys → array axis (x, y, z are axes 2, 1, 0)."""


def axis_index(axis: str | int, *, ndim: int = 3) -> int:
    """Array axis of ``"x"``/``"y"``/``"z"`` or an integer axis.

    Raises
    ------
    InputError
        For anything else.
    """
    if isinstance(axis, str) and axis.strip().lower() in AXIS_NAMES:
        return AXIS_NAMES[axis.strip().lower()]
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and 0 <= axis < ndim:
        return int(axis)
    raise InputError(f"axis: expected x, y, z or an integer 0..{ndim - 1}, got {axis!r}")


def axis_name(axis: int) -> str:
    """``"z"``, ``"y"`` or ``"x"`` for array axis 0, 1, 2."""
    return "zyx"[axis]


def label_array(labels: Any, *, name: str = "phases", ndim3: bool = False) -> np.ndarray:
    """The labels as an integer/boolean numpy array; checks dimensionality.

    Parameters
    ----------
    labels : array-like
        Integer or boolean labels.
    name : str
        Parameter name for messages.
    ndim3 : bool
        Require a 3-D array with at least 2 voxels along every axis.
    """
    a = _as_int_labels(labels, name)
    if ndim3 and (a.ndim != 3 or min(a.shape) < 2):
        raise ShapeError(
            f"{name}: expected a 3-D volume (z, y, x) with at least 2 voxels along every "
            f"axis, got shape {a.shape}"
        )
    return a


def phase_mask(
    labels: Any,
    phase: str | int | None = None,
    *,
    class_map: Mapping[str, int] | None = None,
    name: str = "phases",
    ndim3: bool = False,
) -> np.ndarray:
    """Boolean mask of one phase.

    Parameters
    ----------
    labels : array-like
        Label array, or a boolean mask when ``phase`` is None.
    phase : str or int, optional
        Class name (looked up in ``class_map``) or label value.
    class_map : mapping, optional
        name -> value.
    name : str
        Parameter name for messages.
    ndim3 : bool
        Require a 3-D volume (see :func:`label_array`).

    Raises
    ------
    InputError
        When the phase is unknown or absent from the volume.
    """
    a = label_array(labels, name=name, ndim3=ndim3)
    if phase is None:
        if a.dtype != bool:
            raise InputError(f"{name}: give a phase (name or value) or pass a boolean mask")
        return a
    value = resolve_phase(phase, class_map, where="--phase")
    mask = a == value
    if not mask.any():
        present = np.unique(a).tolist()
        raise InputError(
            f"--phase: phase {phase!r} (value {value}) is absent from {name}; "
            f"values present: {present[:20]}"
        )
    return mask
