"""Candidate particles for flaw classification, input checks and healed particle masks.

Candidates are the particles of a label volume minus those cut by the field of view
(:func:`electrode_ct.particles.truncated_labels`) and the shape outliers
(:func:`electrode_ct.particles.mahalanobis_outliers` on the morphology table): a
truncated or mis-segmented particle would be classified on a fragment.

The *healed* particle mask fills each particle's cracks and internal voids: a per-label
morphological closing (labels grown into the background by the closing radius, then
shrunk back by the same distance, with the original voxels kept) followed by filling
the background cavities enclosed by one particle. Whether the particle labels were cut
back to the solid (cracks as background, ``ect particles``) or already include the
cracks (the phantoms), the healed masks are the same, so the descriptors are too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.labels import check_labels
from electrode_ct.volume import as_spacing


def check_inputs(grey: Any, labels: Any, *, grey_name: str = "grey",
                 labels_name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Check a grey/label pair and return them as numpy arrays.

    Parameters
    ----------
    grey : array-like or Volume
        Grey-level volume (z, y, x), integer or float.
    labels : array-like or Volume
        Integer particle labels (z, y, x), 0 = background.
    grey_name, labels_name : str
        Names (parameters or files) used in error messages.

    Returns
    -------
    grey, labels : numpy.ndarray
        The grey volume (unchanged dtype) and the labels as a numpy array.

    Raises
    ------
    ShapeError
        Not 3-D, or the shapes differ.
    InputError
        Non-integer labels, non-numeric grey, or no particle at all.
    """
    lab = check_labels(np.asarray(getattr(labels, "data", labels)), name=labels_name,
                       ndim=(3,))
    g = np.asarray(getattr(grey, "data", grey))
    if g.shape != lab.shape:
        raise ShapeError(f"{grey_name}: shape {tuple(g.shape)} differs from the shape "
                         f"{tuple(lab.shape)} of {labels_name}")
    if g.dtype == bool or not (np.issubdtype(g.dtype, np.integer)
                               or np.issubdtype(g.dtype, np.floating)):
        raise InputError(f"{grey_name}: expected an integer or float image, got dtype {g.dtype}")
    if not lab.any():
        raise InputError(f"{labels_name}: no particles (every voxel is 0); expected a particle "
                         "label volume (ect particles)")
    return g, lab


def heal_labels(labels: np.ndarray, *, width_um: float = 1.0,
                spacing: float | Iterable[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Particle labels with cracks and internal voids filled (the healed particle masks).

    Parameters
    ----------
    labels : numpy.ndarray
        uint particle labels (z, y, x), 0 = background.
    width_um : float
        Widest crack (µm) bridged by the per-label closing; cracks open to the surface
        narrower than this are closed, enclosed voids of any size are filled.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    numpy.ndarray
        uint32 labels, a superset of ``labels`` (original voxels keep their ids).
    """
    import edt
    from scipy import ndimage as ndi

    from electrode_ct.particles import fill_holes

    sp = as_spacing(spacing, name="spacing")
    lab = np.ascontiguousarray(check_labels(labels, ndim=(3,)).astype(np.uint32, copy=False))
    healed = lab
    if width_um > 0:
        radius = width_um / 2 + max(sp) / 2
        half = [int(np.floor(radius / h)) for h in sp]
        grid = np.meshgrid(*[np.arange(-k, k + 1) * h for k, h in zip(half, sp, strict=True)],
                           indexing="ij")
        ball = sum(a * a for a in grid) <= radius * radius
        # grow every label into the background (where labels meet, the larger id wins
        # but is shrunk back below), then shrink back by the same distance
        grown = np.where(lab > 0, lab, ndi.grey_dilation(lab, footprint=ball))
        inner = edt.edt(np.ascontiguousarray(grown), anisotropy=sp, black_border=False,
                        parallel=1)
        healed = np.where((inner > radius) | (lab > 0), grown, 0).astype(np.uint32)
    return fill_holes(healed)


def candidate_table(labels: np.ndarray, *, spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
                    truncated_fraction: float = 0.2, outlier_quantile: float = 0.999,
                    min_voxels: int = 27) -> pd.DataFrame:
    """Which particles are classified: not truncated, not a shape outlier, not tiny.

    Parameters
    ----------
    labels : numpy.ndarray
        Particle labels (z, y, x).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    truncated_fraction : float
        Rule of :func:`electrode_ct.particles.truncated_labels` (section on a volume face
        above this fraction of the largest parallel section).
    outlier_quantile : float
        Chi-square quantile of :func:`electrode_ct.particles.mahalanobis_outliers`
        (1 disables the outlier rule).
    min_voxels : int
        Particles with fewer voxels cannot be sampled and are not candidates.

    Returns
    -------
    pandas.DataFrame
        One row per particle: ``label``, ``volume_um3``, ``equivalent_diameter_um``,
        ``centroid_z/y/x`` (voxels), ``bbox_*`` (voxels), ``truncated``, ``outlier``,
        ``candidate`` (bool).
    """
    from electrode_ct.measure import morphology_table
    from electrode_ct.particles import mahalanobis_outliers, truncated_labels

    sp = as_spacing(spacing, name="spacing")
    table = morphology_table(labels, spacing=sp, properties="all", surface_method="face")
    cols = ["label", "n_voxels", "volume_um3", "equivalent_diameter_um", "centroid_z",
            "centroid_y", "centroid_x", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1",
            "bbox_y1", "bbox_x1"]
    out = table[cols].copy()
    out["truncated"] = np.isin(out["label"].to_numpy(np.int64),
                               truncated_labels(labels, fraction=truncated_fraction))
    if outlier_quantile < 1:
        inside = ~out["truncated"].to_numpy()
        flags = np.zeros(len(out), bool)
        if inside.sum() > 8:
            flags[inside] = mahalanobis_outliers(table[inside],
                                                 quantile=outlier_quantile).to_numpy()
        out["outlier"] = flags
    else:
        out["outlier"] = False
    out["candidate"] = ~out["truncated"] & ~out["outlier"] & (out["n_voxels"] >= min_voxels)
    return out.reset_index(drop=True)


def require_candidates(table: pd.DataFrame, *, name: str = "labels") -> np.ndarray:
    """Ids of the candidate particles; an :class:`InputError` when there are none."""
    ids = table.loc[table["candidate"], "label"].to_numpy(np.int64)
    if ids.size == 0:
        raise InputError(f"{name}: none of the {len(table)} particles can be classified (all "
                         "truncated by the volume border, shape outliers or smaller than 27 "
                         "voxels)")
    return ids
