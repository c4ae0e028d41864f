"""Operando tracking streamed one state at a time (blocks, LocalCluster, CLI) == in memory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.io import read, read_table, write
from electrode_ct.operando import register_rigid, track
from electrode_ct.operando.phantom import shifted_series
from electrode_ct.operando.propagate import otsu_foreground, propagate_labels
from electrode_ct.operando.stream import (
    StreamPlan,
    check_states,
    move_centre,
    propagate_blocks,
    track_streamed,
)
from electrode_ct.volume import Volume

BLOCKS = (24, 36, 36)
HALO = (24, 24, 24)


@pytest.fixture(scope="module")
def series():
    return shifted_series(shape=(48, 72, 72), radius=(7.0, 10.0), n_particles=40, noise=2.0,
                          drop=1.0, cracked_fraction=0.5, seed=1)


@pytest.fixture(scope="module")
def in_memory(series):
    return track(series.ref_labels, series.greys, spacing=series.spacing, exclude_layers=2,
                 metric="correlation")


@pytest.fixture(scope="module")
def address():
    """A LocalCluster of 2 worker processes (BLAS threads capped)."""
    from distributed import LocalCluster

    from electrode_ct.compute.cluster import worker_env

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                      dashboard_address=None, env=worker_env(1), silence_logs=40) as cluster:
        yield cluster.scheduler_address


def _corner_error(a, b, shape, spacing) -> float:
    """Largest distance (voxels of the smallest edge) between where two transforms send
    the volume's corners."""
    ta, tb = a.sitk(), b.sitk()
    sp = np.asarray(spacing)[::-1]
    worst = 0.0
    for c in np.array(np.meshgrid(*[(0, n - 1) for n in shape[::-1]])).reshape(3, -1).T:
        p = (c * sp).tolist()
        worst = max(worst, float(np.linalg.norm(np.subtract(ta.TransformPoint(p),
                                                            tb.TransformPoint(p)))))
    return worst / float(min(spacing))


def test_mutual_information_registration_is_reproducible(series):
    g0, g1 = series.greys[0][:32, :48, :48], series.greys[1][:32, :48, :48]
    runs = [register_rigid(g0, g1, spacing=series.spacing, metric="mi").parameters
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_streamed_path_at_full_resolution_equals_track(series, in_memory):
    res = track_streamed(series.ref_labels, series.greys, spacing=series.spacing,
                         exclude_layers=2, metric="correlation", plan=StreamPlan(factor=1))
    assert res.transforms[1].parameters == in_memory.transforms[1].parameters
    for a, b in zip(in_memory.labels, res.labels, strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(res.timeseries(), in_memory.timeseries())
    assert res.registration == in_memory.registration


def test_downsampled_registration_refined_on_crops_within_a_tenth_of_a_voxel(series,
                                                                             in_memory):
    res = track_streamed(series.ref_labels, series.greys, spacing=series.spacing,
                         exclude_layers=2, metric="correlation",
                         plan=StreamPlan(factor=2, refine=3, edge=40))
    err = _corner_error(res.transforms[1], in_memory.transforms[1],
                        series.ref_labels.shape, series.spacing)
    assert err < 0.1
    truth = _corner_error(res.transforms[1], series.transforms[1], series.ref_labels.shape,
                          series.spacing)
    assert truth < 0.1
    assert series.truth_identity(res) >= 99.0


def test_move_centre_keeps_the_mapping(in_memory):
    t = in_memory.transforms[1]
    moved = move_centre(t, [3.0, -7.0, 11.0])
    p = [10.0, 20.0, 5.0]
    np.testing.assert_allclose(moved.sitk().TransformPoint(p), t.sitk().TransformPoint(p),
                               atol=1e-9)


def test_blockwise_propagation_differs_only_at_watershed_ties(series):
    rig = series.transforms[1]
    fg, t = otsu_foreground(series.greys[1])
    whole = propagate_labels(series.ref_labels, fg, rig, spacing=series.spacing)
    out = np.zeros(whole.shape, np.uint32)
    propagate_blocks(series.ref_labels, series.greys[1], rig, out, spacing=series.spacing,
                     block_shape=whole.shape, halo=(0, 0, 0), threshold=t)
    np.testing.assert_array_equal(out, whole)  # one block: today's result bit for bit
    propagate_blocks(series.ref_labels, series.greys[1], rig, out, spacing=series.spacing,
                     block_shape=BLOCKS, halo=HALO, threshold=t)
    diff = out != whole
    assert diff.sum() <= 5e-4 * diff.size  # 17 of 248 832 voxels here
    # only swaps between two particles, never particle <-> background
    assert (out[diff] > 0).all() and (whole[diff] > 0).all()


def test_a_particle_larger_than_the_reach_is_an_error(series):
    fg, t = otsu_foreground(series.greys[1])
    out = np.zeros(fg.shape, np.uint32)
    with pytest.raises(InputError, match=r"particle \d+ at voxel .* halo \(4, 4, 4\)"):
        propagate_blocks(series.ref_labels, series.greys[1], series.transforms[1], out,
                         spacing=series.spacing, block_shape=BLOCKS, halo=(4, 4, 4),
                         threshold=t)


def test_propagation_on_a_local_cluster_equals_the_serial_blocks(series, address, tmp_path):
    import zarr

    rig = series.transforms[1]
    _, t = otsu_foreground(series.greys[1])
    refs = {}
    for name, arr in (("ref", series.ref_labels), ("grey", series.greys[1])):
        z = zarr.open(str(tmp_path / f"{name}.zarr"), mode="w", shape=arr.shape,
                      chunks=BLOCKS, dtype=arr.dtype)
        z[...] = arr
        refs[name] = ZarrRef(str(tmp_path / f"{name}.zarr"))
    dst = zarr.open(str(tmp_path / "out.zarr"), mode="w", shape=arr.shape, chunks=BLOCKS,
                    dtype=np.uint32)
    serial = np.zeros(arr.shape, np.uint32)
    propagate_blocks(series.ref_labels, series.greys[1], rig, serial, spacing=series.spacing,
                     block_shape=BLOCKS, halo=HALO, threshold=t)
    with open_client(ComputeConfig(scheduler=address)) as client:
        propagate_blocks(refs["ref"], refs["grey"], rig, ZarrRef(str(tmp_path / "out.zarr")),
                         spacing=series.spacing, block_shape=BLOCKS, halo=HALO, threshold=t,
                         client=client)
    np.testing.assert_array_equal(dst[...], serial)


def test_states_of_another_shape_or_spacing_are_refused():
    check_states([(4, 5, 6), (4, 5, 6)], [(1, 1, 1), (1, 1, 1)], ["ref", "g0"])
    with pytest.raises(ShapeError, match=r"g1: shape \(4, 5, 7\) .* shape \(4, 5, 6\) of ref"):
        check_states([(4, 5, 6), (4, 5, 6), (4, 5, 7)], [(1, 1, 1)] * 3, ["ref", "g0", "g1"])
    with pytest.raises(ShapeError, match=r"g0: voxel size \(2.0, 1.0, 1.0\) .* of ref"):
        check_states([(4, 5, 6)] * 2, [(1, 1, 1), (2, 1, 1)], ["ref", "g0"])


@pytest.fixture(scope="module")
def files(series, tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    write(Volume(series.ref_labels, spacing=series.spacing), d / "ref.tif")
    for i, g in enumerate(series.greys):
        write(Volume(g, spacing=series.spacing), d / f"g{i}.tif")
    return d


def test_ect_track_on_the_engine_equals_in_memory(run_cli, files, tmp_path, address):
    args = ["track", files / "ref.tif", files / "g0.tif", files / "g1.tif", "--metric",
            "correlation", "--exclude-layers", "2", "--json"]
    code, stdout, err = run_cli(*args, "--out", tmp_path / "mem")
    assert code == 0, err
    code, stdout2, err = run_cli(*args, "--out", tmp_path / "eng", "--scheduler", address,
                                 "--block-shape", "48 72 72")
    assert code == 0, err
    a, b = json.loads(stdout), json.loads(stdout2)
    assert a["states"] == b["states"] and a["n_tracked"] == b["n_tracked"]
    for name in ("timeseries.parquet", "particles_1.parquet"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "mem" / name),
                                      read_table(tmp_path / "eng" / name))
    np.testing.assert_array_equal(read(tmp_path / "mem" / "labels_1.tif").numpy(),
                                  read(tmp_path / "eng" / "labels_1.tif").numpy())
    assert not list(tmp_path.glob(".*.ect-work"))


def test_ect_track_refuses_states_of_another_shape_or_spacing(run_cli, files, series,
                                                              tmp_path):
    write(Volume(series.greys[1][:, :, :70], spacing=series.spacing), tmp_path / "small.tif")
    code, _, err = run_cli("track", files / "ref.tif", files / "g0.tif", tmp_path / "small.tif",
                           "--out", tmp_path / "o1")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:")
    assert "small.tif" in err and "ref.tif" in err and "(48, 72, 70)" in err
    assert not (tmp_path / "o1").exists()
    write(Volume(series.greys[1], spacing=(2.0, 2.0, 2.0)), tmp_path / "coarse.tif")
    code, _, err = run_cli("track", files / "ref.tif", files / "g0.tif",
                           tmp_path / "coarse.tif", "--out", tmp_path / "o2", "--block-shape",
                           "24 36 36")
    assert code == 2 and err.count("\n") == 1 and "voxel size" in err
    assert "coarse.tif" in err and "ref.tif" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".*.ect-work"))
