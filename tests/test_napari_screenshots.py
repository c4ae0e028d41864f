"""The documentation's screenshots: every widget run on the embedded real sample.

The first test runs ``scripts/napari_screenshots.py`` (threshold, forest, particles, table,
cracks); the others drive the CNN, operando and pipeline widgets, check their output against
the library call and save their screenshot with the script's :func:`_shot`. Screenshots go
to a temporary folder, or to ``$ECT_NAPARI_SHOTS`` (``docs/images`` for the documentation).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "napari_screenshots.py"
TIMEOUT_MS = 120_000


def _script():
    spec = importlib.util.spec_from_file_location("napari_screenshots", SCRIPT)
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    return shots


def _out(tmp_path):
    out = Path(os.environ.get("ECT_NAPARI_SHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_image(path):
    from skimage.io import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 400 and np.ptp(img[..., :3]) > 100


@pytest.fixture
def sample_viewer(make_napari_viewer):
    """A shown 1400 × 900 viewer holding the embedded NMC-1-cal sample and its scribbles."""
    from electrode_ct.napari._sample import nmc_microct

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    for data, kwargs, kind in nmc_microct():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


def _dock(viewer, widget, name):
    viewer.window.add_dock_widget(widget, name=name, area="right")
    return widget


def _wait(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.running, timeout=TIMEOUT_MS)
    assert panel.last_error is None, panel.last_error


def test_screenshots_of_every_widget_on_the_real_sample(make_napari_viewer, qtbot, tmp_path):
    shots = _script()

    def wait(panel):
        qtbot.waitUntil(lambda: not panel.running, timeout=TIMEOUT_MS)

    paths = shots.take(tmp_path, make_napari_viewer, wait)
    assert [p.name for p in paths] == [f"napari_{n}.png" for n in shots.SHOTS]
    for p in paths:
        _check_image(p)


def test_cnn_widget_on_the_real_sample(sample_viewer, qtbot, tmp_path):
    """A tiny network trained on the scribbles of z = 33, scored on those of z = 74."""
    pytest.importorskip("torch", reason="the dl extra is not installed")
    from electrode_ct.data import nmc_microct
    from electrode_ct.metrics.compare import compare
    from electrode_ct.napari._cnn import PREDICTION, CNNWidget
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.train import train
    from electrode_ct.segment.forest_train import train_forest

    w = _dock(sample_viewer, CNNWidget(sample_viewer), "CNN")
    w.image.value, w.dense.value = "nmc1cal", "scribbles"
    tiny = dict(arch="lrcs", channels=8, depth=2, kernel=3, patch=32, patches_per_epoch=32,
                batch_size=8, lr=1e-2, threads=1, members=1, ema=0.0)  # < 1 s of training
    w.config, w.epochs.value, w.slices.value, w.val.value = tiny, 12, "33", 74
    w.train_button.native.click()
    _wait(qtbot, w.jobs)
    w.predict_button.native.click()
    _wait(qtbot, w.jobs)
    grey, labels = nmc_microct()
    g, lab = grey.numpy(), labels.numpy()
    picked = np.zeros_like(lab)
    picked[33] = lab[33]
    ref = train(g, picked, config=TrainConfig(**tiny, epochs=12), val=(g[74], lab[74]),
                slices_2d=True)
    expect = ref.model.predict(grey, two_d=True).labels
    np.testing.assert_array_equal(sample_viewer.layers[PREDICTION].data, expect)
    forest = train_forest(g, picked, features="minimal", mode="2d", n_trees=8)
    w.forest_path.value = forest.save(tmp_path / "forest.ectmodel")
    w.compare_button.native.click()
    # the comparison predicts the validation slice on its own (normalised by its own grey
    # statistics, the model's "image" normalisation), not the volume's slice 74
    alone = ref.model.predict(grey.with_data(g[74:75]), two_d=True).labels[0]
    ious = [compare(p, lab[74], ignore=0)["mean_iou"]
            for p in (alone, forest.predict(grey).labels[74])]
    assert w.scores.value == f"cnn mean IoU {ious[0]:.3f}, forest mean IoU {ious[1]:.3f}"
    sample_viewer.dims.set_point(0, 74 * grey.spacing[0])
    _check_image(_script()._shot(sample_viewer, _out(tmp_path), "cnn", w))


def test_operando_widget_on_a_synthetic_series(make_napari_viewer, qtbot, tmp_path):
    """The embedded sample has one state: two states of a small synthetic packing."""
    from electrode_ct.napari._operando import DELTA, TRACKED, OperandoWidget
    from electrode_ct.operando.phantom import shifted_series
    from electrode_ct.stats import paired

    s = shifted_series(shape=(32, 56, 56), radius=(6.0, 8.0), n_particles=25, noise=2.0,
                       drop=20.0, seed=2)  # cracked particles 20 grey levels darker
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    for i, g in enumerate(s.greys):
        viewer.add_image(g.astype(np.float32), name=f"state {i}", scale=s.spacing)
    viewer.add_labels(s.ref_labels, name="reference particles", scale=s.spacing)
    w = _dock(viewer, OperandoWidget(viewer), "operando")
    w.states.value = ["state 0", "state 1"]
    w.track()
    _wait(qtbot, w.jobs)
    ref = w.result  # the library's TrackResult behind the layers
    np.testing.assert_array_equal(viewer.layers[TRACKED].data, np.stack(ref.labels))
    tables = ref.state_tables()
    per = paired(tables[0], tables[1], column="roi_mean")[1]
    painted = viewer.layers[DELTA].data
    for label, delta in per[["label", "delta"]].to_numpy():
        np.testing.assert_allclose(painted[1][ref.labels[1] == label], delta, rtol=1e-5)
    for name in ("state 0", "state 1", "reference particles", TRACKED):
        viewer.layers[name].visible = False
    viewer.dims.set_point(0, 1)  # the state slider on the second state
    viewer.dims.set_point(1, 16 * s.spacing[0])
    _check_image(_script()._shot(viewer, _out(tmp_path), "operando", w))


def test_pipeline_widget_runs_a_config_on_the_real_sample(sample_viewer, qtbot, tmp_path):
    """A configuration (Otsu threshold of the embedded grey file) loaded and run."""
    import yaml

    from electrode_ct.data import nmc_microct, path
    from electrode_ct.napari._pipeline import PipelineWidget
    from electrode_ct.segment.threshold import threshold

    off = {"enabled": False}
    cfg = {"input": {"grey": [str(path("nmc1cal.tif"))], "voxel_size": 0.398},
           "output": str(tmp_path / "run"),
           "steps": {"segment": {"method": "threshold", "threshold_method": "otsu"},
                     **{k: off for k in ("filter", "particles", "measure", "metrics", "stats",
                                         "report", "track", "cracks")}}}
    (tmp_path / "otsu.yaml").write_text(yaml.safe_dump(cfg))
    w = _dock(sample_viewer, PipelineWidget(sample_viewer), "pipeline")
    w.config.value = tmp_path / "otsu.yaml"
    w.run_button.native.click()
    _wait(qtbot, w.jobs)
    assert w.result["ran"] and "segment" in w.result["ran"]
    grey, _ = nmc_microct()
    np.testing.assert_array_equal(np.asarray(sample_viewer.layers["phases_0"].data),
                                  threshold(grey.numpy(), method="otsu"))
    sample_viewer.layers["scribbles"].visible = False
    _check_image(_script()._shot(sample_viewer, _out(tmp_path), "pipeline", w))
