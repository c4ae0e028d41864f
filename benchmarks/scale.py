"""Out-of-core scale benchmark (issue 21): prints one JSON object.

A ``--size``³ uint16 scan is made by tiling a 128³ electrode phantom with mirrored copies
(every odd tile flipped along the axes where its index is odd, so neighbouring tiles meet
in mirror symmetry: no seams) and written as OME-Zarr block by block. It then goes
through read → Gaussian (σ = 1 voxel) → multi-Otsu (3 classes) → volume fractions,
surface areas, percolation and interface % on a LocalCluster of ``--workers`` worker
processes; each step that is not available in this installation is reported as
``"not available"``. ``--segment forest`` or ``--segment cnn`` replaces multi-Otsu by the
prediction of a model trained on one smoothed phantom tile (the forest with the default
feature set and 100 trees; the CNN with the default architecture, trained one short epoch:
its speed, not its accuracy, is measured; tri-planar prediction, the default for volumes).

Figures: the wall time of every step; the peak resident memory of ALL processes (this one
and every worker, psutil RSS of the process tree sampled every 0.2 s) for the reference
and for the engine run; and the reference time measured in the same run: reading the
volume plus one scipy Gaussian pass over it block by block, serially in this process.

``--tortuosity`` (issue 22): the pore phase of a ``--size``³ phase volume tiled the same
way, solved in memory along z (time, peak RSS of all processes, bytes per unknown), with
one ``edt`` pass over the same mask timed in the same run as the reference; then the
representative-volume curve of a ``--rve-size``³ phantom (not tiled; cubes of
``--subvolumes`` edges, one task per cube on the LocalCluster).

Usage::

    python benchmarks/scale.py --size 256
    python benchmarks/scale.py --size 1024 --workers 2 --memory-limit 2GB
    python benchmarks/scale.py --size 1024 --segment forest
    python benchmarks/scale.py --tortuosity --size 1024 --rve-size 512 --subvolumes 64,128,256
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SIGMA = 1.0
TILE = 128
CLASS_MAP = {"pore": 0, "cbd": 1, "active": 2}


class PeakRSS:
    """Peak of the summed RSS of this process and all its descendants (bytes)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


@contextmanager
def timed(times: dict[str, Any], name: str) -> Iterator[None]:
    """Record the wall time of the block under ``name`` (seconds)."""
    t0 = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - t0, 2)


def make_scan(path: Path, size: int, *, seed: int = 0) -> Any:
    """Write a ``size``³ uint16 OME-Zarr by mirrored tiling of a phantom; its ZarrRef."""
    import dask.array as da

    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.synth.phantom import electrode
    from electrode_ct.volume import Volume

    tile_edge = min(TILE, size)
    tile = electrode((tile_edge,) * 3, seed=seed, cracked_fraction=0.0).grey.numpy()
    like = Volume(da.zeros((size,) * 3, dtype=np.uint16, chunks=tile_edge), spacing=0.5)
    ref = create_ome_zarr(path, like, dtype=np.uint16, chunks=(tile_edge,) * 3)
    arr = ref.open("r+")
    n = -(-size // tile_edge)
    for index in np.ndindex(n, n, n):
        flips = tuple(slice(None, None, -1) if i % 2 else slice(None) for i in index)
        region = tuple(slice(i * tile_edge, min((i + 1) * tile_edge, size)) for i in index)
        part = tile[flips]
        arr[region] = part[tuple(slice(0, r.stop - r.start) for r in region)]
    return ref


def reference(src: Any, block_shape: tuple[int, ...]) -> None:
    """Read the volume and run one scipy Gaussian pass over it, block by block."""
    from scipy import ndimage as ndi

    from electrode_ct.blocks import block_grid

    arr = src.open("r")
    halo = int(4.0 * SIGMA + 0.5)
    for block in block_grid(arr.shape, block_shape, halo):
        region = np.asarray(arr[block.read]).astype(np.float32)
        block.crop(ndi.gaussian_filter(region, SIGMA))


def _optional(name: str, attr: str) -> Callable[..., Any] | None:
    import importlib

    try:
        return getattr(importlib.import_module(name), attr)
    except (ImportError, AttributeError):
        return None


def train_model(kind: str, *, seed: int = 0) -> Any:
    """A ``forest`` or ``cnn`` model trained on one smoothed phantom tile."""
    from scipy import ndimage as ndi

    from electrode_ct.synth.phantom import electrode

    ph = electrode((TILE,) * 3, seed=seed + 1, cracked_fraction=0.0)
    grey = ndi.gaussian_filter(ph.grey.numpy().astype(np.float32), SIGMA)
    truth = ph.phases.numpy().astype(np.uint8) + 1  # 0 = unlabelled
    names = list(CLASS_MAP)
    if kind == "forest":
        from electrode_ct.segment.forest_train import train_forest
        from electrode_ct.segment.scribbles import simulate_scribbles

        scr = simulate_scribbles(truth, coverage=0.05, n_slices=4, style="uniform", seed=1)
        return train_forest(grey, scr, class_names=names, spacing=ph.grey.spacing)
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.train import train

    cfg = TrainConfig(epochs=2, patches_per_epoch=32)
    return train(grey[TILE // 2], truth[TILE // 2], config=cfg, class_names=names).model


def _workers_cpu(client: Any) -> float:
    """CPU seconds (user + system) used so far by the workers (this process without one)."""
    if client is None:
        return time.process_time()
    return float(sum(client.run(time.process_time).values()))


def segment(kind: str, smooth: Any, like: Any, work: Path, block_shape: tuple[int, ...],
            client: Any, times: dict[str, Any], results: dict[str, Any]) -> Any:
    """Labels of ``smooth`` by multi-Otsu or a model's prediction; the labels' ZarrRef and
    class map."""
    from electrode_ct.io.zarr import create_ome_zarr

    if kind == "multiotsu":
        labels = create_ome_zarr(work / "phases.ome.zarr", like, dtype=np.uint8,
                                 chunks=block_shape, class_map=CLASS_MAP)
        threshold = _optional("electrode_ct.segment.blockwise", "threshold_blockwise")
        with timed(times, "multiotsu_s"):
            cuts = threshold(smooth, labels, method="multiotsu", classes=3,
                             block_shape=block_shape, client=client)
        results["thresholds"] = np.asarray(cuts).ravel().tolist()
        return labels, CLASS_MAP
    from electrode_ct.segment.blockwise import slab_shape
    from electrode_ct.segment.blockwise_predict import predict_blockwise, prediction_plan

    with timed(times, f"{kind}_train_s"):
        model = train_model(kind)
    cmap = dict(zip(model.class_names, (int(v) for v in model.class_values), strict=True))
    _, _, axis = prediction_plan(model, like.shape)
    chunks = slab_shape(like.shape, block_shape, axis) if axis is not None else block_shape
    labels = create_ome_zarr(work / "phases.ome.zarr", like, dtype=np.uint8, chunks=chunks,
                             class_map=cmap)
    cpu0 = _workers_cpu(client)
    with timed(times, f"{kind}_predict_s"):
        results[f"{kind}_info"] = predict_blockwise(model, smooth, labels,
                                                    block_shape=block_shape, client=client)
    # CPU seconds of the workers: robust to other jobs sharing the cores, unlike wall time
    times[f"{kind}_predict_workers_cpu_s"] = round(_workers_cpu(client) - cpu0, 2)
    results[f"{kind}_predict_mvoxel_per_s"] = round(
        float(np.prod(like.shape)) / 1e6 / times[f"{kind}_predict_s"], 3)
    return labels, cmap


def pipeline(src: Any, work: Path, block_shape: tuple[int, ...], client: Any,
             times: dict[str, Any], results: dict[str, Any], *, kind: str = "multiotsu") -> None:
    """read → gaussian → multi-Otsu (or a model) → fractions, surfaces, percolation,
    interface %."""
    from electrode_ct.filters.blockwise import gaussian_blockwise
    from electrode_ct.io import read
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.pipeline.compute import codec_for

    like = read(src.path, lazy=True)
    smooth = create_ome_zarr(work / "smooth.ome.zarr", like, dtype=np.float32,
                             chunks=block_shape, compression=codec_for(np.float32))
    with timed(times, "gaussian_s"):
        gaussian_blockwise(src, smooth, sigma=SIGMA, block_shape=block_shape, client=client)
    labels, cmap = segment(kind, smooth, like, work, block_shape, client, times, results)
    metrics(labels, like.spacing, block_shape, client, times, results, cmap)


def metrics(labels: Any, spacing: tuple[float, ...], block_shape: tuple[int, ...],
            client: Any, times: dict[str, Any], results: dict[str, Any],
            cmap: dict[str, int] = CLASS_MAP) -> None:
    """The phase metrics as reductions, each reported or marked not available."""
    kw = {"block_shape": block_shape, "client": client}
    calls = {
        "fractions": ("electrode_ct.metrics.blockwise", "fractions_blockwise",
                      lambda f: f(labels, class_map=cmap, **kw)),
        "surfaces": ("electrode_ct.metrics.blockwise", "surface_areas_blockwise",
                     lambda f: f(labels, spacing=spacing, class_map=cmap, **kw)),
        "percolation": ("electrode_ct.metrics.components_blockwise", "percolation_blockwise",
                        lambda f: f(labels, "pore", class_map=cmap, **kw)),
        "interface": ("electrode_ct.metrics.blockwise", "interface_percent_blockwise",
                      lambda f: f(labels, class_map=cmap, **kw)),
    }
    for name, (module, attr, call) in calls.items():
        func = _optional(module, attr)
        if func is None:
            times[f"{name}_s"] = "not available"
            continue
        from electrode_ct.errors import InputError

        with timed(times, f"{name}_s"):
            try:
                results[name] = call(func)
            except InputError as exc:  # e.g. a phase a short-trained model never predicts
                results[name] = f"not computed: {exc}"


def _warm() -> None:
    """Import the block functions' modules in a worker (a fixed cost, timed apart)."""
    import importlib

    for name in ("electrode_ct.filters.blockwise", "electrode_ct.segment.blockwise",
                 "electrode_ct.metrics.blockwise"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def run(size: int, workers: int, memory_limit: str, block: int, work: Path,
        kind: str = "multiotsu") -> dict[str, Any]:
    """The benchmark's figures (see the module docstring)."""
    from electrode_ct.compute import ComputeConfig, open_client
    from electrode_ct.compute.config import parse_bytes

    block_shape = (min(block, size),) * 3
    times: dict[str, Any] = {}
    results: dict[str, Any] = {}
    with timed(times, "make_scan_s"):
        src = make_scan(work / "scan.ome.zarr", size)
    with PeakRSS() as ref_mem, timed(times, "reference_s"):
        reference(src, block_shape)
    cfg = ComputeConfig(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with open_client(cfg) as client:
            times["cluster_start_s"] = round(time.perf_counter() - t0, 2)
            with timed(times, "worker_imports_s"):  # once per worker: numpy, scipy, pandas
                client.run(_warm)
            pipeline(src, work, block_shape, client, times, results, kind=kind)
        # training the model (forest/cnn) is a fixed cost outside the scan's chain
        total = time.perf_counter() - t0 - float(times.get(f"{kind}_train_s", 0.0))
    voxels = size**3
    return {
        "size": size, "voxels": voxels, "dtype": "uint16", "tile": min(TILE, size),
        "segment": kind,
        "block_shape": list(block_shape), "workers": workers,
        "memory_limit_per_worker_gb": parse_bytes(memory_limit) / 1e9,
        "times_s": times, "engine_total_s": round(total, 2),
        "ratio_to_reference": round(total / times["reference_s"], 2),
        "ratio_to_reference_without_startup": round(
            (total - times["cluster_start_s"] - times["worker_imports_s"])
            / times["reference_s"], 2),
        "mvoxel_per_s": round(voxels / 1e6 / total, 2),
        "peak_rss_all_processes_gb": round(mem.peak / 1e9, 3),
        "reference_peak_rss_gb": round(ref_mem.peak / 1e9, 3),
        "targets": {"peak_rss_gb_max": 6.0, "ratio_to_reference_max": 8.0},
        "results": results,
    }


def tiled_phases(size: int, *, seed: int = 0) -> np.ndarray:
    """A ``size``³ uint8 phase volume (0 pore, 1 cbd, 2 active) tiled like :func:`make_scan`."""
    from electrode_ct.synth.phantom import electrode

    edge = min(TILE, size)
    tile = electrode((edge,) * 3, seed=seed, cracked_fraction=0.0).phases.numpy()
    out = np.empty((size,) * 3, np.uint8)
    n = -(-size // edge)
    for index in np.ndindex(n, n, n):
        flips = tuple(slice(None, None, -1) if i % 2 else slice(None) for i in index)
        region = tuple(slice(i * edge, min((i + 1) * edge, size)) for i in index)
        out[region] = tile[flips][tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def tortuosity_solve(size: int, solver: str) -> dict[str, Any]:
    """τ of the pore phase along z at ``size``³: time and peak memory, with one ``edt`` pass
    over the same pore mask (2 threads) timed in the same run as the reference."""
    import edt

    from electrode_ct.metrics.tortuosity import tortuosity

    pore = tiled_phases(size) == CLASS_MAP["pore"]
    with PeakRSS() as ref_mem:
        base = ref_mem._sample()
        t0 = time.perf_counter()
        edt.edt(pore, black_border=False, parallel=2)
        ref_s = time.perf_counter() - t0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        r = tortuosity(pore, axis="z", spacing=0.5, solver=solver)
        total = time.perf_counter() - t0
    return {"size": size, "voxels": size**3, "solver": r.solver, "tau_z": r.tortuosity,
            "porosity": r.volume_fraction, "n_unknowns": r.n_unknowns,
            "iterations": r.iterations, "relative_residual": r.relative_residual,
            "setup_s": round(r.setup_s, 2), "solve_s": round(r.solve_s, 2),
            "total_s": round(total, 2), "edt_reference_s": round(ref_s, 2),
            "ratio_to_edt": round(total / ref_s, 2),
            "peak_rss_all_processes_gb": round(mem.peak / 1e9, 3),
            "solve_memory_gb": round((mem.peak - base) / 1e9, 3),
            "bytes_per_unknown": round((mem.peak - base) / r.n_unknowns, 1),
            "edt_peak_rss_gb": round(ref_mem.peak / 1e9, 3)}


def tortuosity_rve_curve(size: int, sizes: list[int], workers: int, memory_limit: str,
                         work: Path) -> dict[str, Any]:
    """The representative-volume curve of the pore phase of a ``size``³ phantom (one
    phantom, not tiled: mirrored tiles would repeat the same τ at the tile size), one task
    per cube on a LocalCluster of ``workers`` processes reading a Zarr copy."""
    from electrode_ct.compute import ComputeConfig, open_client
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.metrics.tortuosity_rve import tortuosity_rve
    from electrode_ct.synth.phantom import electrode
    from electrode_ct.volume import Volume

    phases = Volume(electrode((size,) * 3, seed=1, cracked_fraction=0.0).phases.numpy(),
                    spacing=0.5).with_class_map(CLASS_MAP)
    ref = create_ome_zarr(work / "phases.ome.zarr", phases, dtype=np.uint8,
                          chunks=(min(size, TILE),) * 3, class_map=CLASS_MAP)
    ref.open("r+")[...] = phases.numpy()
    del phases
    cfg = ComputeConfig(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with open_client(cfg) as client:
            start = time.perf_counter() - t0
            rve = tortuosity_rve(ref, sizes, value=CLASS_MAP["pore"], axes=("z", "x"),
                                 spacing=(0.5, 0.5, 0.5), client=client)
        total = time.perf_counter() - t0
    return {"size": size, "workers": workers, "cluster_start_s": round(start, 2),
            "total_s": round(total, 2), "peak_rss_all_processes_gb": round(mem.peak / 1e9, 3),
            "tortuosity_rve": rve}


def run_tortuosity(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The ``--tortuosity`` figures: one full-volume solve and one RVE curve."""
    import os

    sizes = [int(v) for v in args.subvolumes.split(",")]
    return {"load_avg_1min_at_start": os.getloadavg()[0],
            "solve": tortuosity_solve(args.size, args.solver),
            "rve": tortuosity_rve_curve(args.rve_size, sizes, args.workers,
                                        args.memory_limit, work),
            "load_avg_1min_at_end": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    """Parse options, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="edge of the cubic scan")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GB", help="per worker")
    parser.add_argument("--block", type=int, default=128, help="block edge (voxels)")
    parser.add_argument("--segment", choices=("multiotsu", "forest", "cnn"),
                        default="multiotsu", help="the segmentation step")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the Zarr stores (default: a temporary one, removed)")
    parser.add_argument("--tortuosity", action="store_true",
                        help="tortuosity figures instead: the pore phase of a --size³ "
                        "tiled phase volume solved in memory, and the RVE curve of a "
                        "--rve-size³ one on the cluster")
    parser.add_argument("--solver", default="auto", help="tortuosity solver: auto|amg|lean")
    parser.add_argument("--rve-size", type=int, default=512)
    parser.add_argument("--subvolumes", default="64,128,256", help="cube edges (voxels)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ect-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        out = (run_tortuosity(args, work) if args.tortuosity else
               run(args.size, args.workers, args.memory_limit, args.block, work, args.segment))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    json.dump(out, sys.stdout, default=_plain)
    sys.stdout.write("\n")


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


if __name__ == "__main__":
    main()
