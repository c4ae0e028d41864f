"""Intra-particle grey-level change map of one tracked particle."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.operando.register import Rigid, register_rigid, resample


def change_map(
    ref_grey: np.ndarray,
    state_grey: np.ndarray,
    ref_labels: np.ndarray,
    label: int,
    transform: Rigid,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    sigma: float = 1.0,
    margin: int = 4,
    reregister: bool = False,
    erode: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Registered, smoothed, subtracted grey change (state − reference) inside a particle.

    Parameters
    ----------
    ref_grey, state_grey : numpy.ndarray
        Grey volumes of the reference and of the state (each in its own space).
    ref_labels : numpy.ndarray
        Reference particle ids.
    label : int
        The particle.
    transform : Rigid
        Reference → state transform (from :func:`register_rigid`).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    sigma : float
        Gaussian smoothing in voxels applied to both crops before subtracting.
    margin : int
        Voxels added around the particle's bounding box.
    reregister : bool
        Refine the transform on the particle's bounding volume only.
    erode : int
        Voxels of the particle's rim left out (NaN): smoothing and interpolation mix
        the pore into them.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The change map (float32, grey levels, NaN outside the eroded particle) on the
        reference crop, and the crop's start index (z, y, x) in the reference volume.
    """
    lab = np.asarray(ref_labels)
    objs = ndi.find_objects((lab == label).astype(np.uint8))
    if not objs or objs[0] is None:
        raise InputError(f"label: particle {label} is not in the reference labels")
    box = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))
                for s, n in zip(objs[0], lab.shape, strict=True))
    start = np.array([s.start for s in box])
    # T(q + o) = R(q − (c − o)) + (c − o) + (t + o): the transform of crop coordinates q
    origin = (start * np.asarray(spacing, dtype=float))[::-1]
    crop_t = Rigid(list(transform.parameters[:3]) + list(np.asarray(transform.parameters[3:])
                                                        + origin),
                   list(np.asarray(transform.centre_um) - origin))
    import SimpleITK as sitk

    ref_crop = np.asarray(ref_grey, np.float32)[box]
    src = sitk.GetImageFromArray(np.asarray(state_grey, np.float32))
    src.SetSpacing([float(s) for s in spacing[::-1]])
    grid = sitk.Image([int(s.stop - s.start) for s in box[::-1]], sitk.sitkFloat32)
    grid.SetSpacing([float(s) for s in spacing[::-1]])
    moved = sitk.Resample(src, grid, crop_t.sitk(), sitk.sitkLinear, np.nan)
    state_crop = sitk.GetArrayFromImage(moved)
    if reregister:
        local = register_rigid(ref_crop, np.nan_to_num(state_crop, nan=float(ref_crop.mean())),
                               spacing=spacing, shrink=(2, 1), name=f"particle {label}")
        state_crop = resample(np.nan_to_num(state_crop), local, shape=ref_crop.shape,
                              spacing=spacing, order=1, fill=np.nan)
    a = ndi.gaussian_filter(ref_crop, sigma) if sigma > 0 else ref_crop
    b = ndi.gaussian_filter(np.nan_to_num(state_crop, nan=0.0), sigma) if sigma > 0 \
        else state_crop
    diff = (b - a).astype(np.float32)
    inside = lab[box] == label
    if erode > 0:
        inside = ndi.binary_erosion(inside, iterations=int(erode))
    diff[~inside | ~np.isfinite(state_crop)] = np.nan
    return diff, start
