"""Streamed operando tracking vs in memory vs reading + one `edt` pass, on a phantom series.

Prints ONE JSON object. Each side runs in its own subprocess (peak memory = that
process's ``ru_maxrss``; the streamed side runs its blocks serially in the process):

- ``reference``: load the reference labels and both grey states (memory maps read whole)
  + one ``edt.edt(labels)`` pass;
- ``in_memory``: ``operando.track`` (everything in memory, registration at full resolution);
- ``streamed``: ``operando.stream.track_streamed`` with the states as memory maps,
  registration down-sampled by 2 and refined on 3 crops, propagation in blocks of half
  the volume per axis with the particle halo;
- ``transform_corner_error_vox``: largest distance between where the two transforms send
  the volume's corners (voxels); ``labels_disagree_fraction``: state-1 voxels labelled
  differently.

Usage::

    .venv/bin/python benchmarks/operando_stream.py            # 96 × 144 × 144, 2 states
    .venv/bin/python benchmarks/operando_stream.py --quick    # 48 × 72 × 72
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


def _child(kind: str, folder: Path) -> dict:
    """One side of the benchmark (run in a subprocess)."""
    import edt

    from electrode_ct.operando import track
    from electrode_ct.operando.stream import StreamPlan, particle_halo, track_streamed

    meta = json.loads((folder / "meta.json").read_text())
    sp = tuple(meta["spacing"])
    mm = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("ref", "g0", "g1")}
    t0 = time.perf_counter()
    out: dict = {}
    if kind == "reference":
        arrays = {n: np.array(a) for n, a in mm.items()}
        edt.edt(arrays["ref"], anisotropy=sp, black_border=False, parallel=1)
    elif kind == "in_memory":
        res = track(np.array(mm["ref"]), [np.array(mm["g0"]), np.array(mm["g1"])], spacing=sp,
                    metric="correlation", exclude_layers=2)
        np.save(folder / "lab_mem.npy", res.labels[1])
        out["transform"] = [res.transforms[1].parameters, res.transforms[1].centre_um]
    else:
        shape = mm["ref"].shape
        plan = StreamPlan(block_shape=tuple(max(n // 2, 1) for n in shape), factor=2,
                          halo=particle_halo(mm["ref"]), edge=64)
        res = track_streamed(mm["ref"], [mm["g0"], mm["g1"]], spacing=sp,
                             metric="correlation", exclude_layers=2, plan=plan)
        np.save(folder / "lab_str.npy", res.labels[1])
        out["transform"] = [res.transforms[1].parameters, res.transforms[1].centre_um]
    out["seconds"] = time.perf_counter() - t0
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return out


def _corner_error(a: list, b: list, shape: tuple, spacing: tuple) -> float:
    from electrode_ct.operando.register import Rigid

    ta, tb = Rigid(*a).sitk(), Rigid(*b).sitk()
    sp = np.asarray(spacing)[::-1]
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in shape[::-1]])).reshape(3, -1).T
    worst = max(np.linalg.norm(np.subtract(ta.TransformPoint((c * sp).tolist()),
                                           tb.TransformPoint((c * sp).tolist())))
                for c in corners)
    return float(worst) / float(min(spacing))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return
    from electrode_ct.operando.phantom import shifted_series

    shape = (48, 72, 72) if args.quick else (96, 144, 144)
    n = 40 if args.quick else 300
    s = shifted_series(shape=shape, radius=(7.0, 10.0), n_particles=n, noise=2.0, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "ref.npy", s.ref_labels)
        for i, g in enumerate(s.greys):
            np.save(folder / f"g{i}.npy", g)
        (folder / "meta.json").write_text(json.dumps({"spacing": list(s.spacing)}))
        res = {}
        for kind in ("reference", "in_memory", "streamed"):
            run = subprocess.run([sys.executable, __file__, "--child", kind, str(folder)],
                                 capture_output=True, text=True, check=True)
            res[kind] = json.loads(run.stdout.strip().splitlines()[-1])
        a, b = (np.load(folder / f"lab_{k}.npy") for k in ("mem", "str"))
    report = {
        "shape": list(shape), "n_particles": int(len(np.unique(s.ref_labels)) - 1),
        "load_average": os.getloadavg()[0],
        **{f"{k}_s": round(v["seconds"], 2) for k, v in res.items()},
        **{f"{k}_peak_gb": round(v["peak_gb"], 3) for k, v in res.items()},
        "transform_corner_error_vox": _corner_error(res["in_memory"]["transform"],
                                                    res["streamed"]["transform"], shape,
                                                    s.spacing),
        "labels_disagree_fraction": float((a != b).mean()),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
