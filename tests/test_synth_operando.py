"""Operando series: identities kept, cracks grow and partly close, misalignment recoverable."""

from __future__ import annotations

import numpy as np
from skimage.registration import phase_cross_correlation

from electrode_ct.synth import operando_series

SMALL = dict(voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.75, seed=11, snr=8,
             cracked_fraction=0.5)


def test_shift_recovered_and_identities_kept():
    shift_um = (1.0, -1.5, 0.5)
    series = operando_series((48, 48, 48), states=2, openness=[0.0, 1.0],
                             transforms=[((0, 0, 0), (0, 0, 0)), (shift_um, (0, 0, 0))],
                             **SMALL)
    g0, g1 = (ph.grey.numpy().astype(np.float32) for ph in series)
    found, _, _ = phase_cross_correlation(g0, g1, upsample_factor=4, normalization=None)
    np.testing.assert_allclose(-np.asarray(found), np.asarray(shift_um) / 0.5, atol=0.5)
    assert series[1].info["transform"]["shift_um"] == list(shift_um)
    # the same particles: matched ids move by the applied shift
    t0, t1 = (ph.truth.set_index("label") for ph in series)
    common = t0.index.intersection(t1.index)
    inner = t0.loc[common, ["centroid_z", "centroid_y", "centroid_x"]]
    keep = ((inner > 8) & (inner < 40)).all(axis=1)
    moved = (t1.loc[common[keep], ["centroid_z", "centroid_y", "centroid_x"]].to_numpy()
             - inner[keep].to_numpy())
    assert keep.sum() >= 10
    np.testing.assert_allclose(np.median(moved, axis=0), np.asarray(shift_um) / 0.5, atol=0.3)


def test_cracks_grow_on_charge_and_partly_close():
    series = operando_series((40, 40, 40), states=4, max_rotation_deg=0.3, **SMALL)
    assert [ph.info["openness"] for ph in series] == [0.0, 0.5, 1.0, 0.6]
    crack = [ph.info["fractions"]["crack"] for ph in series]
    assert crack[0] == 0.0
    assert crack[1] < crack[2] and crack[3] < crack[2]
    assert [int(ph.truth["state"].unique()[0]) for ph in series] == [0, 1, 2, 3]
    # phases of the unmoved reference are the same material in every state
    for ph in series:
        assert abs(ph.info["fractions"]["cbd"] - 0.1) < 0.02
    # cracked particles keep their id and their crack volume grows with openness
    t1, t2 = (series[k].truth.set_index("label") for k in (1, 2))
    ids = t1.index[t1["cracked"]].intersection(t2.index[t2["cracked"]])
    assert len(ids) >= 5
    grew = t2.loc[ids, "crack_volume_fraction"] >= t1.loc[ids, "crack_volume_fraction"]
    assert grew.mean() > 0.8
