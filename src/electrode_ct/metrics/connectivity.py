"""Connectivity of a phase: percolating (face-to-face) fraction per direction, isolated clusters.

Clusters are 6-connected (face neighbours), the connectivity through which diffusion
and conduction pass in the finite-volume tortuosity solver; ``connectivity=18`` or ``26``
can be asked for. A cluster *percolates* along an axis when it touches both opposite
faces of the volume along that axis. A cluster is *isolated* when it touches no face at
all (it can neither be reached nor drained from outside the volume).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cc3d
import numpy as np

from electrode_ct.metrics._phase import axis_index, axis_name, phase_mask


def _face_labels(labels: np.ndarray, axis: int, side: int) -> np.ndarray:
    sl = [slice(None)] * labels.ndim
    sl[axis] = 0 if side == 0 else -1
    return np.unique(labels[tuple(sl)])


def _spanning_lut(labels: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Boolean look-up table: label → touches both faces along ``axis``."""
    both = np.intersect1d(_face_labels(labels, axis, 0), _face_labels(labels, axis, 1))
    lut = np.zeros(n + 1, bool)
    lut[both] = True
    lut[0] = False
    return lut


def percolating_mask(
    mask: np.ndarray, axis: str | int, *, connectivity: int = 6
) -> np.ndarray:
    """Voxels of the clusters that touch both opposite faces along one axis.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        Phase mask, (z, y, x).
    axis : {"x", "y", "z"} or int
        Direction (x, y, z = array axes 2, 1, 0).
    connectivity : {6, 18, 26}
        Neighbourhood of the clusters (6 = shared faces).

    Returns
    -------
    numpy.ndarray of bool
        The percolating part of ``mask`` (all False when nothing percolates).
    """
    ax = axis_index(axis, ndim=mask.ndim)
    labels, n = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity,
        return_N=True,
    )
    return _spanning_lut(labels, int(n), ax)[labels]


def connectivity(
    labels: Any,
    phase: str | int | None = None,
    *,
    class_map: Mapping[str, int] | None = None,
    axes: Iterable[str | int] = ("x", "y", "z"),
    connectivity: int = 6,
) -> dict[str, Any]:
    """Percolating fraction per direction and isolated clusters of one phase.

    Parameters
    ----------
    labels : numpy.ndarray
        Label volume (z, y, x), or a boolean mask when ``phase`` is None.
    phase : str or int, optional
        Class name or value of the phase.
    class_map : mapping, optional
        name -> value, to look up ``phase`` by name.
    axes : iterable of {"x", "y", "z"}
        Directions to test.
    connectivity : {6, 18, 26}
        Neighbourhood of the clusters (6 = shared faces, the conduction path of the
        tortuosity solver).

    Returns
    -------
    dict
        ``percolating_fraction`` ({axis: fraction of the phase volume in clusters touching
        both faces along that axis}), ``n_clusters``, ``n_isolated`` (clusters touching no
        face of the volume), ``isolated_fraction`` (their share of the phase volume),
        ``largest_cluster_fraction``, ``phase_voxels``, ``connectivity``. Fractions are 0–1.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 4), bool)
    >>> a[:, 1, 1] = True          # a column spanning z
    >>> a[1:3, 2, 2] = True        # a 2-voxel cluster touching no face
    >>> r = connectivity(a)
    >>> r["percolating_fraction"]["z"], r["n_clusters"], r["n_isolated"]
    (0.6666666666666666, 2, 1)
    """
    mask = phase_mask(labels, phase, class_map=class_map)
    if mask.ndim == 2:  # a 2-D image is one slice (1, y, x)
        mask = mask[None]
    lab, n = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    n = int(n)
    sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.int64)
    touch = np.zeros((mask.ndim, 2, n + 1), bool)
    for ax in range(mask.ndim):
        for side in (0, 1):
            touch[ax, side, _face_labels(lab, ax, side)] = True
    return cluster_summary(sizes, touch, axes=axes, connectivity=connectivity)


def cluster_summary(sizes: np.ndarray, touch: np.ndarray, *, axes: Iterable[str | int],
                    connectivity: int) -> dict[str, Any]:
    """The :func:`connectivity` result from cluster sizes and the faces they touch.

    Parameters
    ----------
    sizes : numpy.ndarray of int64
        Voxels per cluster id, (n + 1,); id 0 (outside the phase) is ignored.
    touch : numpy.ndarray of bool
        (ndim, 2, n + 1): whether a cluster touches the lower / upper face along each axis.
    axes : iterable of {"x", "y", "z"}
        Directions to test.
    connectivity : int
        Neighbourhood of the clusters (reported).
    """
    n = sizes.size - 1
    total = int(sizes[1:].sum())
    out: dict[str, Any] = {"percolating_fraction": {}}
    for a in axes:
        ax = axis_index(a, ndim=touch.shape[0])
        lut = touch[ax, 0] & touch[ax, 1]
        lut[0] = False
        frac = float(sizes[lut].sum() / total) if total else 0.0
        out["percolating_fraction"][axis_name(ax)] = frac
    isolated = ~touch[:, :, 1:].any(axis=(0, 1))
    out["n_clusters"] = n
    out["n_isolated"] = int(isolated.sum())
    out["isolated_fraction"] = float(sizes[1:][isolated].sum() / total) if total else 0.0
    out["largest_cluster_fraction"] = float(sizes[1:].max() / total) if total else 0.0
    out["phase_voxels"] = total
    out["connectivity"] = int(connectivity)
    return out
