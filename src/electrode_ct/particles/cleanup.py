"""Cleanup of particle label volumes: holes, islands, small objects, borders, outliers.

Every function works on the whole multi-label volume in a few vectorised passes
(``cc3d``, ``bincount``, ``fastremap``), never a loop over particles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError
from electrode_ct.labels import border_labels, check_labels, contact_pairs
from electrode_ct.volume import as_spacing


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber particle ids 1..n in order of first appearance (0 stays 0), as uint32.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume.

    Returns
    -------
    numpy.ndarray
        uint32 labels, sequential.
    """
    import fastremap

    arr = check_labels(labels)
    seq, _ = fastremap.renumber(np.ascontiguousarray(arr), preserve_zero=True, in_place=False)
    return seq.astype(np.uint32, copy=False)


def _apply_lut(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[labels].astype(np.uint32, copy=False)


def remove_small(
    labels: np.ndarray,
    *,
    min_volume_um3: float,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, int]:
    """Remove particles smaller than a physical volume (all pieces of a label counted together).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x).
    min_volume_um3 : float
        Particles with a smaller total volume (µm³) are set to 0.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    labels : numpy.ndarray
        uint32 labels, with the original ids of the kept particles.
    n_removed : int
        Number of particles removed.
    """
    arr = check_labels(labels)
    voxel = float(np.prod(as_spacing(spacing, name="spacing")))
    counts = np.bincount(arr.ravel())
    small = (counts > 0) & (counts * voxel < float(min_volume_um3))
    small[0] = False
    lut = np.arange(counts.size, dtype=np.uint32)
    lut[small] = 0
    return _apply_lut(arr, lut), int(small.sum())


def remove_islands(labels: np.ndarray, *, min_fraction: float = 0.1) -> np.ndarray:
    """Remove disconnected fragments much smaller than the main body of their particle.

    A label split in similar pieces (a cracked particle cut back to its mask) is kept;
    a piece smaller than ``min_fraction`` of the label's largest piece is set to 0.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x).
    min_fraction : float
        Smallest kept piece, as a fraction of the largest piece of the same label.

    Returns
    -------
    numpy.ndarray
        uint32 labels (same ids).
    """
    import cc3d

    arr = check_labels(labels)
    pieces = cc3d.connected_components(arr, connectivity=26 if arr.ndim == 3 else 8)
    flat_p, flat_l = pieces.ravel(), arr.ravel()
    n_p = int(pieces.max())
    parent = np.zeros(n_p + 1, dtype=np.int64)
    parent[flat_p] = flat_l
    size = np.bincount(flat_p, minlength=n_p + 1)
    largest = np.zeros(int(arr.max()) + 1, dtype=np.int64)
    np.maximum.at(largest, parent[1:], size[1:])
    keep = size >= min_fraction * largest[parent]
    keep[0] = False
    lut = np.where(keep, parent, 0).astype(np.uint32)
    return lut[pieces]


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background cavities enclosed by a single particle with that particle's id.

    Background components that touch the volume border or touch several particles
    are left as they are.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x).

    Returns
    -------
    numpy.ndarray
        uint32 labels.
    """
    import cc3d

    arr = check_labels(labels).astype(np.uint32, copy=False)
    holes = cc3d.connected_components(arr == 0, connectivity=6 if arr.ndim == 3 else 4)
    n_h = int(holes.max())
    if n_h == 0:
        return arr.copy()
    on_border = np.zeros(n_h + 1, dtype=bool)
    on_border[border_labels(holes)] = True
    offset = int(arr.max()) + 1
    combined = np.where(holes > 0, holes.astype(np.int64) + offset, arr.astype(np.int64))
    pairs = contact_pairs(combined)
    pairs = pairs[(pairs[:, 0] < offset) & (pairs[:, 1] >= offset)]
    hole_id = pairs[:, 1] - offset
    n_touch = np.bincount(hole_id, minlength=n_h + 1)
    fill = np.zeros(n_h + 1, dtype=np.uint32)
    fill[hole_id] = pairs[:, 0]
    fill[(n_touch != 1) | on_border] = 0
    fill[0] = 0
    return np.where(holes > 0, fill[holes], arr).astype(np.uint32)


def truncated_labels(labels: np.ndarray, *, fraction: float = 0.2) -> np.ndarray:
    """Particles cut by the field of view: their section on a volume face is large.

    A particle is truncated when, on some face of the volume, its cross-section there
    is more than ``fraction`` of its largest cross-section parallel to that face (a
    particle that only grazes the border is kept).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume (z, y, x).
    fraction : float
        Threshold on (section on the face) / (largest parallel section); 0.2 = 20 %.

    Returns
    -------
    numpy.ndarray
        Sorted ids of the truncated particles.
    """
    arr = check_labels(labels)
    n = int(arr.max()) + 1
    out = np.zeros(n, dtype=bool)
    for axis in range(arr.ndim):
        moved = np.moveaxis(arr, axis, 0)
        n_slices = moved.shape[0]
        flat = moved.reshape(n_slices, -1)
        slice_idx = np.repeat(np.arange(n_slices, dtype=np.int64), flat.shape[1])
        lab = flat.ravel().astype(np.int64)
        fg = lab > 0
        keys, counts = np.unique(lab[fg] * n_slices + slice_idx[fg], return_counts=True)
        largest = np.zeros(n, dtype=np.int64)
        np.maximum.at(largest, keys // n_slices, counts)
        for index in (0, n_slices - 1):
            face = np.bincount(flat[index].astype(np.int64), minlength=n)
            face[0] = 0
            out |= face > fraction * np.maximum(largest, 1)
    out[0] = False
    return np.flatnonzero(out)


def remove_labels(labels: np.ndarray, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Set the given particle ids to 0 (uint32 result, other ids unchanged)."""
    arr = check_labels(labels)
    lut = np.arange(int(arr.max()) + 1, dtype=np.uint32)
    ids = np.asarray(ids, dtype=np.int64)
    lut[ids[(ids > 0) & (ids < lut.size)]] = 0
    return _apply_lut(arr, lut)


def remove_border(labels: np.ndarray, *, rule: str = "touch", fraction: float = 0.2) -> np.ndarray:
    """Remove particles on the volume border.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume.
    rule : {"touch", "truncated"}
        ``touch``: every particle with a voxel on a face; ``truncated``: only those whose
        section on a face exceeds ``fraction`` of their largest parallel section
        (:func:`truncated_labels`).
    fraction : float
        Threshold of the ``truncated`` rule.

    Returns
    -------
    numpy.ndarray
        uint32 labels without those particles (ids not renumbered).
    """
    if rule == "touch":
        return remove_labels(labels, border_labels(labels))
    if rule == "truncated":
        return remove_labels(labels, truncated_labels(labels, fraction=fraction))
    raise InputError(f"border rule: expected 'touch' or 'truncated', got {rule!r}")


SHAPE_FEATURES = ("sphericity", "elongation", "flatness")


def mahalanobis_outliers(
    table: pd.DataFrame,
    *,
    columns: Sequence[str] = SHAPE_FEATURES,
    quantile: float = 0.999,
) -> pd.Series:
    """Flag particles whose shape features are far from the population (slice artefacts).

    The squared Mahalanobis distance of each row's features (plus log volume when a
    ``volume_um3`` column exists) to the mean, with the covariance of all rows, is
    compared with the chi-square ``quantile`` for that many features.

    Parameters
    ----------
    table : pandas.DataFrame
        Morphology table (``properties="all"``).
    columns : sequence of str
        Feature columns.
    quantile : float
        Chi-square quantile used as the threshold (0.999: ~0.1 % false flags for
        Gaussian features).

    Returns
    -------
    pandas.Series
        Boolean ``outlier`` per row (index of ``table``).
    """
    from scipy.stats import chi2

    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"table: missing shape columns {missing} (use properties='all')")
    feats = table[list(columns)].to_numpy(dtype=np.float64)
    if "volume_um3" in table.columns:
        feats = np.column_stack([feats, np.log(table["volume_um3"].to_numpy(np.float64))])
    ok = np.all(np.isfinite(feats), axis=1)
    flags = np.zeros(len(table), dtype=bool)
    if ok.sum() > feats.shape[1] + 1:
        x = feats[ok]
        diff = x - x.mean(axis=0)
        inv = np.linalg.pinv(np.cov(x, rowvar=False))
        d2 = np.einsum("ij,jk,ik->i", diff, inv, diff)
        flags[ok] = d2 > chi2.ppf(quantile, df=x.shape[1])
    return pd.Series(flags, index=table.index, name="outlier")
