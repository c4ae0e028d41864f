"""A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, started here.

``ect filter`` and ``ect run`` against the scheduler address give the local results bit for
bit; a worker killed mid-run costs nothing but time; a worker that keeps dying stops the
run naming the block and keeps the finished blocks; an unreachable address is one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
import zarr

from electrode_ct.compute import ZarrRef, run_blocks
from electrode_ct.compute.engine import BlockFailed
from electrode_ct.io import read

TESTS = Path(__file__).parent
START_TIMEOUT_S = 60.0


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    src = str(TESTS.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    # a task survives one death of its worker (rescheduled), not two: a worker that
    # keeps dying fails the run quickly
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    return env


def _start_scheduler(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in proc.stderr:  # type: ignore[union-attr]
        found = re.search(r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain the pipe
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("dask scheduler did not start")


@pytest.fixture(scope="module")
def scheduler():
    """(address, client): the scheduler and 2 single-thread workers (with nannies)."""
    env = _environment()
    sched, address = _start_scheduler(env)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
         "--memory-limit", "1GB", "--no-dashboard", "--name", f"w{i}"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    try:
        from distributed import Client

        # not dask's default scheduler: the CLI's lazy reads in this process stay local
        with Client(address, set_as_default=False, timeout="30s") as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
            yield address, client
    finally:
        for proc in [*workers, sched]:
            proc.terminate()
        for proc in [*workers, sched]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def grey(tmp_path, three_phase_phantom) -> Path:
    """The 40³ three-phase phantom's grey volume as a TIFF."""
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, three_phase_phantom[1])
    return path


def test_ect_filter_against_the_scheduler_equals_the_in_memory_run(run_cli, scheduler,
                                                                    grey, tmp_path):
    address, _ = scheduler
    args = ["filter", grey, "--method", "gaussian", "--sigma", "1.5", "1", "1"]
    assert run_cli("--quiet", *args[:2], tmp_path / "mem.tif", *args[2:])[0] == 0
    code, _, err = run_cli("--quiet", *args[:2], tmp_path / "dist.tif", *args[2:],
                           "--scheduler", address, "--block-shape", "16", "16", "16")
    assert code == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "dist.tif"),
                                  tifffile.imread(tmp_path / "mem.tif"))


def _config(tmp_path: Path, grey: Path, name: str) -> Path:
    off = {"enabled": False}
    cfg = {"input": {"grey": str(grey), "voxel_size": [1.0, 0.5, 0.5]},
           "output": str(tmp_path / name), "volume_format": "ome-zarr",
           "compute": {"connect_timeout_s": 3},
           "steps": {"filter": {"enabled": True, "method": "median", "size": 3},
                     "segment": {"method": "threshold", "threshold_method": "otsu"},
                     "particles": off, "measure": off, "metrics": off, "stats": off,
                     "report": off}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ect_run_against_the_scheduler_equals_the_local_run(run_cli, scheduler, grey,
                                                            tmp_path):
    address, _ = scheduler
    assert run_cli("--quiet", "run", _config(tmp_path, grey, "local"))[0] == 0
    code, _, err = run_cli("--quiet", "run", _config(tmp_path, grey, "dist"), "--scheduler",
                           address, "--block-shape", "16", "16", "16")
    assert code == 0, err
    for rel in ("volumes/grey_filtered_0.ome.zarr", "volumes/phases_0.ome.zarr"):
        local, dist = read(tmp_path / "local" / rel), read(tmp_path / "dist" / rel)
        np.testing.assert_array_equal(dist.numpy(), local.numpy(), err_msg=rel)
        assert dist.spacing == local.spacing == (1.0, 0.5, 0.5)
    assert not (tmp_path / "dist" / "work").exists() or not any(
        (tmp_path / "dist" / "work").iterdir()), "work copies removed"


def _zarr(path: Path, data: np.ndarray | None = None, *, shape=None, dtype=None) -> ZarrRef:
    arr = zarr.open_array(str(path), mode="w", zarr_format=2, chunks=(8, 8, 8),
                          shape=shape if data is None else data.shape,
                          dtype=dtype or data.dtype)
    if data is not None:
        arr[...] = data
    return ZarrRef(str(path))


def _median_block(region: np.ndarray, block) -> np.ndarray:
    from scipy import ndimage as ndi

    time.sleep(0.05)  # long enough for a worker to be killed with blocks in flight
    return block.crop(ndi.median_filter(region, 3))


def test_killing_a_worker_mid_run_still_gives_identical_outputs(scheduler, tmp_path):
    from scipy import ndimage as ndi

    _, client = scheduler
    data = np.random.default_rng(5).random((32, 32, 32)).astype(np.float32)
    src, dst = _zarr(tmp_path / "in.zarr", data), _zarr(tmp_path / "out.zarr",
                                                        shape=data.shape, dtype=np.float32)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    done = dst.done_folder()

    def kill_after_first_block() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (done.is_dir() and any(done.iterdir())):
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_block)
    killer.start()
    run_blocks(_median_block, src, dst, block_shape=(8, 8, 8), halo=1, client=client)
    killer.join()
    np.testing.assert_array_equal(dst.open()[...], ndi.median_filter(data, 3))
    client.wait_for_workers(2, timeout=START_TIMEOUT_S)  # the nanny restarted it
    assert victim not in client.run(os.getpid).values()


def _dies_on_the_last_block(region: np.ndarray, block) -> np.ndarray:
    if block.index == (1, 1, 1):
        os._exit(1)  # the worker process dies, every time this block runs
    return block.crop(region)


def test_a_worker_that_keeps_dying_stops_the_run_naming_the_block(scheduler, tmp_path):
    _, client = scheduler
    data = np.arange(16**3, dtype=np.float32).reshape(16, 16, 16)
    src, dst = _zarr(tmp_path / "in.zarr", data), _zarr(tmp_path / "out.zarr",
                                                        shape=data.shape, dtype=np.float32)
    with pytest.raises(BlockFailed, match=r"block \(1, 1, 1\) \(voxels 8:16, 8:16, 8:16\)"):
        run_blocks(_dies_on_the_last_block, src, dst, block_shape=(8, 8, 8), client=client)
    kept = {p.name for p in dst.done_folder().iterdir()}
    assert kept and "1_1_1" not in kept  # finished blocks are kept
    client.wait_for_workers(2, timeout=START_TIMEOUT_S)
    n = run_blocks(lambda region, block: block.crop(region), src, dst, block_shape=(8, 8, 8),
                   client=client)
    assert n == 8 - len(kept)  # the rerun computes only the missing blocks
    np.testing.assert_array_equal(dst.open()[...], data)


def test_an_unreachable_scheduler_is_one_line_and_exit_2(run_cli, grey, tmp_path):
    cfg = _config(tmp_path, grey, "unreachable")
    start = time.monotonic()
    code, out, err = run_cli("run", cfg, "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2 and time.monotonic() - start < 30
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert lines == [lines[0]] and "tcp://127.0.0.1:9" in lines[0] and "3 s" in lines[0]
    assert "Traceback" not in err
