"""Operando tracking on a shifted phantom with exact truth."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.operando import (
    RegistrationError,
    calibrate,
    change_map,
    clean_tracks,
    register_rigid,
    track,
)
from electrode_ct.operando.phantom import shifted_series
from electrode_ct.stats import summarise


@pytest.fixture(scope="module")
def series():
    return shifted_series(shape=(48, 72, 72), radius=(7.0, 10.0), n_particles=40, noise=2.0,
                          drop=1.0, cracked_fraction=0.5, seed=1)


@pytest.fixture(scope="module")
def tracked(series):
    return track(series.ref_labels, series.greys, spacing=series.spacing, exclude_layers=2,
                 metric="correlation")


def test_registration_recovers_the_motion(series, tracked):
    rep = tracked.registration[1]
    truth = series.transforms[1].report()
    np.testing.assert_allclose(rep["shift_um_zyx"], truth["shift_um_zyx"], atol=0.15)
    np.testing.assert_allclose(rep["angles_deg_xyz"], truth["angles_deg_xyz"], atol=0.15)


def test_identity_and_planted_drop(series, tracked):
    assert tracked.n_tracked >= 5
    assert series.truth_identity(tracked) >= 99.0
    s = summarise(tracked.state_tables(), column="roi_mean", subsets=series.cracked_subsets(),
                  subset_name="cracked")
    cracked = s[(s.state == 1) & (s.subset == 1)].iloc[0]
    intact = s[(s.state == 1) & (s.subset == 0)].iloc[0]
    assert cracked["dI"] == pytest.approx(-1.0, abs=0.25)
    assert cracked["Z"] <= -5
    assert abs(intact["Z"]) < 3
    ts = tracked.timeseries()
    kept = ts[ts["kept"]]
    assert set(kept["state"]) == {0, 1}
    assert kept.groupby("label").size().eq(2).all()


def test_change_map_shows_the_drop(series, tracked):
    lbl = int(np.intersect1d(tracked.kept, series.cracked)[0])
    diff, start = change_map(series.greys[0], series.greys[1], series.ref_labels, lbl,
                             tracked.transforms[1], spacing=series.spacing, sigma=1.0)
    inside = diff[np.isfinite(diff)]
    assert inside.size > 100
    assert np.median(inside) == pytest.approx(-1.0, abs=0.6)


def test_cleaning_rules():
    ref = np.zeros((10, 10, 30), np.uint32)
    ref[3:7, 3:7, 2:6] = 1
    ref[3:7, 3:7, 6:10] = 2  # touches 1
    ref[3:7, 3:7, 14:18] = 3
    ref[3:7, 3:7, 22:26] = 4
    state = ref.copy()
    state[state == 1] = 0  # particle 1 lost
    state[3:7, 3:7, 26:30] = 4  # particle 4 doubled and at the border
    c = clean_tracks(ref, [state]).set_index("label")
    assert c.loc[1, "inconsistent"] and not c.loc[1, "present_all"]
    assert c.loc[2, "neighbour_of_inconsistent"] and not c.loc[2, "kept"]
    assert c.loc[4, "inconsistent"] and c.loc[4, "border"]
    assert c["kept"].tolist() == [False, False, True, False]


def test_calibration_drift_and_warning():
    rng = np.random.default_rng(0)
    a = rng.normal(60, 3, (20, 20, 20)).round()
    b = a * 1.02 + 1.5
    pore = np.zeros(a.shape, bool)
    pore[:10] = True
    bright = ~pore
    a[bright] += 100
    b[bright] = a[bright] * 1.02 + 1.5
    with pytest.warns(UserWarning, match="comparable"):
        cal = calibrate(a, b, [pore, bright], [pore, bright], effect=1.0)
    assert cal["drift"][0] == pytest.approx(60 * 0.02 + 1.5, abs=0.6)
    assert cal["gain"] == pytest.approx(1 / 1.02, abs=0.01)


def test_unregistrable_state_is_reported(series):
    rng = np.random.default_rng(3)
    ref = series.greys[0][:24, :32, :32]
    noise = rng.integers(0, 255, ref.shape).astype(np.uint8)
    with pytest.raises(RegistrationError, match="cannot be registered|failed"):
        register_rigid(ref, noise, spacing=series.spacing, metric="correlation",
                       iterations=20, shrink=(2, 1))


def test_bad_inputs(series):
    with pytest.raises(ShapeError):
        track(series.ref_labels, [series.greys[0], series.greys[1][:, :-1]])
    with pytest.raises(InputError, match="at least 2"):
        track(series.ref_labels, [series.greys[0]])
    with pytest.raises(InputError, match="integer"):
        track(series.ref_labels.astype(float), series.greys)


def test_state_tables_carry_the_tracking_stamp(series, tracked):
    from electrode_ct.operando.track import labels_id
    from electrode_ct.stats import pairing, tracking_stamp

    tables = tracked.state_tables()
    stamps = [tracking_stamp(t) for t in tables]
    ref_id = labels_id(series.ref_labels.astype(np.uint32))
    assert [s["reference_id"] for s in stamps] == [ref_id, ref_id]
    assert [s["state"] for s in stamps] == [0, 1] and pairing(tables)[0]
    other = series.ref_labels.astype(np.uint32)
    other[tuple(np.argwhere(other > 0)[0])] = 0  # one voxel less: another reference
    assert labels_id(other) != ref_id
    assert labels_id(other.astype(np.uint16)) != labels_id(other)
