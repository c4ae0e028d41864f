"""The operando widget: tracked labels and per-particle ΔI equal the library's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed")


def test_operando_widget_tracks_and_paints_the_change(make_napari_viewer, qtbot):
    from electrode_ct.napari._operando import DELTA, STATES, TRACKED, OperandoWidget
    from electrode_ct.operando.phantom import shifted_series
    from electrode_ct.operando.track import track
    from electrode_ct.stats import paired

    s = shifted_series(shape=(32, 56, 56), radius=(6.0, 8.0), n_particles=25, noise=2.0,
                       drop=4.0, seed=2)
    viewer = make_napari_viewer()
    for i, g in enumerate(s.greys):
        viewer.add_image(g.astype(np.float32), name=f"state {i}", scale=s.spacing)
    viewer.add_labels(s.ref_labels, name="reference particles", scale=s.spacing)
    w = OperandoWidget(viewer)
    w.states.value = ["state 0", "state 1"]
    w.track()
    qtbot.waitUntil(lambda: not w.jobs.running, timeout=120_000)
    assert w.jobs.last_error is None
    ref = w.result  # the library's TrackResult behind the layers
    np.testing.assert_array_equal(viewer.layers[TRACKED].data, np.stack(ref.labels))
    again = track(s.ref_labels, [g.astype(np.float32) for g in s.greys], spacing=s.spacing)
    # the same call outside the viewer: SimpleITK's multi-threaded registration is not
    # bit-reproducible, a voxel or so of the propagated labels may differ
    assert np.mean(np.stack(again.labels) != np.stack(ref.labels)) < 1e-4
    assert viewer.layers[STATES].data.shape == (2, *s.greys[0].shape)
    tables = ref.state_tables()
    per = paired(tables[0], tables[1], column="roi_mean")[1]
    painted = viewer.layers[DELTA].data
    for label, delta in per[["label", "delta"]].to_numpy()[:5]:
        np.testing.assert_allclose(painted[1][ref.labels[1] == label], delta, rtol=1e-5)
    assert np.all(painted[0][np.isfinite(painted[0])] == 0)  # the reference: no change
    assert viewer.dims.axis_labels[0] == "state"
    w.states.value = ["state 0"]  # one state: a message, no job
    assert w.track() is None and "at least two" in w.jobs.last_error
