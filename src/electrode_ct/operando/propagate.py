"""Label propagation: reference particle ids carried into a state's own foreground."""

from __future__ import annotations

import numpy as np

from electrode_ct.errors import ShapeError
from electrode_ct.operando.register import Rigid, resample


def otsu_foreground(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Foreground (bright phase) by Otsu's threshold; returns the mask and the threshold."""
    from skimage.filters import threshold_otsu

    t = float(threshold_otsu(np.asarray(grey)))
    return np.asarray(grey) > t, t


def propagate_labels(
    ref_labels: np.ndarray,
    foreground: np.ndarray,
    transform: Rigid | None,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    core_um: float | None = None,
) -> np.ndarray:
    """Seeded watershed of a state's foreground from the transformed reference labels.

    Parameters
    ----------
    ref_labels : numpy.ndarray
        Reference particle ids (z, y, x), uint32, 0 = background.
    foreground : numpy.ndarray
        The state's own particle (active phase) mask, in the state's space.
    transform : Rigid or None
        Reference → state transform (None: the state is already aligned).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    core_um : float, optional
        Seeds are the transformed labels deeper than this from their surface (default:
        the largest voxel edge), so misaligned boundaries never seed the wrong particle.

    Returns
    -------
    numpy.ndarray
        uint32 labels in the state's space carrying the reference ids; foreground voxels
        reached by no seed stay 0.
    """
    fg = np.asarray(foreground).astype(bool)
    ref = np.asarray(ref_labels)
    if ref.ndim == 2:
        ref, fg = ref[None], fg[None] if fg.ndim == 2 else fg
    moved = ref if transform is None else resample(ref.astype(np.uint32), transform,
                                                   shape=fg.shape, spacing=spacing, order=0,
                                                   inverse=True)
    if moved.shape != fg.shape:
        raise ShapeError(
            f"foreground: shape {fg.shape} differs from the reference labels {moved.shape}"
        )
    return watershed_seeds(moved, fg, spacing=spacing, core_um=core_um)


def watershed_seeds(moved: np.ndarray, fg: np.ndarray, *,
                    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                    core_um: float | None = None) -> np.ndarray:
    """The seeded watershed of :func:`propagate_labels` on already transformed labels.

    Parameters
    ----------
    moved : numpy.ndarray
        Reference ids in the state's space (z, y, x).
    fg : numpy.ndarray
        bool foreground of the state, same shape.
    spacing, core_um
        As :func:`propagate_labels`.

    Returns
    -------
    numpy.ndarray
        uint32 labels.
    """
    import edt
    from skimage.segmentation import watershed

    depth = edt.edt(np.ascontiguousarray(moved.astype(np.uint32)), anisotropy=spacing,
                    black_border=False)
    core = max(spacing) if core_um is None else float(core_um)
    seeds = np.where(fg & (depth > core), moved, 0).astype(np.int64)
    # particles too thin for a core keep their transformed voxels as seeds
    lost = np.setdiff1d(np.unique(moved[fg]), np.unique(seeds))
    if lost.size:
        keep = np.isin(moved, lost) & fg
        seeds[keep] = moved[keep]
    dist = edt.edt(fg.astype(np.uint8), anisotropy=spacing, black_border=False)
    out = watershed(-dist, markers=seeds, mask=fg)
    return out.astype(np.uint32)
