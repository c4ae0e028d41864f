"""The ilastik loop's retrain (segment.forest_loop): cached slice features, quick and full fits."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.segment.features import parse_features
from electrode_ct.segment.forest_loop import ScribbleSession
from electrode_ct.segment.forest_train import train_forest
from electrode_ct.segment.scribbles import simulate_scribbles
from electrode_ct.segment.tree_arrays import forest_to_arrays
from electrode_ct.synth.phantom import electrode

NAMES = ["pore", "cbd", "active"]


@pytest.fixture(scope="module")
def scene():
    ph = electrode((16, 40, 40), radius_mean_um=2.0, radius_sd_um=0.4, seed=5)
    grey = ph.grey.with_data(ph.grey.numpy().astype(np.float32))
    truth = ph.phases.numpy()
    strokes = simulate_scribbles(truth, coverage=0.05, slices=[4, 12], seed=0)
    return grey, truth, strokes


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_full_model_is_train_forest_with_slice_blocks(scene, mode):
    grey, _, strokes = scene
    session = ScribbleSession(grey, features="minimal", mode=mode)
    got = session.full_model(strokes, class_names=NAMES, n_trees=6)
    ref = train_forest(grey, strokes, features=parse_features("minimal", mode=mode),
                       class_names=NAMES, n_trees=6)  # the CLI's default blocks
    assert got.report["training_data"] == ref.report["training_data"]
    assert got.report["oob_accuracy"] == ref.report["oob_accuracy"]
    a, b = forest_to_arrays(got.stage1)[0], forest_to_arrays(ref.stage1)[0]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_retrain_filters_only_new_slices_and_the_view_equals_predict(scene):
    grey, _, strokes = scene
    session = ScribbleSession(grey, features="minimal", mode="2d")
    session.quick_model(strokes, class_names=NAMES, n_trees=4)
    assert session.filtered == 2  # the two scribbled slices
    more = strokes.copy()
    more[9] = simulate_scribbles(scene[1], coverage=0.05, slices=[9], seed=1)[9]
    model = session.quick_model(more, class_names=NAMES, n_trees=4)
    assert session.filtered == 3  # the stroke's slice only
    assert model.report["interactive"] and np.isnan(model.report["oob_accuracy"])
    view = (slice(9, 10), slice(5, 36), slice(0, 40))
    pred = session.predict_view(model, view)
    assert session.filtered == 3  # the view's slice was cached by the stroke
    whole = model.predict(grey, uncertainty=True)
    np.testing.assert_array_equal(pred.labels, whole.labels[view])
    np.testing.assert_allclose(pred.uncertainty, whole.uncertainty[view], atol=1e-6)
    other = session.predict_view(train_forest(grey, more, features="minimal", mode="3d",
                                              n_trees=4), view)  # another feature mode
    assert other.labels.shape == pred.labels.shape and session.filtered == 3
    assert session.matches(grey, session.config)
    assert not session.matches(grey, parse_features("default", mode="2d"))
    assert not session.matches(grey.with_data(grey.numpy() + 1), session.config)


def test_quick_model_keeps_the_full_models_validation_accuracy(scene):
    grey, truth, strokes = scene
    session = ScribbleSession(grey, features="default", mode="2d")
    full = session.full_model(strokes, class_names=NAMES, n_trees=32)
    quick = session.quick_model(strokes, class_names=NAMES)
    held_out = [0, 7, 10, 15]

    def accuracy(model):
        return np.mean([np.mean(session.predict_view(model, (slice(z, z + 1), slice(0, 40),
                                                              slice(0, 40))).labels[0] - 1
                                == truth[z]) for z in held_out])

    assert accuracy(quick) >= accuracy(full) - 0.02
