"""Particle separation and morphology figures (prints one JSON object).

- Cracked-packing phantom (30 % of particles cut by 1-2 voxel planar cracks, noisy grey
  image re-segmented): particle-count error, AP@0.5, AP@[.5:.95], splits and merges,
  with and without crack healing.
- The embedded real packing (NREL NMC-1-cal, MATBOX phases): particle count, d50.
- Morphology table timing on a >= 10 000-particle label volume (the real labels tiled),
  basic and all, against ``skimage.measure.regionprops_table`` (basic columns) in the
  same run; peak memory (ru_maxrss).

Run: ``.venv/bin/python benchmarks/particles.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def _phantom(shape: int, n: int, seed: int) -> dict:
    from electrode_ct.metrics.instances import match_instances
    from electrode_ct.particles import separate_particles
    from electrode_ct.particles.phantom import cracked_packing

    ph = cracked_packing((shape,) * 3, n_particles=n, noise=0.15, seed=seed,
                         crack_fraction=0.3, crack_width=(1.0, 2.0))
    n_true = int(ph.truth.max())
    out = {"shape": [shape] * 3, "n_true": n_true, "n_cracked": int(len(ph.cracked)),
           "noise_sigma_over_contrast": 0.25}
    for name, heal in (("healed", 2.0), ("plain", 0.0)):
        t0 = time.perf_counter()
        lab = separate_particles(ph.volume(), phase="active", heal_cracks_um=heal)
        dt = time.perf_counter() - t0
        m = match_instances(lab, ph.truth)
        out[name] = {
            "heal_cracks_um": heal, "n_particles": m["n_pred"],
            "count_error": abs(m["n_pred"] - n_true) / n_true, "ap50": m["ap50"],
            "ap": m["ap"], "f1": m["f1"], "splits": m["splits"], "merges": m["merges"],
            "time_s": dt,
        }
    return out


def _tile_to(labels: np.ndarray, n_target: int) -> np.ndarray:
    """Replicate a label volume along x, then y, z, with distinct ids, to >= n_target ids."""
    n = int(labels.max())
    reps = int(np.ceil(n_target / max(n, 1)))
    k = int(np.ceil(reps ** (1 / 3)))
    tiles = []
    i = 0
    for _ in range(k):
        row = []
        for _ in range(k):
            col = []
            for _ in range(k):
                col.append(np.where(labels > 0, labels + np.uint32(i * n), 0).astype(np.uint32))
                i += 1
            row.append(np.concatenate(col, axis=2))
        tiles.append(np.concatenate(row, axis=1))
    return np.concatenate(tiles, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small smoke run.")
    args = parser.parse_args()

    from skimage.measure import regionprops_table

    from electrode_ct.data import nmc_phases
    from electrode_ct.measure import morphology_table, size_distribution
    from electrode_ct.particles import separate_particles

    result: dict = {"quick": args.quick}
    result["phantom"] = _phantom(64 if args.quick else 128, 40 if args.quick else 300, seed=7)

    vol = nmc_phases()
    if args.quick:
        vol = vol.with_data(vol.numpy()[:80, :100, :100])
    t0 = time.perf_counter()
    lab = separate_particles(vol, phase="active", heal_cracks_um=0.8)
    t_sep = time.perf_counter() - t0
    table = morphology_table(lab, spacing=vol.spacing, properties="basic")
    dist = size_distribution(table)
    inner = size_distribution(table, exclude_border=True)
    result["real_packing"] = {
        "source": "NREL NMC-1-cal MATBOX phases (embedded), active phase",
        "shape": list(vol.shape), "voxel_um": vol.spacing[0], "heal_cracks_um": 0.8,
        "n_particles": int(lab.max()), "n_border": int(table.touches_border.sum()),
        "d50_volume_um": dist["volume"]["d50_um"], "d50_number_um": dist["number"]["d50_um"],
        "d10_volume_um": dist["volume"]["d10_um"], "d90_volume_um": dist["volume"]["d90_um"],
        "d50_volume_um_interior": inner["volume"]["d50_um"],
        "separation_time_s": t_sep,
    }

    big = _tile_to(lab, 1000 if args.quick else 10_000)
    timing = {"shape": list(big.shape), "n_particles": int(big.max())}
    t0 = time.perf_counter()
    morphology_table(big, spacing=vol.spacing, properties="basic")
    timing["basic_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = morphology_table(big, spacing=vol.spacing, properties="all")
    timing["all_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    regionprops_table(big.astype(np.int32), properties=("label", "area", "centroid", "bbox"))
    timing["reference_skimage_regionprops_basic_s"] = time.perf_counter() - t0
    timing["median_sphericity"] = float(full.sphericity.median())
    result["morphology_10k"] = timing
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
