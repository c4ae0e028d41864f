"""Cleaning of tracked particles: present in every state, consistent, not at the border."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from electrode_ct.labels import border_labels, contact_pairs


def clean_tracks(
    ref_labels: np.ndarray,
    state_labels: Sequence[np.ndarray],
    *,
    volume_tolerance: float = 0.2,
    drop_border: bool = True,
) -> pd.DataFrame:
    """Flag which reference particles are tracked consistently through every state.

    Parameters
    ----------
    ref_labels : numpy.ndarray
        Reference particle ids.
    state_labels : sequence of numpy.ndarray
        Propagated labels of every state (the reference state included or not).
    volume_tolerance : float
        A particle whose voxel count differs from the reference by more than this
        fraction in any state is inconsistent (lost, merged or split).
    drop_border : bool
        Particles touching a face of the volume in any state are dropped.

    Returns
    -------
    pandas.DataFrame
        One row per reference particle: ``label``, ``n_voxels_ref``,
        ``volume_change_max`` (largest relative change), ``present_all``,
        ``inconsistent``, ``neighbour_of_inconsistent`` (shares a face with one),
        ``border``, ``kept``.
    """
    ref = np.asarray(ref_labels)
    n = int(ref.max()) + 1 if ref.size else 1
    for s in state_labels:
        n = max(n, int(np.asarray(s).max()) + 1 if np.asarray(s).size else 1)
    ref_count = np.bincount(ref.ravel(), minlength=n)
    ids = np.flatnonzero(ref_count)
    ids = ids[ids != 0]
    change = np.zeros(n)
    present = np.ones(n, dtype=bool)
    border = np.zeros(n, dtype=bool)
    border[border_labels(ref)] = True
    for s in state_labels:
        s = np.asarray(s)
        c = np.bincount(s.ravel(), minlength=n)
        present &= c > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(c - ref_count) / np.maximum(ref_count, 1)
        change = np.maximum(change, rel)
        border[border_labels(s)] = True
    inconsistent = ~present | (change > volume_tolerance)
    neighbour = np.zeros(n, dtype=bool)
    pairs = contact_pairs(ref)
    if len(pairs):
        bad_a, bad_b = inconsistent[pairs[:, 0]], inconsistent[pairs[:, 1]]
        neighbour[pairs[bad_a, 1]] = True
        neighbour[pairs[bad_b, 0]] = True
    neighbour &= ~inconsistent
    kept = ~inconsistent & ~neighbour & (~border if drop_border else True)
    return pd.DataFrame({
        "label": ids.astype(np.uint32), "n_voxels_ref": ref_count[ids].astype(np.int64),
        "volume_change_max": change[ids], "present_all": present[ids],
        "inconsistent": inconsistent[ids], "neighbour_of_inconsistent": neighbour[ids],
        "border": border[ids], "kept": np.asarray(kept)[ids],
    })
