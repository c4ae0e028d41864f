"""Segmentation on the out-of-core engine equals the in-memory functions: thresholds (cuts
from summed block histograms), k-means (hashed sample), forest and CNN prediction; the
CLI and the pipeline's segment step with the compute options; what is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.errors import ConfigError, InputError
from electrode_ct.segment.blockwise import kmeans_blockwise, threshold_blockwise
from electrode_ct.segment.blockwise_predict import predict_blockwise
from electrode_ct.segment.kmeans import kmeans
from electrode_ct.segment.threshold import threshold_with_cuts

BLOCKS = (11, 13, 17)
"""Block shape dividing none of the phantom's sides."""


@pytest.fixture(scope="module")
def client():
    with open_client(ComputeConfig(n_workers=2, threads_per_worker=1,
                                   memory_limit="1GB")) as c:
        yield c


@pytest.fixture(scope="module")
def grey16():
    """A 3-phase uint16 phantom (40 × 37 × 41), grey levels 9000 / 24000 / 47000 + noise."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    field = ndi.gaussian_filter(rng.random((40, 37, 41)), 2.5)
    truth = np.digitize(field, np.quantile(field, [0.35, 0.7]))
    grey = np.array([9000.0, 24000.0, 47000.0])[truth] + rng.normal(0, 2500, truth.shape)
    return np.clip(grey, 0, 65535).astype(np.uint16)


def _source(tmp_path, data):
    """``data`` as an OME-Zarr image chunked like the blocks, for block tasks to read."""
    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    write(Volume(data), tmp_path / "grey.ome.zarr", chunks=BLOCKS)
    return ZarrRef(str(tmp_path / "grey.ome.zarr"), "0")


def _labels(tmp_path, like):
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.volume import Volume

    return create_ome_zarr(tmp_path / "labels.ome.zarr", Volume(like), dtype=np.uint8,
                           chunks=BLOCKS)


CASES = [("otsu", {}), ("multiotsu", {"classes": 3}),
         ("triangle", {}), ("li", {}), ("fraction", {"fractions": [0.3, 0.3, 0.4]}),
         ("manual", {"thresholds": [15000.0, 30000.0]})]


@pytest.mark.parametrize("as_float", [False, True])
@pytest.mark.parametrize("method, kw", CASES)
def test_threshold_blockwise_equals_in_memory(grey16, method, kw, as_float):
    img = grey16.astype(np.float32) / 7.0 if as_float else grey16
    if method == "manual" and as_float:
        kw = {"thresholds": [v / 7.0 for v in kw["thresholds"]]}
    labels, cuts = threshold_with_cuts(img, method=method, offset=3.0, **kw)
    out = np.zeros(img.shape, np.uint8)
    got = threshold_blockwise(img, out, method=method, offset=3.0, block_shape=BLOCKS, **kw)
    np.testing.assert_array_equal(got, cuts)
    np.testing.assert_array_equal(out, labels)
    assert np.unique(out).size == cuts.size + 1


@pytest.mark.parametrize("method, kw", [("multiotsu", {}), ("otsu", {}),
                                        ("hysteresis", {"thresholds": [20000, 40000]})])
def test_per_slice_thresholds_run_on_blocks_of_whole_slices(grey16, method, kw):
    labels, cuts = threshold_with_cuts(grey16, method=method, two_d=True, **kw)
    out = np.zeros(grey16.shape, np.uint8)
    got = threshold_blockwise(grey16, out, method=method, two_d=True, block_shape=(7, 5, 5),
                              **kw)
    assert got.shape == (grey16.shape[0], cuts.shape[1])
    np.testing.assert_array_equal(got, cuts)
    np.testing.assert_array_equal(out, labels)


def test_hysteresis_in_3d_is_refused_on_the_engine(grey16):
    with pytest.raises(InputError, match="hysteresis.*connectivity"):
        threshold_blockwise(grey16, np.zeros(grey16.shape, np.uint8), method="hysteresis",
                            block_shape=BLOCKS)


def test_threshold_on_a_cluster_equals_in_memory(client, tmp_path, grey16):
    labels, cuts = threshold_with_cuts(grey16, method="multiotsu")
    src, dst = _source(tmp_path, grey16), _labels(tmp_path, grey16)
    got = threshold_blockwise(src, dst, method="multiotsu", block_shape=BLOCKS, client=client)
    np.testing.assert_array_equal(got, cuts)
    np.testing.assert_array_equal(dst.open()[...], labels)


@pytest.mark.parametrize("sigma, weight", [(1.0, 0.5), (0.0, 1.0)])
def test_kmeans_blockwise_equals_in_memory(grey16, sigma, weight):
    img = grey16.astype(np.float32)
    want = kmeans(img, classes=3, sigma=sigma, gradient_weight=weight, max_samples=4000)
    out = np.zeros(img.shape, np.uint8)
    fit = kmeans_blockwise(img, out, classes=3, sigma=sigma, gradient_weight=weight,
                           max_samples=4000, block_shape=BLOCKS)
    np.testing.assert_array_equal(out, want)
    assert np.all(np.diff(fit.centres[:, 0]) > 0)  # codes by increasing grey level
    means = [img[want == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]


def test_kmeans_blockwise_refuses_nan_as_in_memory(grey16):
    img = grey16.astype(np.float32)
    img[30, 30, 30] = np.nan
    for run in (lambda: kmeans(img), lambda: kmeans_blockwise(
            img, np.zeros(img.shape, np.uint8), block_shape=BLOCKS)):
        with pytest.raises(InputError, match="NaN"):
            run()


def test_kmeans_sample_does_not_depend_on_the_blocks(grey16):
    """The hashed sample is the same voxels whatever the block shape."""
    from functools import partial

    from electrode_ct.compute.engine import reduce_blocks
    from electrode_ct.segment import kmeans as km

    rate = km.sample_rate(grey16.shape, 3000)
    rows = [np.concatenate(reduce_blocks(partial(km.sample_features, shape=grey16.shape,
                                                 sigma=1.0, seed=5, rate=rate), grey16,
                                         block_shape=b, halo=km.halo(1.0)))
            for b in (BLOCKS, grey16.shape)]
    order = np.argsort(rows[0][:, 0])
    np.testing.assert_array_equal(rows[0][order], rows[1])
    assert 2500 < rows[1].shape[0] < 3500


def test_kmeans_on_a_cluster_equals_in_memory(client, tmp_path, grey16):
    want = kmeans(grey16, classes=3, max_samples=4000)
    src, dst = _source(tmp_path, grey16), _labels(tmp_path, grey16)
    kmeans_blockwise(src, dst, classes=3, max_samples=4000, block_shape=BLOCKS, client=client)
    np.testing.assert_array_equal(dst.open()[...], want)


@pytest.fixture(scope="module")
def forest(three_phase_module):
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.scribbles import simulate_scribbles

    truth, grey = three_phase_module
    scr = simulate_scribbles(truth, coverage=0.05, n_slices=4, style="uniform", seed=1)
    return train_forest(grey, scr, features="minimal", n_trees=8, n_jobs=1,
                        class_names=["pore", "cbd", "active"], spacing=(2.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def three_phase_module():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:30, :33, :35]
    truth = np.zeros(z.shape, np.uint8)
    for cz, cy, cx, r in [(10, 10, 12, 7), (20, 24, 14, 8), (12, 24, 26, 6)]:
        d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        truth[(d <= r + 2) & (truth == 0)] = 1
        truth[d <= r] = 2
    grey = np.array([50.0, 120.0, 200.0])[truth] + rng.normal(0, 8, truth.shape)
    return truth, grey.astype(np.float32)


def test_forest_prediction_blockwise_is_bitwise_equal(forest, three_phase_module):
    from electrode_ct.volume import Volume

    grey = three_phase_module[1]
    want = forest.predict(Volume(grey, spacing=(2.0, 1.0, 1.0)), probabilities=True,
                          uncertainty=True)
    lab = np.zeros(grey.shape, np.uint8)
    prob = np.zeros((3, *grey.shape), np.float32)
    unc = np.zeros(grey.shape, np.float32)
    info = predict_blockwise(forest, grey, lab, probabilities=prob, uncertainty=unc,
                             block_shape=BLOCKS)
    assert info["intensity_range"] == list(want.intensity_range)
    np.testing.assert_array_equal(lab, want.labels)
    np.testing.assert_array_equal(prob, want.probabilities)
    np.testing.assert_array_equal(unc, want.uncertainty)


def test_forest_prediction_on_a_cluster_into_ome_zarr(client, tmp_path, forest,
                                                      three_phase_module):
    from electrode_ct.io import read
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.volume import Volume

    grey = three_phase_module[1]
    like = Volume(grey, spacing=(2.0, 1.0, 1.0))
    want = forest.predict(like, probabilities=True)
    src = _source(tmp_path, grey)
    lab = create_ome_zarr(tmp_path / "l.ome.zarr", like, dtype=np.uint8, chunks=BLOCKS)
    prob = create_ome_zarr(tmp_path / "p.ome.zarr", like, dtype=np.float32, chunks=BLOCKS,
                           lead=(3,), lead_axes=("c",))
    predict_blockwise(forest, src, lab, probabilities=prob, block_shape=BLOCKS,
                      client=client)
    np.testing.assert_array_equal(read(tmp_path / "l.ome.zarr").numpy(), want.labels)
    np.testing.assert_array_equal(prob.open()[...], want.probabilities)


@pytest.fixture(scope="module")
def cnn(three_phase_module):
    pytest.importorskip("torch")
    from electrode_ct.segment.cnn import _torch
    from electrode_ct.segment.cnn.train import TrainConfig, train

    truth, grey = (a[8:20] for a in three_phase_module)
    cfg = TrainConfig(arch="lrcs", channels=8, depth=2, kernel=3, patch=16,
                      patches_per_epoch=32, batch_size=8, epochs=10, lr=5e-2, threads=1,
                      members=1, ema=0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch, "DEFAULT_THREADS", 1)
        model = train(grey[6], truth[6] + 1, config=cfg,
                      class_names=["pore", "cbd", "active"]).model
    # a model that predicts every class: equal labels are not equal by collapse
    assert len(np.unique(model.predict(grey, tile=16, overlap=4, threads=1).labels)) == 3
    return model, grey


@pytest.mark.parametrize("mode", [{"two_d": True}, {"mode": "slice", "axis": 1}, {}])
def test_cnn_prediction_blockwise_equals_in_memory(cnn, mode):
    """Slices along z or y, and tri-planar (the model's default: three passes of
    whole-plane slabs with float32 sums kept between them) == the whole volume."""
    model, grey = cnn
    want = model.predict(grey, probabilities=True, uncertainty=True, tile=16, overlap=4,
                         threads=1, **mode)
    lab = np.zeros(grey.shape, np.uint8)
    prob = np.zeros((3, *grey.shape), np.float32)
    unc = np.zeros(grey.shape, np.float32)
    info = predict_blockwise(model, grey, lab, probabilities=prob, uncertainty=unc,
                             block_shape=(5, 5, 5), tile=16, overlap=4, threads=1, **mode)
    assert info["mode"] == ("triplanar" if not mode else "slice")
    np.testing.assert_array_equal(lab, want.labels)
    np.testing.assert_allclose(prob, want.probabilities, rtol=0, atol=1e-6)
    np.testing.assert_allclose(unc, want.uncertainty, rtol=0, atol=1e-6)


def test_triplanar_cnn_on_a_cluster_into_ome_zarr_leaves_no_sums(cnn, client, tmp_path):
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.segment.blockwise import slab_shape
    from electrode_ct.segment.blockwise_predict import prediction_plan
    from electrode_ct.volume import Volume

    model, grey = cnn
    want = model.predict(grey, probabilities=True, tile=16, overlap=4, threads=1)
    src = _source(tmp_path, grey)
    _, _, axis = prediction_plan(model, grey.shape)
    assert axis == 2  # tri-planar outputs are written by x slabs
    blocks = slab_shape(grey.shape, (5, 5, 5), axis)
    like = Volume(grey)
    lab = create_ome_zarr(tmp_path / "lab.ome.zarr", like, dtype=np.uint8, chunks=blocks)
    prob = create_ome_zarr(tmp_path / "p.ome.zarr", like, dtype=np.float32, chunks=blocks,
                           lead=(3,), lead_axes=("c",))
    predict_blockwise(model, src, lab, probabilities=prob, block_shape=(5, 5, 5),
                      client=client, tile=16, overlap=4, threads=1)
    np.testing.assert_array_equal(lab.open()[...], want.labels)
    np.testing.assert_allclose(prob.open()[...], want.probabilities, rtol=0, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.ome.zarr", "lab.ome.zarr",
                                                          "p.ome.zarr"]


def test_cli_threshold_and_kmeans_on_a_scheduler_equal_in_memory(run_cli, client, tmp_path,
                                                                 grey16):
    tifffile.imwrite(tmp_path / "g.tif", grey16)
    addr = client.scheduler.address
    for cmd, opts in (("threshold", ("--method", "multiotsu")),
                      ("kmeans", ("--classes", "3"))):
        mem, eng = tmp_path / f"{cmd}_m.tif", tmp_path / f"{cmd}_e.tif"
        code, out_m, err = run_cli("segment", cmd, tmp_path / "g.tif", mem, *opts, "--json")
        assert code == 0, err
        code, out_e, err = run_cli("segment", cmd, tmp_path / "g.tif", eng, *opts, "--json",
                                   "--scheduler", addr, "--block-shape", "11 13 17")
        assert code == 0, err
        np.testing.assert_array_equal(tifffile.imread(eng), tifffile.imread(mem))
        sm, se = json.loads(out_m), json.loads(out_e)
        assert se.pop("output") == str(eng) and sm.pop("output") == str(mem)
        assert se == sm
        assert not list(tmp_path.glob(".*ect-work"))


def test_cli_predict_writes_ome_zarr_on_a_scheduler(run_cli, client, tmp_path, forest,
                                                    three_phase_module):
    from electrode_ct.io import read

    grey = three_phase_module[1]
    tifffile.imwrite(tmp_path / "g.tif", grey)
    model = forest.save(tmp_path / "m.forest")
    want = forest.predict(read(tmp_path / "g.tif", voxel_size=(2.0, 1.0, 1.0)),
                          probabilities=True, uncertainty=True)
    code, out, err = run_cli("segment", "predict", model, tmp_path / "g.tif",
                             tmp_path / "l.zarr", "--probabilities", tmp_path / "p.zarr",
                             "--uncertainty", tmp_path / "u.tif", "--json",
                             "--voxel-size", "2 1 1",
                             "--scheduler", client.scheduler.address, "--block-shape",
                             "11 13 17")
    assert code == 0, err
    res = json.loads(out)
    np.testing.assert_array_equal(read(tmp_path / "l.zarr").numpy(), want.labels)
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "p.zarr"))["0"][...],
                                  want.probabilities)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "u.tif"), want.uncertainty)
    # a TIFF of probabilities: the (K·z, y, x) stack the in-memory path writes
    code, _, err = run_cli("segment", "predict", model, tmp_path / "g.tif", tmp_path / "l.tif",
                           "--probabilities", tmp_path / "p.tif", "--voxel-size", "2 1 1",
                           "--scheduler", client.scheduler.address)
    assert code == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"),
                                  want.probabilities.reshape(-1, *grey.shape[1:]))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), want.labels)
    np.testing.assert_allclose(res["mean_uncertainty"], want.uncertainty.mean(), rtol=1e-5)
    assert res["intensity_range"] == list(want.intensity_range)


@pytest.mark.parametrize("args, message", [
    (("watershed", "--low", "100", "--high", "150"), "no blockwise form"),
    (("threshold", "--fill-holes"), "--fill-holes"),
    (("threshold", "--method", "hysteresis", "--thresholds", "100 150"), "hysteresis"),
])
def test_cli_refusals_on_the_engine(run_cli, tmp_path, three_phase_module, args, message):
    tifffile.imwrite(tmp_path / "g.tif", three_phase_module[1])
    out = tmp_path / "o.tif"
    code, _, err = run_cli("segment", args[0], tmp_path / "g.tif", out, *args[1:],
                           "--scheduler", "tcp://127.0.0.1:1", "--block-shape", "11 13 17")
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_pipeline_segment_step_on_the_engine_equals_in_memory(client, tmp_path, grey16):
    from electrode_ct.io import read
    from electrode_ct.pipeline import parse_config, run_pipeline

    def clients():
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients))

    tifffile.imwrite(tmp_path / "g.tif", grey16)
    off = {"enabled": False}
    results = []
    before = clients()
    for name, compute in (("mem", {}), ("eng", {"scheduler": client.scheduler.address,
                                                 "block_shape": [11, 13, 17]})):
        cfg = parse_config({"input": {"grey": str(tmp_path / "g.tif"), "voxel_size": 1.0},
                            "output": str(tmp_path / name), "compute": compute,
                            "volume_format": "ome-zarr",
                            "steps": {"segment": {"threshold_method": "multiotsu"},
                                      "particles": off, "measure": off, "metrics": off,
                                      "stats": off, "report": off}})
        run_pipeline(cfg, quiet=True)
        man = json.loads((tmp_path / name / "provenance.json").read_text())
        summary = man["steps"]["segment"]["summary"]["state_0"]
        results.append((read(tmp_path / name / "volumes" / "phases_0.ome.zarr").numpy(),
                        summary))
    assert clients() == before  # the run's own client closed with the run
    np.testing.assert_array_equal(results[1][0], results[0][0])
    assert results[1][1]["thresholds"] == results[0][1]["thresholds"]
    assert results[1][1]["volume_fraction"] == results[0][1]["volume_fraction"]


def test_pipeline_watershed_without_a_blockwise_form_runs_in_memory(tmp_path, grey16):
    from electrode_ct.io import read
    from electrode_ct.pipeline import parse_config, run_pipeline
    from electrode_ct.segment.watershed import seeded_watershed

    tifffile.imwrite(tmp_path / "g.tif", grey16)
    off = {"enabled": False}
    cfg = parse_config({"input": {"grey": str(tmp_path / "g.tif"), "voxel_size": 1.0},
                        "output": str(tmp_path / "o"),
                        "compute": {"scheduler": "tcp://127.0.0.1:1"},
                        "steps": {"segment": {"method": "watershed", "low": 15000.0,
                                              "high": 35000.0},
                                  "particles": off, "measure": off, "metrics": off,
                                  "stats": off, "report": off}})
    run_pipeline(cfg, quiet=True)
    got = read(tmp_path / "o" / "volumes" / "phases_0.tif").numpy()
    np.testing.assert_array_equal(got, seeded_watershed(grey16, low=15000.0, high=35000.0))
    assert "in memory (the seeded watershed" in (tmp_path / "o" / "run.log").read_text()


def test_cnn_engine_refuses_two_d_with_another_mode(cnn):
    model, grey = cnn
    lab = np.zeros(grey.shape, np.uint8)
    with pytest.raises(ConfigError, match="z slices"):
        predict_blockwise(model, grey, lab, two_d=True, mode="triplanar",
                          block_shape=(5, 5, 5))
    with pytest.raises(ConfigError, match="expected 'slice'"):
        predict_blockwise(model, grey, lab, mode="planes", block_shape=(5, 5, 5))


def test_cli_predicts_a_triplanar_cnn_on_a_scheduler(run_cli, client, tmp_path, cnn):
    model, grey = cnn
    tifffile.imwrite(tmp_path / "g.tif", grey)
    path = model.save(tmp_path / "m.cnn")
    want = model.predict(grey, probabilities=True)
    code, out, err = run_cli("segment", "predict", path, tmp_path / "g.tif",
                             tmp_path / "l.tif", "--probabilities", tmp_path / "p.tif",
                             "--json", "--scheduler", client.scheduler.address,
                             "--block-shape", "5 5 5")
    assert code == 0, err
    assert json.loads(out)["mode"] == "triplanar"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), want.labels)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "p.tif"),
                               want.probabilities.reshape(-1, *grey.shape[1:]), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.tif", "l.tif", "m.cnn", "p.tif"]
