"""Filters, crop, resample and convert out of core: blockwise == whole volume, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from electrode_ct import filters as F
from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.filters import blockwise as B
from electrode_ct.io import read, write
from electrode_ct.volume import Volume

BLOCKS = (8, 10, 12)  # divides none of the volume's sides
SPACING = (2.0, 1.0, 0.7)  # anisotropic, µm


@pytest.fixture(scope="module")
def address():
    """A LocalCluster of 2 worker processes (BLAS threads capped) shared by the module's
    engine tests: the CLI reaches it with --scheduler ADDRESS. No Client lives in the test
    process between tests (it would become dask's default scheduler for lazy reads)."""
    from distributed import LocalCluster

    from electrode_ct.compute.cluster import worker_env

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                      dashboard_address=None, env=worker_env(1), silence_logs=40) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def client(address):
    with open_client(ComputeConfig(scheduler=address)) as c:
        yield c


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    """A 30 × 37 × 41 noisy grey volume with structure (a smoothed random field)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(7)
    field = ndi.gaussian_filter(rng.random((30, 37, 41)), 3) * 4000
    return (field + rng.normal(1000, 60, field.shape)).astype(np.float32)


def _zarr(path, data=None, *, shape=None, dtype=None, chunks=BLOCKS) -> ZarrRef:
    arr = zarr.open_array(str(path), mode="w", zarr_format=2, chunks=chunks,
                          shape=shape if data is None else data.shape,
                          dtype=dtype or data.dtype)
    if data is not None:
        arr[...] = data
    return ZarrRef(str(path))


CASES = [
    ("gaussian", {"sigma": (1.5, 1.0, 2.0)}),
    ("gaussian", {"sigma": 2.0, "in_um": True, "spacing": SPACING}),
    ("median", {"size": 3}),
    ("median", {"size": (1, 3, 5)}),
    ("unsharp", {"radius": 1.2, "amount": 0.7}),
    ("rings", {"width": 9}),
    ("nlm", {"patch_size": 3, "patch_distance": 2, "slab": 8}),
    ("normalise", {"method": "percentile", "low": 1.0, "high": 99.0}),
    ("normalise", {"method": "percentile", "dtype": "uint16"}),
    ("normalise", {"method": "minmax", "dtype": "uint8"}),
]


@pytest.mark.parametrize("method, options", CASES)
def test_every_filter_blockwise_equals_the_whole_volume_bitwise(grey, method, options):
    opts = dict(options)
    spacing, in_um = opts.pop("spacing", None), opts.pop("in_um", False)
    funcs = {"gaussian": F.gaussian, "median": F.median, "unsharp": F.unsharp, "nlm": F.nlm,
             "rings": F.suppress_rings, "normalise": F.normalise}
    kw = {"spacing": spacing, "in_um": in_um} if method in ("gaussian", "median") else {}
    whole = funcs[method](grey, **opts, **kw)
    out = np.zeros(grey.shape, whole.dtype)
    if method == "normalise":
        opts["scale"] = opts.pop("method")
    opts.pop("slab", None)
    n = B.filter_blockwise(grey, out, method, spacing=spacing, in_um=in_um,
                           block_shape=BLOCKS, **opts)
    assert n > 1
    np.testing.assert_array_equal(out, whole)
    assert out.dtype == B.output_dtype(method, grey.dtype, **opts)


def test_halos_come_from_the_parameters():
    assert B.filter_halo("gaussian", (9, 9, 9), sigma=(1.5, 1.0, 2.0)) == (6, 4, 8)
    assert B.filter_halo("gaussian", (9, 9, 9), sigma=2.0, in_um=True,
                         spacing=SPACING) == (4, 8, 11)
    assert B.filter_halo("median", (9, 9, 9), size=(1, 3, 4)) == (0, 1, 2)
    assert B.filter_halo("nlm", (9, 9, 9), patch_size=5, patch_distance=6) == (9, 0, 0)
    assert B.filter_halo("rings", (9, 9, 9)) == (0, 0, 0)


def test_percentiles_of_integer_and_float_volumes_are_exact(grey):
    ints = grey.astype(np.uint16)
    for data, (low, high) in zip((grey, ints, ints[:, :, :7]),
                                 ((0.5, 99.5), (0.0, 100.0), (13.7, 50.0)), strict=True):
        got = B.percentile_limits(data, low, high, block_shape=(7, 9, 5))
        work = data.astype(np.float64)  # the in-memory rule below 2^20 voxels
        assert got == tuple(float(v) for v in np.percentile(work, [low, high]))


def test_zscore_merges_moments_within_1e6(grey):
    out = np.zeros(grey.shape, np.float32)
    B.normalise_blockwise(grey, out, method="zscore", block_shape=BLOCKS)
    np.testing.assert_allclose(out, F.normalise(grey, method="zscore"), rtol=0, atol=1e-6)


def test_a_constant_volume_is_refused_like_in_memory():
    flat = np.full((9, 9, 9), 3.0, np.float32)
    with pytest.raises(Exception, match="no spread"):
        B.normalise_blockwise(flat, np.zeros_like(flat), block_shape=(4, 4, 4))


def test_crop_and_resample_blockwise_equal_the_in_memory_functions(grey, tmp_path):
    src = _zarr(tmp_path / "in.zarr", grey)
    cropped, off = F.crop(grey, z=(3, 25), y=(5, None), x=(None, -4))
    dst = _zarr(tmp_path / "c.zarr", shape=cropped.shape, dtype=grey.dtype)
    B.crop_blockwise(src, dst, offset=off, block_shape=BLOCKS)
    np.testing.assert_array_equal(dst.open()[...], cropped)
    labels = (grey / 1500).astype(np.uint8)
    lab_src = _zarr(tmp_path / "lab.zarr", labels)
    for data, ref, is_lab in ((grey, src, False), (labels, lab_src, True)):
        whole, _ = F.resample(data, spacing=SPACING, voxel_size=1.1, labels=is_lab)
        out = _zarr(tmp_path / f"r{is_lab}.zarr", shape=whole.shape, dtype=whole.dtype)
        B.resample_blockwise(ref, out, labels=is_lab, block_shape=(16, 20, 12))
        np.testing.assert_array_equal(out.open()[...], whole)
    with pytest.raises(Exception, match="cubic"):
        B.resample_blockwise(src, out, order=3, block_shape=BLOCKS)


def test_filters_on_a_local_cluster_equal_the_serial_path(client, grey, tmp_path):
    src = _zarr(tmp_path / "in.zarr", grey)
    for method, opts in (("gaussian", {"sigma": 1.5}), ("normalise", {})):
        whole = F.apply_filter(grey, method, **opts)
        dst = _zarr(tmp_path / f"{method}.zarr", shape=grey.shape, dtype=whole.dtype)
        B.filter_blockwise(src, dst, method, block_shape=(16, 20, 24), client=client, **opts)
        np.testing.assert_array_equal(dst.open()[...], whole)


# -- CLI ---------------------------------------------------------------------------------
def test_ect_filter_on_the_engine_equals_in_memory_and_cleans_up(run_cli, grey, tmp_path,
                                                                  address):
    tifffile.imwrite(tmp_path / "g.tif", grey)
    code, _, err = run_cli("filter", tmp_path / "g.tif", tmp_path / "mem.tif", "--method",
                           "median", "--size", "3")
    assert code == 0, err
    code, _, err = run_cli("--quiet", "filter", tmp_path / "g.tif", tmp_path / "eng.ome.zarr",
                           "--method", "median", "--size", "3", "--scheduler", address,
                           "--block-shape", "8", "10", "12")
    assert code == 0, err
    np.testing.assert_array_equal(read(tmp_path / "eng.ome.zarr").numpy(),
                                  tifffile.imread(tmp_path / "mem.tif"))
    assert not list(tmp_path.glob(".*ect-work")), "the work folder is removed on success"


def test_ect_crop_and_resample_on_the_engine(run_cli, grey, tmp_path, address):
    write(Volume(grey, spacing=SPACING), tmp_path / "g.ome.zarr")
    args = ["--z", "3:25", "--x", "5:-2"]
    assert run_cli("crop", tmp_path / "g.ome.zarr", tmp_path / "m.tif", *args)[0] == 0
    assert run_cli("crop", tmp_path / "g.ome.zarr", tmp_path / "e.tif", *args,
                   "--scheduler", address, "--block-shape", "8", "8", "8")[0] == 0
    m, e = read(tmp_path / "m.tif"), read(tmp_path / "e.tif")
    np.testing.assert_array_equal(m.numpy(), e.numpy())
    assert m.origin == e.origin == (6.0, 0.0, 3.5)
    args = ["--voxel-size", "1.1"]
    assert run_cli("resample", tmp_path / "g.ome.zarr", tmp_path / "rm.tif", *args)[0] == 0
    assert run_cli("resample", tmp_path / "g.ome.zarr", tmp_path / "re.ome.zarr", *args,
                   "--scheduler", address, "--block-shape", "16", "16", "16")[0] == 0
    rm, re_ = read(tmp_path / "rm.tif"), read(tmp_path / "re.ome.zarr")
    np.testing.assert_array_equal(rm.numpy(), re_.numpy())
    assert rm.spacing == pytest.approx(re_.spacing)


def test_bad_blocks_and_budgets_are_one_line_before_anything_runs(run_cli, grey, tmp_path):
    tifffile.imwrite(tmp_path / "g.tif", grey)
    base = ["--quiet", "filter", tmp_path / "g.tif", tmp_path / "o.tif", "--method",
            "gaussian", "--n-workers", "1"]
    code, _, err = run_cli(*base, "--block-shape", "64", "64", "64")
    assert code == 2 and "larger than the volume" in err and "(30, 37, 41)" in err
    code, _, err = run_cli(*base, "--sigma", "3", "--block-shape", "8", "8", "8")
    assert code == 2 and "halo (12, 12, 12)" in err and "block (8, 8, 8)" in err
    code, _, err = run_cli(*base, "--block-shape", "16", "16", "16", "--memory-limit", "10kB")
    assert code == 2 and "memory_limit" in err and "needs" in err and "give at least" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists() and not list(tmp_path.glob(".*ect-work"))


# -- storage: streaming any reader into OME-Zarr, pyramid ---------------------------------
def _inputs(tmp_path, data):
    """The same volume in each lazily readable format."""
    import h5py

    np.save(tmp_path / "v.npy", data)
    tifffile.imwrite(tmp_path / "v.tif", data, bigtiff=True)
    (tmp_path / "slices").mkdir()
    for i, plane in enumerate(data):
        tifffile.imwrite(tmp_path / "slices" / f"s_{i:03d}.tif", plane)
    with h5py.File(tmp_path / "v.h5", "w") as fh:
        fh.create_dataset("data", data=data, chunks=(4, 8, 8))
    from _olewriter import write_ole
    from test_io_txm import _txm_streams

    write_ole(tmp_path / "v.txm", _txm_streams(data))
    data.tofile(tmp_path / "v.raw")
    (tmp_path / "v.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = {} {} {}\nElementType = MET_USHORT\n"
        "ElementSpacing = 1 1 1\nElementDataFile = v.raw\n".format(*data.shape[::-1]))
    return ["v.npy", "v.tif", "slices", "v.h5", "v.mhd", "v.txm"]


def test_convert_streams_every_lazy_reader_into_ome_zarr(run_cli, tmp_path):
    data = np.random.default_rng(2).integers(0, 60000, (21, 33, 26), dtype=np.uint16)
    for name in _inputs(tmp_path, data):
        out = tmp_path / f"{name}.ome.zarr"
        code, _, err = run_cli("--quiet", "convert", tmp_path / name, out, "--chunks", "8",
                               "16", "16", "--pyramid", "2")
        assert code == 0, (name, err)
        np.testing.assert_array_equal(read(out).numpy(), data, err_msg=name)
        assert zarr.open_array(str(out / "0")).chunks == (8, 16, 16)
        level0, level2 = read(out), read(out, level=2)
        assert level2.shape == (6, 9, 7)
        assert level2.spacing == tuple(4 * s for s in level0.spacing)


def test_streaming_holds_one_slab_not_the_volume(tmp_path):
    from electrode_ct.io.stream import slabs, stream_to_ome_zarr

    data = np.arange(20 * 30 * 40, dtype=np.uint16).reshape(20, 30, 40)
    seen = []

    class Spy:
        shape, dtype, ndim = data.shape, data.dtype, 3

        def __getitem__(self, region):
            seen.append(region)
            return data[region]

    budget = 4 * 8 * 10 * 40 * 2  # a quarter of it: one row of 8 x 10 chunks
    vol = Volume(Spy(), spacing=1.0)
    stream_to_ome_zarr(vol, tmp_path / "s.ome.zarr", chunks=(8, 10, 10), memory_limit=budget,
                       pyramid=0)
    assert seen == slabs(data.shape, (8, 10, 10), 2, memory_limit=budget)
    assert max(np.prod([s.stop - s.start for s in r]) for r in seen) * 2 <= budget / 4
    np.testing.assert_array_equal(read(tmp_path / "s.ome.zarr").numpy(), data)


def test_pyramid_levels_are_block_means_for_grey_and_nearest_for_labels(tmp_path):
    from electrode_ct.io.stream import downsample2, stream_to_ome_zarr

    grey = np.random.default_rng(0).integers(0, 255, (9, 12, 11), dtype=np.uint8)
    labels = (grey // 100).astype(np.uint8)
    stream_to_ome_zarr(Volume(grey, spacing=0.5), tmp_path / "g.ome.zarr", chunks=(2, 3, 3),
                       pyramid=1)
    lab = Volume(labels, spacing=0.5).with_class_map({"a": 0, "b": 1, "c": 2})
    stream_to_ome_zarr(lab, tmp_path / "l.ome.zarr", chunks=(2, 3, 3), pyramid=1)
    g1, l1 = read(tmp_path / "g.ome.zarr", level=1), read(tmp_path / "l.ome.zarr", level=1)
    np.testing.assert_array_equal(g1.numpy(), downsample2(grey, labels=False))
    np.testing.assert_array_equal(l1.numpy(), labels[::2, ::2, ::2])
    pad = np.pad(grey.astype(float), [(0, 1), (0, 0), (0, 1)], mode="edge")
    assert g1.numpy()[0, 0, 0] == np.rint(pad[:2, :2, :2].mean())
    assert g1.origin == (0.25, 0.25, 0.25) and l1.origin == (0.0, 0.0, 0.0)
    assert l1.class_map == {"a": 0, "b": 1, "c": 2}


def test_chunks_come_from_the_volume_and_budget_and_bad_chunks_are_refused(run_cli, tmp_path):
    from electrode_ct.io.stream import choose_chunks

    assert choose_chunks((2048, 2048, 2048), 2) == (128, 128, 128)
    assert choose_chunks((2048, 2048, 2048), 2, memory_limit=4 * 10**9)[0] < 128
    np.save(tmp_path / "v.npy", np.zeros((5, 6, 7), np.uint8))
    code, _, err = run_cli("convert", tmp_path / "v.npy", tmp_path / "o.ome.zarr", "--chunks",
                           "8", "8", "8")
    assert code == 2 and "larger than the volume" in err and not (tmp_path / "o.ome.zarr").exists()


def test_convert_builds_the_pyramid_on_a_cluster(run_cli, tmp_path, address):
    from electrode_ct.io.stream import downsample2

    data = np.random.default_rng(4).integers(0, 4000, (20, 24, 28), dtype=np.uint16)
    np.save(tmp_path / "v.npy", data)
    code, _, err = run_cli("--quiet", "convert", tmp_path / "v.npy", tmp_path / "v.ome.zarr",
                           "--chunks", "4", "4", "4", "--pyramid", "2", "--scheduler", address)
    assert code == 0, err
    level1 = read(tmp_path / "v.ome.zarr", level=1).numpy()
    np.testing.assert_array_equal(level1, downsample2(data, labels=False))
    np.testing.assert_array_equal(read(tmp_path / "v.ome.zarr", level=2).numpy(),
                                  downsample2(level1, labels=False))


def test_cluster_script_prints_dask_jobqueues_job_script(run_cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: {grey: g.tif}\ncompute: {scheduler: pbs, threads_per_worker: 2, "
                   "jobqueue: {walltime: '00:30:00'}}\n")
    code, out, err = run_cli("cluster", "script", "--config", cfg, "--scheduler", "pbs",
                             "--memory-limit", "8GB", "--queue", "short")
    assert code == 0, err
    assert out.startswith("#!/usr/bin/env bash") and "#PBS -q short" in out
    assert "walltime=00:30:00" in out and "export OMP_NUM_THREADS=2" in out
    code, _, err = run_cli("cluster", "script", "--scheduler", "local")
    assert code == 2 and err.startswith("error:") and "slurm, pbs, sge, lsf" in err


def test_an_interrupted_engine_command_resumes_from_its_work_folder(run_cli, grey, tmp_path,
                                                                    address, monkeypatch):
    from electrode_ct.cli import _engine

    tifffile.imwrite(tmp_path / "g.tif", grey)
    args = ["filter", tmp_path / "g.tif", tmp_path / "o.tif", "--method", "gaussian",
            "--scheduler", address, "--block-shape", "16", "20", "24"]
    finish = _engine.EngineJob.finish

    def interrupted(self, ref):
        raise KeyboardInterrupt

    monkeypatch.setattr(_engine.EngineJob, "finish", interrupted)
    assert run_cli(*args)[0] == 130 and not (tmp_path / "o.tif").exists()
    work = list(tmp_path.glob(".o.tif.*.ect-work"))
    markers = list(work[0].glob("output.ome.zarr/.ect_done/0/*"))
    assert len(work) == 1 and len(markers) == 8  # every block finished and marked
    monkeypatch.setattr(_engine.EngineJob, "finish", finish)
    computed = []
    run_blocks = B.run_blocks
    monkeypatch.setattr(B, "run_blocks", lambda *a, **k: computed.append(run_blocks(*a, **k)))
    code, _, err = run_cli(*args)
    assert code == 0 and "resuming from" in err and computed == [0]  # no block recomputed
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), F.gaussian(grey))
    assert not work[0].exists()
