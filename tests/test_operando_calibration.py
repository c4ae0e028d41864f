"""Grey-level calibration inside tracking: a planted gain and offset between states is
measured from the reference regions' peaks and removed before the grey is measured."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.operando import track
from electrode_ct.operando.phantom import shifted_series
from electrode_ct.stats import summarise


@pytest.fixture(scope="module")
def series():
    return shifted_series(shape=(32, 48, 48), radius=(6.0, 8.0), n_particles=16, noise=2.0,
                          drop=1.0, cracked_fraction=0.5, seed=1)


def _drifted(series, gain, offset):
    """State 1 scanned with another gain and offset (float grey, no clipping)."""
    return [series.greys[0].astype(np.float32),
            series.greys[1].astype(np.float32) * gain + offset]


def _phases(series):
    return [np.where(lab > 0, 2, 0).astype(np.uint8) for lab in series.truth_labels]


def _intact_dI(series, res):
    s = summarise(res.state_tables(), column="roi_mean", subsets=series.cracked_subsets(),
                  subset_name="cracked")
    return float(s[(s.state == 1) & (s.subset == 0)].iloc[0]["dI"])


def test_offset_from_the_background_peak_is_removed(series):
    greys = _drifted(series, 1.0, 8.0)
    kw = {"spacing": series.spacing, "exclude_layers": 2, "metric": "correlation"}
    raw = track(series.ref_labels, greys, **kw)
    cal = track(series.ref_labels, greys, calibrate=["background"], **kw)
    c = cal.registration[1]["calibration"]
    assert c["drift"][0] == pytest.approx(8.0, abs=0.5)  # pore peak 60 -> 68
    assert c["gain"] == 1.0 and c["offset"] == pytest.approx(-8.0, abs=0.5)
    ref = cal.registration[0]["calibration"]
    assert ref["drift"] == [0.0] and ref["gain"] == 1.0 and ref["offset"] == 0.0
    # the calibration takes exactly the drift out of ΔĪ of the particles that did not change
    assert _intact_dI(series, raw) - _intact_dI(series, cal) == pytest.approx(8.0, abs=0.5)
    assert abs(_intact_dI(series, cal)) < 1.5  # 16 particles: partial volumes move them a bit


def test_gain_and_offset_from_two_phase_peaks(series):
    greys = _drifted(series, 1.05, 3.0)  # pore 60 -> 66, particles 170 -> 181.5
    res = track(series.ref_labels, greys, spacing=series.spacing, exclude_layers=2,
                metric="correlation", phases=_phases(series), phase_value=2,
                calibrate=[0, 2])
    c = res.registration[1]["calibration"]
    assert c["gain"] == pytest.approx(1 / 1.05, abs=0.01)
    # peaks of integer grey scaled by 1.05 are found to about one grey level
    np.testing.assert_allclose(c["drift"], [6.0, 11.5], atol=1.0)
    assert abs(_intact_dI(series, res)) < 1.5


def test_regions_without_voxels_or_phases_are_refused(series):
    kw = {"spacing": series.spacing, "exclude_layers": 2, "metric": "correlation"}
    with pytest.raises(InputError, match="no voxel of it in state 0"):
        track(series.ref_labels, series.greys, phases=_phases(series), phase_value=2,
              calibrate=[1], **kw)
    with pytest.raises(InputError, match="need the phase volume"):
        track(series.ref_labels, series.greys, calibrate=[0], **kw)


def test_streamed_tracking_calibrates_as_in_memory(series):
    import pandas as pd

    from electrode_ct.operando.stream import StreamPlan, track_streamed

    greys = _drifted(series, 1.0, 8.0)
    kw = {"spacing": series.spacing, "exclude_layers": 2, "metric": "correlation",
          "calibrate": ["background"]}
    mem = track(series.ref_labels, greys, **kw)
    res = track_streamed(series.ref_labels, greys, plan=StreamPlan(factor=1), **kw)
    assert res.registration == mem.registration  # the calibration records included
    pd.testing.assert_frame_equal(res.timeseries(), mem.timeseries())
