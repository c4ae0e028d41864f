"""The plugin's widgets driven as a user would, in a real napari viewer (virtual display).

Each test sets layer data, presses the widget's buttons, waits for the worker thread and
compares what appears in the viewer with the library call on the same data.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed")

from electrode_ct.napari._common import camera  # noqa: E402
from electrode_ct.napari._layers import volume_layer  # noqa: E402
from electrode_ct.synth.phantom import electrode  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def phantom():
    """A small phantom, grey as float32 (skimage's multi-Otsu on uint16 takes 65 536 bins)."""
    ph = electrode((24, 40, 40), radius_mean_um=2.0, radius_sd_um=0.4, seed=3)
    ph.grey = ph.grey.with_data(ph.grey.numpy().astype(np.float32))
    return ph


@pytest.fixture(scope="module")
def scheduler():
    """A real Dask LocalCluster shared by the tests that force the out-of-core engine (its
    worker in this process: a worker process would spend most of the test importing)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _engine(widget, out, address):
    """Force the widget's whole-volume job onto the engine (the cluster at ``address``)."""
    widget.engine.above.value, widget.engine.compute = 0, {"scheduler": address}
    widget.engine.output.value = out


def _add(viewer, vol, name, labels=None):
    data, kwargs, kind = volume_layer(vol, name=name, labels=labels)
    return getattr(viewer, f"add_{kind}")(data, **kwargs)


def _wait(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.running, timeout=TIMEOUT_MS)


def test_threshold_widget_equals_library(make_napari_viewer, qtbot, phantom, tmp_path,
                                         scheduler):
    from electrode_ct.napari._threshold import PREVIEW, RESULT, ThresholdWidget
    from electrode_ct.segment.threshold import threshold, threshold_values

    viewer = make_napari_viewer()
    _add(viewer, phantom.grey, "grey")
    w = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(w)
    grey = phantom.grey.numpy()
    w.method.value = "multiotsu"
    np.testing.assert_allclose(w.cuts, threshold_values(grey, method="multiotsu", classes=3))
    lines = [ln.get_xdata()[0] for ln in w.histogram.lines]
    np.testing.assert_allclose(lines, w.cuts)  # the histogram shows the cuts
    viewer.dims.set_point(0, 10 * phantom.grey.spacing[0])
    w.preview()
    _wait(qtbot, w.jobs)
    preview = viewer.layers[PREVIEW]
    expect = threshold(grey, method="multiotsu")
    assert preview.data.shape[0] == 1
    np.testing.assert_array_equal(preview.data[0], expect[10])
    assert preview.translate[0] == 10 * phantom.grey.spacing[0]  # shown on that slice only
    w.apply()
    _wait(qtbot, w.jobs)
    layer = viewer.layers[RESULT]
    np.testing.assert_array_equal(layer.data, expect)
    assert list(layer.features["class"]) == ["pore", "cbd", "active"]
    assert tuple(layer.scale) == phantom.grey.spacing
    _engine(w, out := tmp_path / "phases.ome.zarr", scheduler)
    w.apply()
    _wait(qtbot, w.jobs)
    lazy = viewer.layers[RESULT]
    assert hasattr(lazy.data, "dask") and out.is_dir()  # a lazy layer over the OME-Zarr
    np.testing.assert_array_equal(np.asarray(lazy.data), expect)
    assert list(lazy.features["class"]) == ["pore", "cbd", "active"]
    w.method.value = "manual"
    w.thresholds.value = "1e9"  # outside the data range: a message, no traceback
    assert w.update_cuts() is None


def test_forest_loop_equals_library_and_saves_the_cli_model(make_napari_viewer, qtbot,
                                                            phantom, tmp_path, scheduler):
    from electrode_ct.napari._forest import NEXT, PREDICTION, UNCERTAINTY, VOLUME, ForestWidget
    from electrode_ct.segment.forest_loop import ScribbleSession
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.models import load_model, write_archive
    from electrode_ct.segment.scribbles import simulate_scribbles, uncertain_regions

    viewer = make_napari_viewer()
    _add(viewer, phantom.grey, "grey")
    w = ForestWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.class_names.value = "pore,cbd,active"
    names = ["pore", "cbd", "active"]
    layer = w.new_scribbles()
    assert layer.data.shape == phantom.grey.shape and layer.mode == "paint"
    truth = phantom.phases.numpy()
    strokes = simulate_scribbles(truth, coverage=0.05, n_slices=3, seed=0)
    layer.data = strokes  # the user's strokes (0 unlabelled, 1..3)
    w.trees.value, w.features.value = 8, "minimal"
    viewer.dims.set_point(0, 12 * phantom.grey.spacing[0])
    w.train()  # default: 2-D features (only the scribbled slices are filtered)
    _wait(qtbot, w.jobs)
    view = w.view
    assert view[0] == slice(12, 13) and w.session.filtered == 3  # the view is scribbled
    quick2 = ScribbleSession(phantom.grey, features="minimal", mode="2d").quick_model(
        strokes, class_names=names)
    np.testing.assert_array_equal(viewer.layers[PREDICTION].data,
                                  quick2.predict(phantom.grey).labels[view])
    w.mode.value = "3d"  # paint more / change the features: retrain
    w.train()
    _wait(qtbot, w.jobs)
    session = ScribbleSession(phantom.grey, features="minimal", mode="3d")
    quick = session.quick_model(strokes, class_names=names).predict(phantom.grey,
                                                                    uncertainty=True)
    np.testing.assert_array_equal(viewer.layers[PREDICTION].data, quick.labels[view])
    np.testing.assert_allclose(viewer.layers[UNCERTAINTY].data, quick.uncertainty[view],
                               atol=1e-6)
    points = w.label_next()
    regions = uncertain_regions(quick.uncertainty[view], n=5, size=32)
    assert viewer.layers[NEXT] is points and len(points.data) == len(regions)
    path = w.model_path.value = tmp_path / "forest.ectmodel"
    w.save_model()  # the full model, fitted as `ect segment train-forest` does
    _wait(qtbot, w.jobs)
    ref = train_forest(phantom.grey, strokes, features="minimal", mode="3d",
                       class_names=names, n_trees=8)
    whole = ref.predict(phantom.grey).labels
    saved = load_model(path)
    assert saved.report["training_data"] == ref.report["training_data"]
    np.testing.assert_array_equal(saved.predict(phantom.grey).labels, whole)
    w.apply()  # the whole volume, block by block in the worker
    _wait(qtbot, w.jobs)
    np.testing.assert_array_equal(viewer.layers[VOLUME].data, whole)
    _engine(w, out := tmp_path / "phases.ome.zarr", scheduler)
    w.apply()
    _wait(qtbot, w.jobs)
    lazy = viewer.layers[VOLUME].data
    assert hasattr(lazy, "dask") and out.is_dir()  # a lazy layer over the OME-Zarr
    np.testing.assert_array_equal(np.asarray(lazy), whole)
    layer.data = np.where(layer.data == 1, 0, layer.data).astype(np.uint8)  # one class gone
    w.train()
    _wait(qtbot, w.jobs)
    assert w.jobs.last_error and "class" in w.jobs.last_error  # a message, not a dialog
    layer.data = np.zeros((2, 4, 4), np.uint8)  # scribbles of another shape
    w.train()
    _wait(qtbot, w.jobs)
    assert "shape" in w.jobs.last_error
    write_archive(tmp_path / "other.ectmodel", {"kind": "cnn"}, {})
    w.model_path.value = tmp_path / "other.ectmodel"
    assert w.load_model() is None
    assert "expected a 'forest' model" in w.jobs.last_error


def test_particles_preview_and_volume_equal_library(make_napari_viewer, qtbot, phantom):
    from electrode_ct.napari._particles import PREVIEW, RESULT, ParticlesWidget, crop_around
    from electrode_ct.particles.separate import separate_particles

    viewer = make_napari_viewer()
    _add(viewer, phantom.phases, "phases", labels=True)
    w = ParticlesWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.heal.value, w.h.value, w.crop.value = 0.5, 0.6, 16
    sp = phantom.phases.spacing
    viewer.dims.set_point(0, 12 * sp[0])
    camera(viewer).center = (12 * sp[0], 20 * sp[1], 20 * sp[2])
    w.preview()
    _wait(qtbot, w.jobs)
    phases = phantom.phases
    region = crop_around(phases, (12, 20, 20), 16)
    crop = phases.with_data(phases.numpy()[region])
    ref = separate_particles(crop, phase="active", heal_cracks_um=0.5, h=0.6)
    layer = viewer.layers[PREVIEW]
    np.testing.assert_array_equal(layer.data, ref.labels)
    expect = [o + s.start * d
              for o, s, d in zip(phases.origin, region, phases.spacing, strict=True)]
    np.testing.assert_allclose(layer.translate, expect)
    w.apply()
    _wait(qtbot, w.jobs)
    whole = separate_particles(phases, phase="active", heal_cracks_um=0.5, h=0.6)
    np.testing.assert_array_equal(viewer.layers[RESULT].data, whole.labels)


def test_table_measures_selects_colours_filters_exports(make_napari_viewer, qtbot,
                                                        phantom, tmp_path):
    from electrode_ct.io import read_table
    from electrode_ct.measure.table import particle_table
    from electrode_ct.napari._table import TableWidget

    viewer = make_napari_viewer()
    grey = _add(viewer, phantom.grey, "grey")
    parts = _add(viewer, phantom.particles, "particles", labels=True)
    w = TableWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.grey.value = grey.name
    w.measure()
    _wait(qtbot, w.jobs)
    ref, _ = particle_table(phantom.particles.numpy(), phantom.grey.numpy(),
                            spacing=phantom.grey.spacing)
    np.testing.assert_allclose(w.data["volume_um3"], ref["volume_um3"])
    np.testing.assert_allclose(w.data["grey_mean"], ref["grey_mean"])
    row = 3
    label = int(w.shown["label"].iloc[row])
    w.table.native.selectRow(row)  # click a row: the particle is selected and centred
    assert parts.selected_label == label and parts.show_selected_label
    centre = ref.loc[ref["label"] == label, ["centroid_y_um", "centroid_x_um"]].to_numpy()[0]
    np.testing.assert_allclose(camera(viewer).center[-2:], centre)
    other = int(w.shown["label"].iloc[5])
    parts.selected_label = other  # pick in the viewer: its row is selected
    assert {i.row() for i in w.table.native.selectedIndexes()} == {5}
    w.colour_by.value = "volume_um3"
    w.reset_choices()  # napari does so on every layer change: the choice stays
    assert w.colour_by.value == "volume_um3"
    painted = viewer.layers["particles by volume_um3"].data
    lab = phantom.particles.numpy()
    inside = lab == label
    np.testing.assert_allclose(painted[inside], ref.loc[ref["label"] == label,
                                                        "volume_um3"].iloc[0])
    w.query.value = "volume_um3 > 20"
    assert (w.shown["volume_um3"] > 20).all() and len(w.shown) == (ref["volume_um3"] > 20).sum()
    w.out.value = tmp_path / "big.parquet"
    w.export()
    np.testing.assert_array_equal(read_table(tmp_path / "big.parquet")["label"],
                                  w.shown["label"])


def _gated_job(started, gate, steps=100):
    def job(progress):
        for _ in progress(range(steps)):
            started.set()
            gate.wait(10)
        return "finished"

    return job


def _running_panel(make_napari_viewer):
    """A docked job panel whose job waits at its first step until ``gate`` is set."""
    import threading

    from electrode_ct.napari._jobs import JobPanel

    viewer = make_napari_viewer()
    panel = JobPanel()
    viewer.window.add_dock_widget(panel)
    started, gate, results = threading.Event(), threading.Event(), []
    panel.start(_gated_job(started, gate), results.append, title="gated")
    assert started.wait(10) and panel.running
    return viewer, panel, gate, results


def test_cancel_stops_the_job_and_hands_nothing_back(make_napari_viewer, qtbot):
    import threading

    _, panel, gate, results = _running_panel(make_napari_viewer)
    panel.cancel()
    gate.set()
    _wait(qtbot, panel)
    assert results == [] and panel.last_error == "cancelled"
    panel.start(_gated_job(threading.Event(), gate, steps=0), results.append, title="ok")
    _wait(qtbot, panel)
    assert results == ["finished"]


def test_closing_the_viewer_mid_job_is_quiet(make_napari_viewer, qtbot):
    viewer, panel, gate, results = _running_panel(make_napari_viewer)
    viewer.close()
    qtbot.waitUntil(lambda: not panel._alive, timeout=TIMEOUT_MS)  # the widget went away
    gate.set()
    _wait(qtbot, panel)
    assert results == [] and panel.last_error == "cancelled"


def _hold_the_worker(name):
    """A real task that keeps the cluster's only worker thread busy until the
    ``distributed.Event`` ``name`` is set (the engine's blocks queue behind it)."""
    from distributed import Event

    return Event(name).wait(30)


def test_cancel_on_the_engine_leaves_no_store_and_only_a_message(
        make_napari_viewer, qtbot, phantom, tmp_path, scheduler):
    from distributed import Client, Event
    from napari.utils.notifications import NotificationSeverity, notification_manager

    from electrode_ct.napari._threshold import RESULT, ThresholdWidget

    viewer = make_napari_viewer()
    _add(viewer, phantom.grey, "grey")
    w = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.method.value = "otsu"
    _engine(w, out := tmp_path / "phases.ome.zarr", scheduler)
    seen = len(notification_manager.records)
    name = f"ect-napari-cancel-{tmp_path.name}"
    with Client(scheduler) as client:
        gate = Event(name, client=client)
        busy = client.submit(_hold_the_worker, name, pure=False)
        w.apply_button.native.click()
        # the job runs: its partial store is on disk, its blocks wait for the worker
        qtbot.waitUntil(lambda: any(tmp_path.glob("ect-engine-*/labels.ome.zarr")),
                        timeout=TIMEOUT_MS)
        assert w.jobs.running
        w.jobs._cancel.native.click()  # the panel's Cancel button
        gate.set()
        _wait(qtbot, w.jobs)
        busy.result()
    assert w.jobs.last_error == "cancelled" and RESULT not in viewer.layers
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nor any work folder
    news = notification_manager.records[seen:]
    assert [n.message for n in news] == ["cancelled; nothing was written"]
    assert news[0].severity == NotificationSeverity.INFO  # a message, not an error


def test_viewer_work_exported_as_config_replays_with_ect_run(make_napari_viewer, qtbot,
                                                             phantom, tmp_path, run_cli):
    from electrode_ct.io import read, write
    from electrode_ct.napari._particles import ParticlesWidget
    from electrode_ct.napari._pipeline import PipelineWidget
    from electrode_ct.napari._reader import read_layers
    from electrode_ct.napari._threshold import ThresholdWidget

    write(phantom.grey, tmp_path / "grey.tif")
    viewer = make_napari_viewer()
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "grey.tif"))
    viewer.add_image(data, **kwargs)
    thr, parts, pipe = ThresholdWidget(viewer), ParticlesWidget(viewer), PipelineWidget(viewer)
    thr.method.value, thr.offset.value = "multiotsu", 2.0
    thr.apply()
    _wait(qtbot, thr.jobs)
    parts.phases.value = "phases"
    parts.heal.value = 0.5
    parts.apply()
    _wait(qtbot, parts.jobs)
    pipe.export_path.value = tmp_path / "viewer.yaml"
    pipe.output.value = str(tmp_path / "run")
    assert pipe.export() == tmp_path / "viewer.yaml", pipe.jobs.last_error
    code, _, err = run_cli("run", tmp_path / "viewer.yaml")
    assert code == 0, err
    np.testing.assert_array_equal(read(tmp_path / "run/volumes/phases_0.tif").data,
                                  viewer.layers["phases"].data)
    np.testing.assert_array_equal(read(tmp_path / "run/volumes/particles.tif").data,
                                  viewer.layers["particles"].data)
    pipe.config.value = tmp_path / "viewer.yaml"  # run it from the viewer: resumes, opens
    pipe.run()
    _wait(qtbot, pipe.jobs)
    assert pipe.result["skipped"] and "particles" in pipe.result["skipped"]
    np.testing.assert_array_equal(viewer.layers["phases_0"].data, viewer.layers["phases"].data)


def test_cracks_widget_paints_flaw_scores_of_the_library(make_napari_viewer, qtbot, phantom):
    from electrode_ct.cracks.classify import classify
    from electrode_ct.napari._cracks import SCORE, THREE_PHASE, CracksWidget

    viewer = make_napari_viewer()
    _add(viewer, phantom.grey, "grey")
    _add(viewer, phantom.particles, "particles", labels=True)
    w = CracksWidget(viewer)
    w.classify()
    _wait(qtbot, w.jobs)
    assert w.jobs.last_error is None
    ref = classify(phantom.grey.numpy(), phantom.particles.numpy(),
                   spacing=phantom.grey.spacing)
    np.testing.assert_allclose(w.result.table["flaw_score"], ref.table["flaw_score"])
    np.testing.assert_array_equal(viewer.layers[THREE_PHASE].data, ref.phases)
    assert list(viewer.layers[THREE_PHASE].features["class"]) == ["exterior", "solid", "flaw"]
    lab = phantom.particles.numpy()
    first = ref.table.iloc[0]
    np.testing.assert_allclose(viewer.layers[SCORE].data[lab == first["label"]],
                               first["flaw_score"], rtol=1e-6)


def test_cnn_widget_trains_on_picked_slices_and_compares_with_forest(
        make_napari_viewer, qtbot, phantom, tmp_path):
    pytest.importorskip("torch", reason="the dl extra is not installed")
    from electrode_ct.metrics.compare import compare
    from electrode_ct.napari._cnn import PREDICTION, CNNWidget
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.train import train
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.models import load_model

    viewer = make_napari_viewer()
    _add(viewer, phantom.grey, "grey")
    truth = phantom.phases.numpy() + 1  # dense labels 1..3 (0 = unlabelled)
    names = {"pore": 1, "cbd": 2, "active": 3}
    _add(viewer, phantom.grey.with_data(truth.astype(np.uint8)).with_class_map(names),
         "labels", labels=True)
    w = CNNWidget(viewer)
    tiny = dict(arch="lrcs", channels=8, depth=2, kernel=3, patch=32, patches_per_epoch=32,
                batch_size=8, lr=5e-2, threads=1, members=1, ema=0.0)
    w.config, w.epochs.value, w.slices.value, w.val.value = tiny, 8, "6, 18", 12
    w.train()
    _wait(qtbot, w.jobs)
    assert w.jobs.last_error is None and w.model is not None
    assert list(w.model.class_names) == ["pore", "cbd", "active"]  # the layer's names
    sparse = np.zeros_like(truth)
    sparse[[6, 18]] = truth[[6, 18]]
    grey = phantom.grey.numpy()
    ref = train(grey, sparse, config=TrainConfig(**tiny, epochs=8), val=(grey[12], truth[12]),
                slices_2d=True)
    expect = ref.model.predict(phantom.grey, two_d=True).labels
    assert len(np.unique(expect)) == 3  # a network that segments: equal labels are not collapse
    np.testing.assert_array_equal(w.model.predict(phantom.grey, two_d=True).labels, expect)
    w.predict()
    _wait(qtbot, w.jobs)
    np.testing.assert_array_equal(viewer.layers[PREDICTION].data, expect)
    forest = train_forest(grey, sparse, features="minimal", mode="2d", n_trees=8)
    w.forest_path.value = forest.save(tmp_path / "forest.ectmodel")
    scores = w.compare()
    # the validation slice is predicted on its own (its own image statistics), as
    # `ect segment train-cnn --val` scores it
    alone = ref.model.predict(phantom.grey.with_data(grey[12][None]), two_d=True).labels[0]
    np.testing.assert_allclose(scores["cnn"], compare(alone, truth[12], ignore=0)["mean_iou"])
    np.testing.assert_allclose(
        scores["forest"],
        compare(forest.predict(grey).labels[12], truth[12], ignore=0)["mean_iou"])
    w.model_path.value = tmp_path / "cnn.ectmodel"
    np.testing.assert_array_equal(
        load_model(w.save_model()).predict(phantom.grey, two_d=True).labels, expect)
