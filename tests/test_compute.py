"""The block engine on a real Dask LocalCluster: blockwise == whole volume, resume, faults."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from electrode_ct.compute import ComputeConfig, ZarrRef, open_client, reduce_blocks, run_blocks
from electrode_ct.compute.cluster import cluster_script, worker_env
from electrode_ct.compute.engine import BlockFailed, check_blocks
from electrode_ct.errors import ConfigError, InputError, ShapeError

SIGMA = 1.5
HALO = int(4.0 * SIGMA + 0.5)


def gaussian_block(region: np.ndarray, block) -> np.ndarray:
    return block.crop(ndi.gaussian_filter(region, SIGMA, truncate=4.0))


def histogram_block(region: np.ndarray, block) -> np.ndarray:
    return np.bincount(block.crop(region).ravel(), minlength=256)


def thread_count_block(region: np.ndarray, block) -> dict:
    return {"omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}


def _store(tmp_path, name, data=None, *, shape=None, dtype=None, chunks=(8, 10, 12)):
    arr = zarr.open_array(str(tmp_path / name), mode="w", zarr_format=2,
                          shape=shape if data is None else data.shape,
                          dtype=dtype or data.dtype, chunks=chunks)
    if data is not None:
        arr[...] = data
    return ZarrRef(str(tmp_path / name))


@pytest.fixture(scope="module")
def client():
    with open_client(ComputeConfig(n_workers=2, threads_per_worker=1,
                                   memory_limit="1GB")) as c:
        yield c


@pytest.fixture
def volume():
    return np.random.default_rng(3).random((30, 37, 41)).astype(np.float32)


@pytest.mark.parametrize("block_shape", [(8, 10, 12), (16, 20, 24), (24, 30, 36)])
def test_gaussian_blockwise_equals_whole_volume_on_a_cluster(client, tmp_path, volume,
                                                             block_shape):
    src = _store(tmp_path, "in.zarr", volume)
    dst = _store(tmp_path, "out.zarr", shape=volume.shape, dtype=np.float32)
    n = run_blocks(gaussian_block, src, dst, block_shape=block_shape, halo=HALO, client=client)
    assert n == int(np.prod([-(-s // b) for s, b in zip(volume.shape, block_shape, strict=True)]))
    whole = ndi.gaussian_filter(volume, SIGMA, truncate=4.0)
    np.testing.assert_array_equal(dst.open()[...], whole)


def test_serial_path_equals_cluster_path(client, tmp_path, volume):
    src = _store(tmp_path, "in.zarr", volume)
    out = np.zeros(volume.shape, np.float32)
    run_blocks(gaussian_block, volume, out, block_shape=(8, 10, 12), halo=HALO)
    dst = _store(tmp_path, "out.zarr", shape=volume.shape, dtype=np.float32)
    run_blocks(gaussian_block, src, dst, block_shape=(8, 10, 12), halo=HALO, client=client)
    np.testing.assert_array_equal(dst.open()[...], out)


def test_reduction_is_exact_and_in_block_order(client, tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (20, 25, 30), dtype=np.uint8)
    src = _store(tmp_path, "in.zarr", data)
    parts = reduce_blocks(histogram_block, src, block_shape=(8, 10, 12), client=client)
    np.testing.assert_array_equal(np.sum(parts, axis=0), np.bincount(data.ravel(),
                                                                     minlength=256))
    serial = reduce_blocks(histogram_block, data, block_shape=(8, 10, 12))
    assert all(np.array_equal(a, b) for a, b in zip(parts, serial, strict=True))


def test_workers_are_separate_processes_with_capped_threads(client, tmp_path, volume):
    src = _store(tmp_path, "in.zarr", volume)
    parts = reduce_blocks(thread_count_block, src, block_shape=(8, 10, 12), client=client)
    assert {p["omp"] for p in parts} == {"1"}
    assert os.getpid() not in {p["pid"] for p in parts}
    assert len(client.scheduler_info()["workers"]) == 2


def test_resume_skips_finished_blocks(tmp_path, volume):
    src = _store(tmp_path, "in.zarr", volume)
    dst = _store(tmp_path, "out.zarr", shape=volume.shape, dtype=np.float32)
    calls = []

    def flaky(region, block):
        if block.index == (2, 1, 1):
            raise RuntimeError("disk went away")
        calls.append(block.index)
        return gaussian_block(region, block)

    with pytest.raises(RuntimeError, match="disk went away"):
        run_blocks(flaky, src, dst, block_shape=(8, 10, 12), halo=HALO)
    first = len(calls)
    assert first > 0
    calls.clear()
    n = run_blocks(lambda r, b: (calls.append(b.index), gaussian_block(r, b))[1], src, dst,
                   block_shape=(8, 10, 12), halo=HALO)
    assert n == len(calls) == 4 * 4 * 4 - first  # only the unfinished blocks ran
    np.testing.assert_array_equal(dst.open()[...],
                                  ndi.gaussian_filter(volume, SIGMA, truncate=4.0))


def failing_block(region, block):
    if block.index == (0, 0, 0):
        raise ValueError("bad block")
    return block.crop(region)


def test_a_failing_block_is_named_and_finished_blocks_are_kept(client, tmp_path, volume):
    src = _store(tmp_path, "in.zarr", volume)
    dst = _store(tmp_path, "out.zarr", shape=volume.shape, dtype=np.float32)
    with pytest.raises(BlockFailed, match=r"block \(0, 0, 0\) \(voxels 0:8, 0:10, 0:12\)"):
        run_blocks(failing_block, src, dst, block_shape=(8, 10, 12), client=client)


def test_bad_geometry_and_budget_are_refused_before_running():
    with pytest.raises(ShapeError, match="larger than the volume"):
        check_blocks((10, 10, 10), (20, 10, 10), (0, 0, 0))
    with pytest.raises(ShapeError, match=r"halo \(6, 6, 6\).*block \(4, 4, 4\)"):
        check_blocks((10, 10, 10), (4, 4, 4), (6, 6, 6))
    with pytest.raises(ConfigError, match="at least that"):
        check_blocks((100, 100, 100), (50, 50, 50), (2, 2, 2), bytes_per_voxel=100,
                     memory_limit=10**6)


def test_chunks_that_straddle_blocks_are_refused(tmp_path, volume):
    src = _store(tmp_path, "in.zarr", volume)
    dst = _store(tmp_path, "out.zarr", shape=volume.shape, dtype=np.float32, chunks=(5, 5, 5))
    with pytest.raises(ShapeError, match="not a multiple of the output's chunks"):
        run_blocks(gaussian_block, src, dst, block_shape=(8, 10, 12), halo=HALO)


def test_unreachable_scheduler_is_one_error_within_the_timeout():
    cfg = ComputeConfig(scheduler="tcp://127.0.0.1:9", connect_timeout_s=1.0)
    with pytest.raises(InputError, match="tcp://127.0.0.1:9: no Dask scheduler answered"):
        with open_client(cfg):
            pass


def test_config_is_checked():
    with pytest.raises(ValueError, match="scheduler"):
        ComputeConfig(scheduler="yarn")
    with pytest.raises(ValueError, match="size"):
        ComputeConfig(memory_limit="lots")
    assert ComputeConfig(threads_per_worker=2).threads() == 2
    assert worker_env(3)["OMP_NUM_THREADS"] == "3"


def test_slurm_job_script_is_dask_jobqueues_own():
    cfg = ComputeConfig(scheduler="slurm", threads_per_worker=4, memory_limit="16GB",
                        jobqueue={"walltime": "02:00:00", "queue": "compute"})
    script = cluster_script(cfg)
    assert script.startswith("#!/usr/bin/env bash")
    assert "#SBATCH -p compute" in script and "#SBATCH -t 02:00:00" in script
    assert "export OMP_NUM_THREADS=4" in script
    assert "distributed.cli.dask_worker" in script or "dask worker" in script


def test_blocks_write_an_ome_zarr_that_reads_back_with_its_spacing(client, tmp_path, volume):
    from electrode_ct.io import read
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.volume import Volume

    like = Volume(volume, spacing=(0.5, 0.25, 0.25))
    src = _store(tmp_path, "in.zarr", volume)
    dst = create_ome_zarr(tmp_path / "out.ome.zarr", like, dtype=np.float32, chunks=(8, 10, 12))
    run_blocks(gaussian_block, src, dst, block_shape=(16, 20, 24), halo=HALO, client=client)
    back = read(tmp_path / "out.ome.zarr")
    assert back.spacing == (0.5, 0.25, 0.25)
    np.testing.assert_array_equal(back.numpy(), ndi.gaussian_filter(volume, SIGMA, truncate=4.0))


def test_loading_a_lazy_volume_while_a_client_is_open_reads_the_data(client, tmp_path, volume):
    """With a distributed client open (dask's default scheduler then), loading a lazy
    volume must still fill this process's array, not the workers' copies of it."""
    from electrode_ct.io import read

    _store(tmp_path, "lazy.zarr", volume)
    lazy = read(str(tmp_path / "lazy.zarr"), lazy=True)
    assert lazy.is_lazy
    np.testing.assert_array_equal(lazy.compute().data, volume)
    np.testing.assert_array_equal(lazy.numpy(), volume)


def test_the_in_memory_threshold_is_per_step_unless_given():
    from electrode_ct.compute.config import IN_MEMORY_SHARE, machine_memory

    cfg = ComputeConfig()
    fits = int(IN_MEMORY_SHARE * machine_memory() / 2.0)  # a step needing 2 bytes per byte
    assert cfg.stays_in_memory(fits, 2.0) and not cfg.stays_in_memory(fits + 1, 2.0)
    assert not cfg.stays_in_memory(fits, 48.0)  # a hungrier step sends it to the engine
    assert cfg.in_memory_limit_mb(2.0) == pytest.approx(fits / 1e6, rel=1e-9)
    given = ComputeConfig(in_memory_below_mb=1.0)  # a number: the same for every step
    assert given.stays_in_memory(10**6, 2.0) and not given.stays_in_memory(10**6 + 1, 0.1)
    assert not ComputeConfig(scheduler="tcp://127.0.0.1:1").stays_in_memory(1, 2.0)
