"""Volume I/O benchmark: TIFF-folder read throughput and lazy-open time of a big stack.

Prints one JSON object:

- ``folder``: a TIFF folder (default 1000 slices of 1024 × 512 uint16 = 1 GB; ``--quick``
  100 slices) generated in a temporary folder and deleted afterwards. Read with plain
  ``tifffile.imread(files)`` (the reference), with ``electrode_ct.io.read`` (eager) and
  with ``read(lazy=True)`` then ``Volume.compute()`` (and, for comparison, plain
  ``volume.data.compute()`` of the dask array); throughput in MB/s (best of ``--repeat``
  interleaved runs, page cache warm for all three), and the ratios to the reference
  (target >= 0.9).
- ``big_stack``: the time and peak Python allocation to open lazily a folder of 2000
  slices of 1024 × 1024 uint16 (4 GB). The slice files are sparse (a real TIFF header,
  then a hole up to the full size), so they cost no disk space; opening reads headers
  only, which is what is measured. ``tifffile_headers_s`` is the time tifffile takes to
  open every file and parse its first page, for comparison.
- ``single_file_pages``: lazy-open time of one 2000-page TIFF file without shape metadata
  (tifffile parses every IFD; pixel data are not read, so the page size does not matter).

Usage::

    .venv/bin/python benchmarks/io.py --quick
    flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/io.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tifffile

from electrode_ct.io import read


def _write_folder(folder: Path, n: int, shape: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 60000, shape, dtype=np.uint16)
    files = []
    for i in range(n):
        f = folder / f"slice_{i}.tif"
        tifffile.imwrite(f, np.roll(base, i, axis=0), photometric="minisblack")
        files.append(f)
    return files


def _write_sparse_folder(folder: Path, n: int, shape: tuple[int, int]) -> None:
    """n slice files with a real TIFF header and a sparse hole for the pixel data."""
    probe = folder / "probe.tif"
    tifffile.imwrite(probe, np.zeros(shape, np.uint16), photometric="minisblack")
    with tifffile.TiffFile(probe) as tf:
        data_offset = tf.pages.first.dataoffsets[0]
    full = probe.stat().st_size
    header = probe.read_bytes()[:data_offset]
    probe.unlink()
    for i in range(n):
        with open(folder / f"slice_{i}.tif", "wb") as fh:
            fh.write(header)
            fh.truncate(full)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _folder_throughput(tmp: Path, n: int, shape: tuple[int, int], repeat: int) -> dict:
    folder = tmp / "folder"
    folder.mkdir()
    t0 = time.perf_counter()
    files = _write_folder(folder, n, shape)
    write_s = time.perf_counter() - t0
    mb = n * shape[0] * shape[1] * 2 / 1e6
    names = [str(f) for f in files]
    ref = tifffile.imread(names)
    np.testing.assert_array_equal(read(folder).numpy(), ref)  # same data before timing
    del ref
    times: dict[str, list[float]] = {"tifffile": [], "eager": [], "lazy": [], "dask_compute": []}
    open_times = []
    for _ in range(repeat):  # interleaved so load from other processes hits all alike
        times["tifffile"].append(_timed(lambda: tifffile.imread(names)))
        times["eager"].append(_timed(lambda: read(folder).data))
        t0 = time.perf_counter()
        vol = read(folder, lazy=True)
        open_times.append(time.perf_counter() - t0)
        vol.compute()
        times["lazy"].append(time.perf_counter() - t0)
        times["dask_compute"].append(_timed(lambda: read(folder, lazy=True).data.compute()))
    best = {k: min(v) for k, v in times.items()}
    rates = {k: mb / v for k, v in best.items()}
    return {
        "n_slices": n,
        "slice_shape": list(shape),
        "dtype": "uint16",
        "size_mb": round(mb, 1),
        "write_s": round(write_s, 2),
        "tifffile_imread_mb_s": round(rates["tifffile"], 1),
        "eager_mb_s": round(rates["eager"], 1),
        "lazy_then_computed_mb_s": round(rates["lazy"], 1),
        "lazy_dask_compute_mb_s": round(rates["dask_compute"], 1),
        "eager_vs_tifffile": round(rates["eager"] / rates["tifffile"], 3),
        "lazy_vs_tifffile": round(rates["lazy"] / rates["tifffile"], 3),
        "lazy_open_s": round(min(open_times), 4),
        "target_ratio": 0.9,
        "meets_target": bool(min(rates["eager"], rates["lazy"]) >= 0.9 * rates["tifffile"]),
        "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


def _big_stack_open(tmp: Path, n: int, shape: tuple[int, int], repeat: int) -> dict:
    folder = tmp / "big"
    folder.mkdir()
    _write_sparse_folder(folder, n, shape)
    nbytes = n * shape[0] * shape[1] * 2
    files = sorted(folder.iterdir())

    def headers() -> None:
        for f in files:
            with tifffile.TiffFile(f) as tf:
                _ = tf.pages.first.shape

    open_s, header_s = [], []
    for _ in range(repeat):  # interleaved with the reference
        t0 = time.perf_counter()
        vol = read(folder, lazy=True)
        open_s.append(time.perf_counter() - t0)
        assert vol.is_lazy and vol.shape == (n, *shape)
        header_s.append(_timed(headers))
    tracemalloc.start()  # separate run: tracing slows Python down several times
    read(folder, lazy=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "n_slices": n,
        "slice_shape": list(shape),
        "size_gb": round(nbytes / 1e9, 2),
        "sparse_files": True,
        "lazy_open_s": round(min(open_s), 4),
        "lazy_open_all_s": [round(t, 4) for t in open_s],
        "lazy_open_peak_alloc_mb": round(peak / 1e6, 2),
        "tifffile_headers_s": round(min(header_s), 4),
        "tifffile_headers_all_s": [round(t, 4) for t in header_s],
        "n_chunks": int(np.prod(vol.data.numblocks)),
    }


def _single_file_open(tmp: Path, n: int, shape: tuple[int, int], repeat: int) -> dict:
    """Lazy-open time of one n-page TIFF without shape metadata (every IFD is parsed)."""
    path = tmp / "pages.tif"
    page = np.zeros(shape, np.uint16)
    with tifffile.TiffWriter(path) as tw:
        for _ in range(n):
            tw.write(page, photometric="minisblack", metadata=None)
    open_s = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        vol = read(path, lazy=True)
        open_s.append(time.perf_counter() - t0)
        assert vol.is_lazy and vol.shape == (n, *shape)
    path.unlink()
    return {"n_pages": n, "page_shape": list(shape), "shaped_metadata": False,
            "lazy_open_s": round(min(open_s), 4)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100-slice folder instead of 1000")
    ap.add_argument("--slices", type=int, default=None, help="slices in the throughput folder")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    ap.add_argument("--tmp", default=None, help="folder for the temporary files")
    args = ap.parse_args(argv)
    n = args.slices or (100 if args.quick else 1000)
    tmp = Path(tempfile.mkdtemp(prefix="ect-io-bench-", dir=args.tmp))
    try:
        result = {
            "benchmark": "io",
            "quick": bool(args.quick),
            "cpu_count": os.cpu_count(),
            "folder": _folder_throughput(tmp, n, (1024, 512), args.repeat),
        }
        shutil.rmtree(tmp / "folder")
        result["big_stack"] = _big_stack_open(tmp, 2000, (1024, 1024), args.repeat)
        result["single_file_pages"] = _single_file_open(tmp, 2000, (256, 256), args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
