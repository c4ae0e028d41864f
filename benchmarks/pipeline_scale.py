"""`ect run` on a large scan, as a user runs it (issues 21 and 22): prints one JSON object.

The scan is the one of ``benchmarks/scale.py`` (a ``--size``³ uint16 OME-Zarr tiled from
a 128³ electrode phantom with mirrored copies, 0.5 µm voxels). The configuration is
``ect config init --preset micro`` with only what the issues name changed: the input, the
volume format (OME-Zarr), particle healing (``--heal-um``), tortuosity off, cracks
(features) on unless ``--no-cracks``, and the compute section (``--workers`` LocalCluster
workers × 1 thread, ``--memory-limit`` each). ``ect run`` runs in a child process; the
peak resident memory counts it and every Dask worker (psutil RSS of the process tree every
0.2 s). Per-step times come from the run's ``provenance.json``.

References timed in the same run, serially in this process:

- ``reference_gaussian_s`` (issue 21): reading the volume + one scipy Gaussian pass
  (σ = 1) over it block by block;
- ``reference_edt_s`` (issue 22): reading the volume + a threshold (its mean) + one
  ``edt`` pass over the mask with 2 threads, in memory.

Usage::

    python benchmarks/pipeline_scale.py --size 256
    python benchmarks/pipeline_scale.py --size 1024 --work /work/big --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import PeakRSS, make_scan, reference  # noqa: E402


def write_config(work: Path, scan: Path, *, heal_um: float, cracks: bool, workers: int,
                 memory_limit: str, engine: bool) -> Path:
    """The micro preset with the benchmark's changes; the path of the YAML."""
    ect = Path(sys.executable).with_name("ect")
    subprocess.run([str(ect), "config", "init", "--preset", "micro", "--force"], cwd=work,
                   check=True, stdout=subprocess.DEVNULL)
    text = (work / "ect.yaml").read_text()
    swaps = {
        "grey: scan.tif": f"grey: {scan}",
        "volume_format: tiff": "volume_format: ome-zarr",
        "heal_cracks_um: 0.0": f"heal_cracks_um: {heal_um}",
        "tortuosity: [x, y, z]": "tortuosity: []",
    }
    if cracks:
        swaps["cracks:\n    enabled: false"] = "cracks:\n    enabled: true"
    for old, new in swaps.items():
        if old not in text:
            raise SystemExit(f"error: the micro template no longer contains {old!r}")
        text = text.replace(old, new)
    text += (f"compute:\n  scheduler: local\n  n_workers: {workers}\n"
             f"  threads_per_worker: 1\n")
    if memory_limit != "auto":
        text += f"  memory_limit: {memory_limit}\n"
    if engine:
        text += "  in_memory_below_mb: 0\n"
    path = work / "micro.yaml"
    path.write_text(text)
    return path


def reference_edt(src: Any) -> float:
    """Seconds to read the volume, threshold it at its mean and run one 2-thread edt."""
    import edt

    t0 = time.perf_counter()
    grey = np.asarray(src.open("r")[...])
    mask = grey > grey.mean()
    del grey
    edt.edt(mask, parallel=2)
    return time.perf_counter() - t0


def run_pipeline(config: Path) -> tuple[dict[str, Any], float, int, int]:
    """Run ``ect run --json CONFIG``; (its JSON, wall s, peak RSS bytes, return code)."""
    ect = Path(sys.executable).with_name("ect")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        proc = subprocess.run([str(ect), "run", "--json", str(config)], env=env,
                              stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        out = {"stdout": proc.stdout[-2000:]}
    return out, wall, mem.peak, proc.returncode


def step_times(outdir: Path) -> dict[str, float]:
    """Seconds per step from the run's provenance."""
    prov = json.loads((outdir / "provenance.json").read_text())
    steps = prov.get("steps", prov)
    return {name: round(float(rec.get("time_s", 0.0)), 1)
            for name, rec in steps.items() if isinstance(rec, dict) and "time_s" in rec}


def main(argv: list[str] | None = None) -> None:
    """Parse options, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="auto",
                        help="per worker, e.g. 3GB; auto: the engine's default (80 %% of the "
                        "machine shared by the workers)")
    parser.add_argument("--heal-um", type=float, default=1.0,
                        help="particles.heal_cracks_um (µm; voxels are 0.5 µm)")
    parser.add_argument("--engine", action="store_true",
                        help="every step on the block engine (compute.in_memory_below_mb: 0)"
                        " even when the volume would fit in memory")
    parser.add_argument("--no-cracks", action="store_true", help="leave steps.cracks off")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ect-pipe-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"size": args.size, "voxels": args.size**3, "workers": args.workers,
                           "memory_limit_per_worker": args.memory_limit,
                           "heal_cracks_um": args.heal_um, "cracks": not args.no_cracks,
                           "engine_forced": args.engine,
                           "load_average_start": os.getloadavg()}
    try:
        scan = work / "scan.ome.zarr"
        t0 = time.perf_counter()
        src = make_scan(scan, args.size) if not scan.exists() else _open(scan)
        res["make_scan_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        reference(src, (min(128, args.size),) * 3)
        res["reference_gaussian_s"] = round(time.perf_counter() - t0, 1)
        res["reference_edt_s"] = round(reference_edt(src), 1)
        config = write_config(work, scan, heal_um=args.heal_um, cracks=not args.no_cracks,
                              workers=args.workers, memory_limit=args.memory_limit,
                              engine=args.engine)
        shutil.rmtree(work / "ect-out", ignore_errors=True)
        out, wall, peak, rc = run_pipeline(config)
        res.update(returncode=rc, run_wall_s=round(wall, 1),
                   peak_rss_all_processes_gb=round(peak / 1e9, 2))
        if rc == 0:
            res["step_times_s"] = step_times(work / "ect-out")
        res["ratio_to_reference_gaussian"] = round(wall / res["reference_gaussian_s"], 2)
        res["ratio_to_reference_edt"] = round(wall / res["reference_edt_s"], 2)
        res["run_json"] = out
        res["load_average_end"] = os.getloadavg()
        res["targets"] = {"issue22_peak_rss_gb_max": 8.0, "issue22_ratio_to_edt_max": 30.0}
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    json.dump(res, sys.stdout, default=str)
    sys.stdout.write("\n")


def _open(path: Path) -> Any:
    from electrode_ct.compute.engine import ZarrRef

    return ZarrRef(str(path), "0")


if __name__ == "__main__":
    main()
