"""Benchmark ``electrode_ct.synth.electrode``: time and peak memory for 256³ and 512³.

Each size runs in a fresh subprocess that reports its own peak RSS; the memory beyond the
outputs is ``(peak RSS - RSS after imports - output bytes) / voxels``. A 64³ phantom is
timed in the same run as a reference for the machine's current speed.

Usage: ``.venv/bin/python benchmarks/synth.py [--quick]`` (quick: 64³ and 256³ only).
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
t = time.perf_counter()
ph = electrode((n, n, n), voxel_size=0.5, active_fraction=0.6, cbd_fraction=0.1,
               radius_mean_um=4.0, radius_sd_um=1.0, cracked_fraction=0.3,
               crack_width_um=0.4, modality="micro", seed=0)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = sum(v.nbytes for v in (ph.grey, ph.phases, ph.particles, ph.cracks))
print(json.dumps({"shape": [n, n, n], "time_s": round(dt, 2),
                  "peak_rss_mb": round(peak / 2**20, 1),
                  "outputs_mb": round(out / 2**20, 1),
                  "extra_bytes_per_voxel": round((peak - base - out) / n**3, 2),
                  "particles": ph.info["particles"], "cracked": ph.info["cracked"],
                  "fractions": ph.info["fractions"],
                  "stage_times_s": {k: round(v, 2) for k, v in ph.info["timings_s"].items()}}))
"""


def run(n: int) -> dict:
    """Generate an n³ phantom in a subprocess and return its figures."""
    res = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print one JSON object with the figures."""
    quick = "--quick" in sys.argv
    sizes = [64, 256] if quick else [64, 256, 512]
    results = {f"{n}^3": run(n) for n in sizes}
    targets = {"256^3": {"time_s": 15}, "512^3": {"time_s": 120}}
    print(json.dumps({
        "benchmark": "synth.electrode (micro, 0.5 µm voxels, r = 4 ± 1 µm, active 0.6)",
        "reference": "64^3 timed in the same run",
        "results": results,
        "targets": {"time_s": {k: v["time_s"] for k, v in targets.items()},
                    "extra_bytes_per_voxel": 8},
    }, indent=1))


if __name__ == "__main__":
    main()
