"""GREAT2 benchmark: `ect measure` on ~10 000 particles vs reading + one `edt.edt` call.

Prints ONE JSON object. Measured side by side in one run, each step in its own
subprocess (peak memory = that process's ``ru_maxrss``):

- ``reference``: read the label and grey TIFFs + one ``edt.edt(labels, anisotropy,
  black_border=False)`` call on all CPUs;
- ``measure``: ``ect measure LABELS --grey GREY --out T --radial R --properties basic``;
- ``floor_memory_gb``: labels + grey + one float32 EDT (the issue's memory yardstick);
- ``operando``: identity kept by tracking and the Z of a planted 1-grey-level drop on a
  phantom series (see ``operando_figures``).

Usage::

    flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/great2.py        # 880³, ~10 600 particles
    .venv/bin/python benchmarks/great2.py --quick                          # 400³, ~1 000 particles
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRAPES_PUBLISHED_S = 36.0  # GRAPES paper: ~10 000 particles, 24 cores
GRAPES_HERE_S = 92.0  # GRAPES on this 2-core machine (issue 8)
GRAPES_HERE_PEAK_GB = 8.7


def make_phantom(cells: int, cell: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A jittered grid of ellipsoids (uint32 labels) and a grey image (uint8).

    Each cell of ``cell`` voxels holds one ellipsoid of semi-axes U(17, 19) voxels
    (~25 000 voxels on average). Grey: pore 60, particles 170 with a darker surface
    shell (phase-contrast-like) and Gaussian noise σ = 8.
    """
    rng = np.random.default_rng(seed)
    n = cells * cell
    lab = np.zeros((n, n, n), np.uint32)
    half = cell // 2
    r = np.arange(-half, half + 1, dtype=np.float32)
    k = 1
    for cz in range(cells):
        for cy in range(cells):
            for cx in range(cells):
                a = rng.uniform(17.0, 19.0, 3).astype(np.float32)
                j = rng.integers(-1, 2, 3)
                c = np.array([cz, cy, cx]) * cell + half + j
                lo = np.maximum(c - half, 0)
                hi = np.minimum(c + half + 1, n)
                sz = [r[lo[i] - (c[i] - half): len(r) - ((c[i] + half + 1) - hi[i])] / a[i]
                      for i in range(3)]
                inside = (sz[0][:, None, None] ** 2 + sz[1][None, :, None] ** 2
                          + sz[2][None, None, :] ** 2) <= 1.0
                view = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
                view[inside] = k
                k += 1
    grey = np.empty(lab.shape, np.uint8)
    step = 32
    for z0 in range(0, n, step):
        sl = lab[z0:z0 + step]
        g = np.where(sl > 0, np.float32(170.0), np.float32(60.0))
        g += rng.normal(0.0, 8.0, sl.shape).astype(np.float32)
        grey[z0:z0 + step] = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    return lab, grey


def _maxrss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child_generate(args: argparse.Namespace) -> None:
    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    lab, grey = make_phantom(args.cells, args.cell)
    sp = (0.5, 0.5, 0.5)
    write(Volume(lab, spacing=sp), Path(args.dir) / "labels.tif", compression=None)
    write(Volume(grey, spacing=sp), Path(args.dir) / "grey.tif", compression=None)
    counts = np.bincount(lab.ravel())[1:]
    info = {"shape": list(lab.shape), "n_particles": int((counts > 0).sum()),
            "mean_voxels": float(counts[counts > 0].mean()),
            "labels_gb": lab.nbytes / 1e9, "grey_gb": grey.nbytes / 1e9}
    Path(args.result).write_text(json.dumps(info))


def child_reference(args: argparse.Namespace) -> None:
    import edt

    from electrode_ct.io import read
    from electrode_ct.measure.radial import _threads

    t0 = time.perf_counter()
    lab = read(Path(args.dir) / "labels.tif")
    grey = read(Path(args.dir) / "grey.tif")
    t1 = time.perf_counter()
    d = edt.edt(lab.data, anisotropy=lab.spacing, black_border=False, parallel=_threads(None))
    t2 = time.perf_counter()
    out = {"read_s": t1 - t0, "edt_s": t2 - t1, "time_s": t2 - t0, "peak_gb": _maxrss_gb(),
           "max_distance_um": float(d.max()), "grey_voxels": int(grey.data.size)}
    Path(args.result).write_text(json.dumps(out))


def child_measure(args: argparse.Namespace) -> None:
    from electrode_ct.cli import main

    d = Path(args.dir)
    t0 = time.perf_counter()
    try:
        main(["measure", str(d / "labels.tif"), "--grey", str(d / "grey.tif"), "--out",
              str(d / "table.parquet"), "--radial", str(d / "radial.parquet"), "--properties",
              "basic", "--quiet", "--json"])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    out = {"time_in_process_s": time.perf_counter() - t0, "peak_gb": _maxrss_gb()}
    Path(args.result).write_text(json.dumps(out))


def _run_child(mode: str, workdir: str, extra: list[str]) -> tuple[dict, float, str]:
    result = Path(workdir) / f"{mode}.json"
    cmd = [sys.executable, __file__, "--child", mode, "--dir", workdir, "--result", str(result),
           *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(result.read_text()), wall, proc.stdout


def operando_figures(seed: int = 0) -> dict:
    """Tracking identity and the detection of a planted 1-grey-level drop (phantom)."""
    from electrode_ct.operando.phantom import shifted_series
    from electrode_ct.operando.track import track
    from electrode_ct.stats import summarise

    series = shifted_series(shape=(96, 128, 128), radius=(9.0, 13.0), n_particles=90,
                            noise=3.0, drop=1.0, seed=seed)
    t0 = time.perf_counter()
    res = track(series.ref_labels, series.greys, spacing=series.spacing,
                phases=series.phases, exclude_layers=3)
    elapsed = time.perf_counter() - t0
    truth = series.truth_identity(res)
    tables = res.state_tables()
    summ = summarise(tables, column="roi_mean", reference=0,
                     subsets=series.cracked_subsets(), subset_name="cracked")
    cracked = summ[(summ["state"] == 1) & (summ["subset"] == 1)].iloc[0]
    return {"n_tracked": int(res.n_tracked), "identity_percent": truth,
            "planted_drop_grey": series.drop, "dI_cracked": float(cracked["dI"]),
            "Z_cracked": float(cracked["Z"]), "track_time_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400³ with ~1 000 particles")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, default=22, help=argparse.SUPPRESS)
    parser.add_argument("--cell", type=int, default=40, help=argparse.SUPPRESS)
    parser.add_argument("--skip-operando", action="store_true")
    args = parser.parse_args()
    if args.child:
        {"generate": child_generate, "reference": child_reference,
         "measure": child_measure}[args.child](args)
        return
    cells = 10 if args.quick else args.cells
    size = ["--cells", str(cells), "--cell", str(args.cell)]
    with tempfile.TemporaryDirectory(prefix="ect-great2-") as tmp:
        gen, gen_wall, _ = _run_child("generate", tmp, size)
        # warm the page cache equally for both runs
        for name in ("labels.tif", "grey.tif"):
            with open(Path(tmp) / name, "rb") as fh:
                while fh.read(1 << 26):
                    pass
        ref, ref_wall, _ = _run_child("reference", tmp, size)
        mea, mea_wall, stdout = _run_child("measure", tmp, size)
        cli = json.loads(stdout.strip().splitlines()[-1])
    floor_gb = (gen["labels_gb"] + gen["grey_gb"] + gen["labels_gb"]) * 1e9 / 1024**3
    out = {
        "case": {**gen, "cpus": len(os.sched_getaffinity(0)), "generate_s": gen_wall,
                 "quick": bool(args.quick)},
        "reference": {**ref, "wall_s": ref_wall},
        "measure": {**mea, "wall_s": mea_wall, "timings_s": cli.get("timings_s"),
                    "n_particles": cli.get("n_particles"), "radial_rows": cli.get("radial_rows")},
        "time_ratio": mea_wall / ref_wall,
        "time_target": 1.5,
        "floor_memory_gb": floor_gb,
        "memory_ratio": mea["peak_gb"] / floor_gb,
        "memory_target": 1.5,
        "grapes": {"published_s_24_cores": GRAPES_PUBLISHED_S, "here_s_2_cores": GRAPES_HERE_S,
                   "here_peak_gb": GRAPES_HERE_PEAK_GB},
    }
    if not args.skip_operando:
        out["operando"] = operando_figures()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
