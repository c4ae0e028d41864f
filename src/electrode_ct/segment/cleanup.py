"""Cleanup of phase label volumes: fill holes per phase, remove small islands, majority filter."""

from __future__ import annotations

from collections.abc import Iterable

import cc3d
import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.volume import as_spacing


def _labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.size == 0:
        raise InputError(f"labels: the label image is empty (shape {arr.shape})")
    if arr.dtype.kind not in "uib":
        raise InputError(f"labels: expected integer phase codes, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InputError(f"labels: expected a 2-D or 3-D array, got shape {arr.shape}")
    return arr


def fill_holes(
    labels: np.ndarray,
    *,
    phases: Iterable[int] | None = None,
    max_volume_um3: float | None = None,
    spacing: float | Iterable[float] = 1.0,
) -> np.ndarray:
    """Fill holes enclosed by a phase (e.g. voids or cracks inside particles) with that phase.

    A hole of phase p is a connected region of other phases that does not touch the
    image border and is entirely enclosed by p (face connectivity).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer phase codes, 2-D or 3-D.
    phases : iterable of int, optional
        Phase codes to fill, in this order; default: only the highest code (the
        brightest phase, ``active`` in a 3-phase map). Filling the matrix phase (pore)
        would swallow every particle, so name it explicitly if you really want it.
    max_volume_um3 : float, optional
        Fill only holes up to this volume (µm³; µm² for 2-D). Default: any size.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm, for ``max_volume_um3``.

    Returns
    -------
    numpy.ndarray
        A copy with the holes filled.
    """
    arr = _labels(labels)
    out = arr.copy()
    todo = [int(arr.max())] if phases is None else [int(p) for p in phases]
    max_vox = None
    if max_volume_um3 is not None:
        voxel = float(np.prod(as_spacing(spacing)[-arr.ndim:]))
        max_vox = float(max_volume_um3) / voxel
    for p in todo:  # one pass per phase to fill (usually one)
        mask = out == p
        holes = ndi.binary_fill_holes(mask) & ~mask
        if max_vox is not None and holes.any():
            comps = cc3d.connected_components(holes, connectivity=6 if arr.ndim == 3 else 4)
            keep = np.bincount(comps.ravel()) <= max_vox
            keep[0] = False
            holes = keep[comps]
        out[holes] = p
    return out


def remove_islands(
    labels: np.ndarray,
    *,
    min_volume_um3: float,
    spacing: float | Iterable[float] = 1.0,
    connectivity: int = 6,
) -> np.ndarray:
    """Reassign connected pieces of any phase smaller than a volume to their surroundings.

    Each small island takes the phase of the nearest voxel outside all small islands
    (Euclidean feature transform), i.e. the phase that encloses it.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer phase codes, 2-D or 3-D.
    min_volume_um3 : float
        Islands with a volume below this (µm³; µm² for 2-D images) are removed.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    connectivity : {6, 18, 26} (3-D) or {4, 8} (2-D)
        Neighbourhood defining an island.

    Returns
    -------
    numpy.ndarray
        A copy without the small islands.
    """
    arr = _labels(labels)
    sp = as_spacing(spacing)
    if not np.isfinite(min_volume_um3) or min_volume_um3 < 0:
        raise InputError(f"min_volume_um3: expected a non-negative volume, got {min_volume_um3}")
    voxel = float(np.prod(sp[-arr.ndim:]))
    min_vox = min_volume_um3 / voxel
    conn = connectivity
    if arr.ndim == 2 and conn not in (4, 8):
        conn = 4 if conn == 6 else 8
    # cc3d treats 0 as background: shift the codes so that phase 0 is labelled too
    shifted = arr.astype(np.uint16 if int(arr.max()) < 65535 else np.uint64) + 1
    comps = cc3d.connected_components(shifted, connectivity=conn, out_dtype=np.uint32)
    sizes = np.bincount(comps.ravel())
    small = sizes < min_vox
    small[0] = False  # no voxel has component 0 after the shift
    mask = small[comps]
    if not mask.any():
        return arr.copy()
    if mask.all():
        raise InputError(f"min_volume_um3: every island is smaller than {min_volume_um3:g} µm³; "
                         "nothing would be left")
    _, idx = ndi.distance_transform_edt(mask, sampling=sp[-arr.ndim:], return_indices=True)
    out = arr.copy()
    out[mask] = arr[tuple(i[mask] for i in idx)]
    return out


def majority_filter(labels: np.ndarray, *, size: int = 3) -> np.ndarray:
    """Replace each voxel by the most frequent phase in a ``size``-wide box around it.

    Ties keep the voxel's own phase when it is among the most frequent, else the lowest
    code among them. At the border only voxels inside the image are counted.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer phase codes, 2-D or 3-D.
    size : int
        Odd box edge in voxels (>= 3).

    Returns
    -------
    numpy.ndarray
        Filtered labels (same dtype).
    """
    arr = _labels(labels)
    if size < 3 or size % 2 == 0:
        raise InputError(f"size: expected an odd box edge >= 3 voxels, got {size}")
    values = np.unique(arr)
    best = arr.copy()
    best_n = np.full(arr.shape, -1.0, np.float32)
    for v in values:  # one box count per phase (a handful of phases)
        n = ndi.uniform_filter((arr == v).astype(np.float32), size=size, mode="constant")
        n = np.rint(n * size**arr.ndim)  # exact integer counts
        n[arr == v] += 0.5  # tie-break in favour of the voxel's own phase
        better = n > best_n
        best[better] = v
        best_n[better] = n[better]
    return best
