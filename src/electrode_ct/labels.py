"""Low-level utilities on integer label volumes (particle ids, 0 = background).

Shared by ``particles`` (separation, cleanup) and ``measure`` (morphology tables); this
module sits beside ``volume`` at the bottom of the layer stack and imports nothing from
the package except the error types.

Every function works in z-slabs of bounded size on the foreground only, so memory stays
a small multiple of one slab whatever the volume size:

- :func:`label_runs`: run-length encoding along x (label, z, y, x0, length per run), the
  raw material of exact per-label moments and bounding boxes;
- :func:`contact_pairs`: pairs of different labels sharing a voxel face;
- :func:`border_labels`: labels with a voxel on a face of the volume;
- :func:`label_boxes` / :func:`merge_boxes`: bounding box and first voxel (raster order)
  of every label, exact partials of blocks merged by min / max;
- :func:`check_labels`: the input check every label-taking function starts with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from electrode_ct.errors import InputError, ShapeError

SLAB_VOXELS = 1 << 24
"""Default number of voxels processed at once (16 M: ~16-64 MB temporaries)."""


class Runs(NamedTuple):
    """Runs of equal non-zero labels along x in one z-slab (all arrays of one length).

    Attributes
    ----------
    label : numpy.ndarray
        Label of each run (the input dtype), never 0.
    z, y, x0 : numpy.ndarray
        int64 voxel index of the first voxel of the run (z is absolute, not slab-relative).
    length : numpy.ndarray
        int64 number of voxels in the run (the run covers x0 .. x0 + length - 1).
    """

    label: np.ndarray
    z: np.ndarray
    y: np.ndarray
    x0: np.ndarray
    length: np.ndarray


def _as3d(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    return arr[None] if arr.ndim == 2 else arr


def _slab_step(shape: tuple[int, ...], slab_voxels: int) -> int:
    return max(1, int(slab_voxels) // max(1, shape[1] * shape[2]))


def label_runs(labels: np.ndarray, *, slab_voxels: int = SLAB_VOXELS) -> Iterator[Runs]:
    """Run-length encode a label volume along x, slab by slab (background runs dropped).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x), or a 2-D (y, x) image (one slice, z = 0).
    slab_voxels : int
        Voxels per slab (a slab holds at least one z-slice).

    Yields
    ------
    Runs
        The runs of one slab, in raster order.

    Examples
    --------
    >>> lab = np.array([[[0, 3, 3, 0, 5]]])
    >>> r = next(label_runs(lab))
    >>> r.label.tolist(), r.x0.tolist(), r.length.tolist()
    ([3, 5], [1, 4], [2, 1])
    """
    arr = _as3d(labels)
    nz, ny, nx = arr.shape
    if arr.size == 0:
        return
    step = _slab_step(arr.shape, slab_voxels)
    plane = ny * nx
    for z0 in range(0, nz, step):
        flat = np.ascontiguousarray(arr[z0:z0 + step]).reshape(-1)
        start = np.empty(flat.size, dtype=bool)
        start[0] = True
        np.not_equal(flat[1:], flat[:-1], out=start[1:])
        start[::nx] = True  # every row starts a run
        first = np.flatnonzero(start)
        length = np.diff(first, append=flat.size)
        lab = flat[first]
        keep = lab != 0
        first, length, lab = first[keep], length[keep], lab[keep]
        z, rem = np.divmod(first, plane)
        y, x0 = np.divmod(rem, nx)
        yield Runs(lab, z + z0, y, x0, length)


def _pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unique uint64 keys (min << 32 | max) of label pairs (both < 2**32)."""
    lo = np.minimum(a, b).astype(np.uint64)
    hi = np.maximum(a, b).astype(np.uint64)
    return np.unique((lo << np.uint64(32)) | hi)


def contact_pairs(labels: np.ndarray, *, slab_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """Unique pairs of different non-zero labels that share a voxel face.

    The volume is compared with itself shifted by one voxel along x, y and z on the
    flat slab (no copies of the volume); only the voxel pairs that differ are looked at.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x) or 2-D image (y, x), 0 = background; ids < 2**32.
    slab_voxels : int
        Voxels per slab.

    Returns
    -------
    numpy.ndarray
        (m, 2) int64 array of label pairs ``a < b``, sorted by ``a`` then ``b``.

    Examples
    --------
    >>> contact_pairs(np.array([[1, 1, 2], [0, 3, 2]])).tolist()
    [[1, 2], [1, 3], [2, 3]]
    """
    arr = _as3d(labels)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.dtype.itemsize > 4 and int(arr.max()) >= 1 << 32:
        raise InputError(f"labels: ids must be < 2**32, got {int(arr.max())}")
    nz, ny, nx = arr.shape
    plane = ny * nx
    step = _slab_step(arr.shape, slab_voxels)
    keys = []
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        # one extra slice below the slab for the z-neighbours
        flat = np.ascontiguousarray(arr[z0:min(nz, z1 + 1)]).reshape(-1)
        label = flat != 0
        own = (z1 - z0) * plane
        for offset in (1, nx, plane):
            n = min(own, flat.size - offset)
            if n <= 0:
                continue
            a, b = flat[:n], flat[offset:offset + n]
            touch = a != b  # two different labels: sparse, so few indices to visit
            touch &= label[:n]
            touch &= label[offset:offset + n]
            idx = np.flatnonzero(touch)
            if offset == 1:
                idx = idx[idx % nx != nx - 1]  # x = nx - 1 has no x-neighbour in its row
            elif offset == nx:
                idx = idx[(idx // nx) % ny != ny - 1]
            if idx.size:
                keys.append(_pair_keys(a[idx], b[idx]))
    if not keys:
        return np.zeros((0, 2), dtype=np.int64)
    key = np.unique(np.concatenate(keys))
    return np.stack([(key >> np.uint64(32)).astype(np.int64),
                     (key & np.uint64(0xFFFFFFFF)).astype(np.int64)], axis=1)


BOX_COLUMNS = ("label", "z0", "y0", "x0", "z1", "y1", "x1", "first")
"""Columns of :func:`label_boxes`: id, box start (inclusive) and stop (exclusive) in
voxels, and the raster (C-order) index of the label's first voxel."""


def label_boxes(labels: np.ndarray, *, offset: tuple[int, int, int] = (0, 0, 0),
                shape: tuple[int, ...] | None = None,
                slab_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """Bounding box and first voxel of every label, from the runs along x.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x), or a block of a larger one.
    offset : tuple of int
        Position (voxels) of ``labels`` in the larger volume.
    shape : tuple of int, optional
        Shape of the larger volume (for the raster index; default: ``labels.shape``).
    slab_voxels : int
        Voxels per slab.

    Returns
    -------
    numpy.ndarray
        int64 ``(n_labels, 8)``, columns :data:`BOX_COLUMNS`, sorted by label.

    Examples
    --------
    >>> label_boxes(np.array([[[0, 3, 3], [5, 0, 3]]])).tolist()
    [[3, 0, 0, 1, 1, 2, 3, 1], [5, 0, 1, 0, 1, 2, 1, 3]]
    """
    arr = _as3d(labels)
    full = tuple(int(n) for n in (shape or arr.shape))
    parts = []
    for r in label_runs(arr, slab_voxels=slab_voxels):
        z, y, x0 = r.z + offset[0], r.y + offset[1], r.x0 + offset[2]
        first = (z * full[1] + y) * full[2] + x0
        parts.append(np.stack([r.label.astype(np.int64), z, y, x0, z + 1, y + 1,
                               x0 + r.length, first], axis=1))
    return merge_boxes(parts)


def merge_boxes(parts: list[np.ndarray]) -> np.ndarray:
    """Merge :func:`label_boxes` rows (of blocks, or of runs) per label: min of the starts
    and of the first voxel, max of the stops. Exact in any order."""
    rows = [p for p in parts if len(p)]
    if not rows:
        return np.zeros((0, len(BOX_COLUMNS)), np.int64)
    allr = np.concatenate(rows)
    ids, inv = np.unique(allr[:, 0], return_inverse=True)
    out = np.empty((len(ids), len(BOX_COLUMNS)), np.int64)
    out[:, 0] = ids
    for c, red in ((1, np.minimum), (2, np.minimum), (3, np.minimum), (4, np.maximum),
                   (5, np.maximum), (6, np.maximum), (7, np.minimum)):
        col = np.full(len(ids), np.iinfo(np.int64).max if red is np.minimum else -1)
        red.at(col, inv, allr[:, c])
        out[:, c] = col
    return out


def border_labels(labels: np.ndarray) -> np.ndarray:
    """Sorted ids of the labels with at least one voxel on a face of the array.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label array (any number of dimensions), 0 = background.

    Returns
    -------
    numpy.ndarray
        Sorted non-zero ids (the input dtype).

    Examples
    --------
    >>> border_labels(np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]])).tolist()
    [1, 3]
    """
    arr = np.asarray(labels)
    if arr.size == 0:
        return arr.reshape(-1)
    ids = [np.unique(np.take(arr, i, axis=a)) for a in range(arr.ndim) for i in (0, -1)]
    out = np.unique(np.concatenate(ids))
    return out[out != 0]


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
        When the dtype is not integer (or bool), the array is empty or the values are
        negative.
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
    if arr.size == 0:
        raise InputError(f"{name}: the label volume is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InputError(f"{name}: particle labels must be >= 0, got minimum {int(arr.min())}")
    return arr
