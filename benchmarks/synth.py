"""Benchmark ``electrode_ct.synth.electrode``: time and peak memory for 256³ and 512³.

Each size runs in a fresh subprocess that reports its own peak RSS; the memory beyond the
outputs is ``(peak RSS - RSS after imports - output bytes) / voxels``. The machine is
shared, so each size also times a reference in its own subprocess right before the
phantom: one ``edt.edt`` of a random boolean volume of the same shape (wall and CPU
seconds). ``ratio_to_edt`` (phantom wall time / edt wall time) is the load-independent
figure; CPU seconds (all threads) are given too.

Usage: ``.venv/bin/python benchmarks/synth.py [--quick]`` (quick: 64³ and 128³ only).
Run the full version under ``flock /tmp/ect-heavy.lock``.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from electrode_ct.synth import electrode
n = int(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t, c = time.perf_counter(), time.process_time()
ph = electrode((n, n, n), voxel_size=0.5, active_fraction=0.6, cbd_fraction=0.1,
               radius_mean_um=4.0, radius_sd_um=1.0, cracked_fraction=0.3,
               crack_width_um=0.4, modality="micro", seed=0)
dt, dc = time.perf_counter() - t, time.process_time() - c
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = sum(v.nbytes for v in (ph.grey, ph.phases, ph.particles, ph.cracks))
print(json.dumps({"shape": [n, n, n], "time_s": round(dt, 2), "cpu_s": round(dc, 2),
                  "peak_rss_mb": round(peak / 2**20, 1),
                  "outputs_mb": round(out / 2**20, 1),
                  "extra_bytes_per_voxel": round((peak - base - out) / n**3, 2),
                  "particles": ph.info["particles"], "cracked": ph.info["cracked"],
                  "fractions": {k: round(v, 4) for k, v in ph.info["fractions"].items()},
                  "stage_times_s": {k: round(v, 2) for k, v in ph.info["timings_s"].items()}}))
"""

REFERENCE = r"""
import json, sys, time
import edt
import numpy as np
n = int(sys.argv[1])
a = np.random.default_rng(0).random((n, n, n), dtype=np.float32) > 0.5
t, c = time.perf_counter(), time.process_time()
edt.edt(a, parallel=1)
print(json.dumps({"edt_s": round(time.perf_counter() - t, 3),
                  "edt_cpu_s": round(time.process_time() - c, 3)}))
"""


def _child(code: str, n: int) -> dict:
    res = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(n: int) -> dict:
    """Time the edt reference, then generate an n³ phantom; return the figures."""
    ref = _child(REFERENCE, n)
    out = _child(CHILD, n)
    out["reference"] = ref
    out["ratio_to_edt"] = round(out["time_s"] / max(ref["edt_s"], 1e-9), 2)
    return out


def main() -> None:
    """Print one JSON object with the figures."""
    quick = "--quick" in sys.argv
    sizes = [64, 128] if quick else [64, 256, 512]
    results = {f"{n}^3": run(n) for n in sizes}
    print(json.dumps({
        "benchmark": "synth.electrode (micro, 0.5 µm voxels, r = 4 ± 1 µm, active 0.6)",
        "reference": "edt.edt (1 thread) of a random boolean volume of the same shape, "
                     "timed in the same run just before each phantom",
        "results": results,
        "targets": {"time_s": {"256^3": 15, "512^3": 120}, "extra_bytes_per_voxel": 8},
    }, indent=1))


if __name__ == "__main__":
    main()
