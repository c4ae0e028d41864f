"""Particle separation and morphology figures (prints one JSON object).

- Synthetic electrodes (``electrode_ct.synth.electrode``: 30 % of the particles cut by
  planar cracks 1-2 voxels wide, calibrated micro-CT blur and noise; six seeds, mean and
  worst reported, plus one phantom without cracks), active phase re-segmented from the
  grey image (Gaussian + Otsu): particle-count error, AP@0.5 (ranked by the particle
  confidence of ``separate_particles``; also by the previous confidences, without the
  solidity factor and the bare peak, same labels), AP@[.5:.95], splits and merges, with and
  without crack healing, away from the volume border; healed also without the re-split
  of heal-bridged merges (``no_resplit``, the previous result, same run).
- The embedded real packing (NREL NMC-1-cal, MATBOX phases): particle count, d50.
- Morphology table timing on a >= 10 000-particle label volume (the real labels tiled),
  basic and all, against ``skimage.measure.regionprops_table`` (basic columns) and the
  per-particle marching-cubes surface (the previous default; area ratios reported) in the
  same run; peak memory (ru_maxrss).
- Healed results also with one healing width only (``heal_alternative=1``,
  ``single_width``: before the wider-healing hypothesis), same run.

- ``--learned [--model M] [--shape N]``: the learned instance model beside the classical
  route on the same phantoms (micro and nano, the harder family), the real packing and the
  prediction speed (:mod:`_particles_learned`).
- ``--speed N``: Mvoxel/s of the separation on one worker on an N³ phantom, against one
  ``edt`` pass (:func:`speed`); ``--speed-blocks B`` adds the ownership engine.
- ``--primitives N``: the exact primitives against the ones they replaced (:func:`primitives`).

Run: ``flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/particles.py [--quick]
[--phantom-only] [--speed N [--speed-blocks B]] [--primitives N]
[--learned [--model M] [--shape N]]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from electrode_ct.particles.separate import Separation

PHANTOM = {"voxel_size": 0.5, "radius_mean_um": 5.0, "radius_sd_um": 1.0,
           "active_fraction": 0.45, "cbd_fraction": 0.05, "cracked_fraction": 0.3,
           "crack_width_um": 0.75, "crack_kinds": ("radial",), "modality": "micro"}
"""``electrode_ct.synth.electrode`` settings: 30 % of the visible particles cut by planar
cracks through the centre, 0.56-0.94 µm wide (1.1-1.9 voxels of 0.5 µm); the calibrated
micro-CT preset (PSF σ 1.4 voxel, contrast-to-noise 6, cupping)."""

H_UM = 0.2
SMOOTH_VOXELS = 0.5
MIN_VOLUME_UM3 = 4.0
HEAL_UM = 2.0
SEEDS = (1, 2, 3, 4, 5, 7)
"""Phantom seeds: figures are reported per seed, with mean and worst."""
"""Separation settings: the blur of the scan widens a 2-voxel crack to ~4 voxels of pore in
the segmentation, so cracks are healed up to 2 µm (4 voxels)."""


def _segment_active(grey: np.ndarray) -> np.ndarray:
    """Active phase from the noisy grey image: Gaussian σ 0.7 voxel, Otsu threshold."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(grey.astype(np.float32), 0.7)
    return smooth > threshold_otsu(smooth)


def _fill_only(info: Separation) -> np.ndarray:
    """The confidence of a ``Separation`` without its solidity factor (fill ratio and peak
    only)."""
    from electrode_ct.particles.shape import CONVEXITY_POWER

    sol = info.solidity
    factor = np.ones_like(sol)
    factor[1:] = np.minimum(sol[1:] / np.median(sol[1:]), 1.0) ** CONVEXITY_POWER
    return info.scores / np.maximum(factor, 1e-300)


def _phantom(shape: int, seed: int, *, cracked_fraction: float = 0.3, h: float = H_UM,
             min_volume: float = MIN_VOLUME_UM3, heal: float = HEAL_UM) -> dict:
    from electrode_ct.metrics.instances import away_from_border, match_instances
    from electrode_ct.particles import separate_particles
    from electrode_ct.synth import electrode

    t0 = time.perf_counter()
    settings = dict(PHANTOM, cracked_fraction=cracked_fraction)
    ph = electrode((shape,) * 3, seed=seed, **settings)
    exact = ph.phases.numpy() == ph.phases.class_map["active"]
    # truth on the solid voxels: a cracked particle keeps one id, its crack voxels are pore
    truth = np.where(exact, ph.particles.numpy(), 0).astype(np.uint32)
    active = _segment_active(ph.grey.numpy())
    out = {"seed": seed, "shape": [shape] * 3, "cracked_fraction": cracked_fraction,
           "n_true": int(len(ph.truth)), "n_cracked": int(ph.truth["cracked"].sum()),
           "segmentation_accuracy": float((active == exact).mean()),
           "generate_s": time.perf_counter() - t0}
    for name, width in (("healed", heal), ("plain", 0.0)):
        t0 = time.perf_counter()
        info = separate_particles(active.astype(np.uint8), phase=1,
                                  spacing=ph.grey.spacing, heal_cracks_um=width, h=h,
                                  smooth=SMOOTH_VOXELS, min_volume_um3=min_volume)
        lab = info.labels
        scores = info.scores  # computed on first use: timed with the separation
        dt = time.perf_counter() - t0
        pred_in, truth_in = away_from_border(lab, truth)
        m = match_instances(pred_in, truth_in, scores=scores)
        # the same particles ranked by the bare distance peak (the first confidence) and
        # by the fill ratio alone, without the solidity factor (the previous confidence)
        m_peak = match_instances(pred_in, truth_in, scores=info.peak_um)
        m_fill = match_instances(pred_in, truth_in, scores=_fill_only(info))
        single = match_instances(*away_from_border(lab, truth, rule="single"), scores=scores)
        whole = match_instances(lab, truth, scores=scores)
        n_true = m["n_ref"]
        reference = {}
        if width > 0:
            # the same separation without the re-split of heal-bridged merges (before it)
            info0 = separate_particles(active.astype(np.uint8), phase=1,
                                       spacing=ph.grey.spacing, heal_cracks_um=width,
                                       h=h, smooth=SMOOTH_VOXELS,
                                       min_volume_um3=min_volume, resplit=False)
            m0 = match_instances(*away_from_border(info0.labels, truth), scores=info0.scores)
            # one healing width only (before the wider-healing hypothesis, the previous
            # result)
            info1 = separate_particles(active.astype(np.uint8), phase=1,
                                       spacing=ph.grey.spacing, heal_cracks_um=width,
                                       h=h, smooth=SMOOTH_VOXELS,
                                       min_volume_um3=min_volume, heal_alternative=1.0)
            m1 = match_instances(*away_from_border(info1.labels, truth), scores=info1.scores)
            reference = {name: {
                "n_particles": r["n_pred"], "ap50": r["ap50"], "ap": r["ap"],
                "count_error": abs(r["n_pred"] - n_true) / max(n_true, 1),
                "fp": r["fp"], "fn": r["fn"], "merges": r["merges"]}
                for name, r in (("no_resplit", m0), ("single_width", m1))}
        out[name] = {
            "heal_cracks_um": width,
            "n_particles": m["n_pred"],
            "n_true": n_true, "count_error": abs(m["n_pred"] - n_true) / max(n_true, 1),
            "ap50": m["ap50"], "ap": m["ap"], "f1": m["f1"], "precision": m["precision"],
            "recall": m["recall"], "splits": m["splits"], "merges": m["merges"],
            "fp": m["fp"], "fn": m["fn"], "time_s": dt, "n_resplit": info.n_resplit,
            "n_rehealed": info.n_rehealed,
            "ap50_peak_confidence": m_peak["ap50"],
            "ap50_fill_confidence": m_fill["ap50"],
            "single_particle_ignore": {k: single[k] for k in ("n_pred", "ap50", "ap", "f1")},
            "whole_volume": {k: whole[k] for k in ("n_pred", "n_ref", "ap50", "splits",
                                                   "merges")},
            **reference,
        }
    return out


def _summary(runs: list[dict], name: str) -> dict:
    """Mean and minimum (maximum for errors) of the per-seed figures."""
    keys = ("count_error", "ap50", "ap", "f1", "splits", "merges", "ap50_peak_confidence",
            "ap50_fill_confidence")
    out: dict = {}
    for k in keys:
        v = np.array([r[name][k] for r in runs], dtype=np.float64)
        worst = v.max() if k in ("count_error", "splits", "merges") else v.min()
        out[k] = {"mean": float(v.mean()), "worst": float(worst)}
    single = np.array([r[name]["single_particle_ignore"]["ap50"] for r in runs])
    out["ap50_single_particle_ignore"] = {"mean": float(single.mean()),
                                          "worst": float(single.min())}
    for ref in ("no_resplit", "single_width"):
        if ref not in runs[0][name]:
            continue
        for k in ("ap50", "count_error"):
            v = np.array([r[name][ref][k] for r in runs], dtype=np.float64)
            worst = v.max() if k == "count_error" else v.min()
            out[f"{k}_{ref}"] = {"mean": float(v.mean()), "worst": float(worst)}
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


def speed(n: int, *, heal_um: float = 1.0, blocks: int = 0) -> dict:
    """Separation speed on an ``n``³ phantom (its phases as given): Mvoxel/s of
    ``separate_particles`` on one worker (one thread), without and with healing, against
    one ``edt`` pass over the particle mask in the same run; with ``blocks`` also the
    ownership engine run serially (blocks of that edge, estimated halo). Running this
    function with another checkout's ``src`` on ``PYTHONPATH`` gives the "before".
    ``cpu_s`` is the process's CPU time (``time.process_time``): on shared cores it moves
    far less with the load than the wall time ``s``."""
    import tempfile
    from pathlib import Path

    import edt
    from threadpoolctl import threadpool_limits

    from electrode_ct.particles import separate_particles
    from electrode_ct.synth import electrode

    ph = electrode((n, n, n), seed=1, **{k: v for k, v in PHANTOM.items() if k != "modality"})
    phases = ph.phases.numpy()
    mask = phases == ph.phases.class_map["active"]
    out: dict = {"shape": [n] * 3, "voxels": int(mask.size)}
    with threadpool_limits(1):
        t = time.perf_counter()
        edt.edt(mask.astype(np.uint8), anisotropy=(0.5,) * 3, black_border=False, parallel=1)
        out["edt_s"] = time.perf_counter() - t
        for name, heal in (("no_heal", 0.0), ("heal", heal_um)):
            t, cpu = time.perf_counter(), time.process_time()
            sep = separate_particles(phases, phase=2, spacing=0.5, heal_cracks_um=heal)
            dt, cpu = time.perf_counter() - t, time.process_time() - cpu
            out[name] = {"s": dt, "mvoxel_per_s": mask.size / dt / 1e6,
                         "x_edt": dt / out["edt_s"], "n_particles": sep.n_particles,
                         "cpu_s": cpu, "mvoxel_per_cpu_s": mask.size / cpu / 1e6}
        if blocks:
            from electrode_ct.particles.blockwise import ParticleSettings, separate_blockwise

            labels = np.zeros(phases.shape, np.uint32)
            settings = ParticleSettings(2, (0.5,) * 3, heal_cracks_um=heal_um)
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as work:
                res = separate_blockwise(phases, labels, settings=settings, work=Path(work),
                                         block_shape=(blocks,) * 3)
            dt = time.perf_counter() - t
            out["ownership_serial"] = {"s": dt, "mvoxel_per_s": mask.size / dt / 1e6,
                                       "halo": list(res.halo), "n_particles": res.n_particles,
                                       "block_shape": [blocks] * 3}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def primitives(n: int) -> dict:
    """The exact primitives of the separation against the ones they replaced, on the
    ``--speed`` phantom's ``n``³ mask healed by 1 µm (best of 3, seconds, one thread), with
    one ``edt`` pass: ITK's regional maxima, the closing by two distance transforms and
    scipy's hole filling (same outputs, checked here too)."""
    import edt
    import SimpleITK as sitk
    from scipy import ndimage as ndi
    from threadpoolctl import threadpool_limits

    from electrode_ct.particles.seeding import (
        ball_closing,
        distance_map,
        fill_mask_holes,
        regional_maxima,
        smoothed_distance,
    )
    from electrode_ct.particles.separate import heal_cracks
    from electrode_ct.synth import electrode

    ph = electrode((n, n, n), seed=1, **{k: v for k, v in PHANTOM.items() if k != "modality"})
    mask, sp, radius = ph.phases.numpy() == ph.phases.class_map["active"], (0.5,) * 3, 0.75
    score = smoothed_distance(heal_cracks(mask, width_um=1.0, spacing=sp), sp, 1.0)
    hmax = sitk.GetArrayFromImage(sitk.HMaxima(sitk.GetImageFromArray(score), 0.5))
    pairs = {
        "regional_maxima": (lambda: sitk.GetArrayFromImage(sitk.RegionalMaxima(
            sitk.GetImageFromArray(hmax), fullyConnected=True)) > 0,
            lambda: regional_maxima(hmax)),
        "closing": (lambda: distance_map(distance_map(~mask, sp) <= radius, sp) > radius,
                    lambda: ball_closing(mask, radius, sp)),
        "fill_holes": (lambda: ndi.binary_fill_holes(mask), lambda: fill_mask_holes(mask)),
    }
    out: dict = {"shape": [n] * 3}
    with threadpool_limits(1):
        out["edt_s"] = _best(lambda: edt.edt(mask.astype(np.uint8), anisotropy=sp,
                                             black_border=False, parallel=1))
        for name, (old, new) in pairs.items():
            out[name] = {"previous_s": _best(old), "now_s": _best(new),
                         "identical": bool(np.array_equal(old(), new()))}
    return out


def _best(run, repeat: int = 3) -> float:
    """Shortest of ``repeat`` wall times of ``run()`` (s)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speed", type=int, default=0, metavar="N",
                        help="Only the separation speed on an N³ phantom (Mvoxel/s).")
    parser.add_argument("--speed-blocks", type=int, default=0, metavar="B",
                        help="With --speed: also the ownership engine with blocks of B³.")
    parser.add_argument("--primitives", type=int, default=0, metavar="N",
                        help="Only the exact primitives against the ones they replaced, N³.")
    parser.add_argument("--quick", action="store_true", help="Small smoke run.")
    parser.add_argument("--learned", action="store_true",
                        help="The learned instance model beside the classical route only "
                        "(benchmarks/_particles_learned.py).")
    parser.add_argument("--model", default=None, help="With --learned: a particles-cnn "
                        "model (default: the shipped one).")
    parser.add_argument("--shape", type=int, default=0, help="With --learned: phantom edge "
                        "(default 128, 64 with --quick).")
    parser.add_argument("--parts", default="micro,nano,hard,real,speed",
                        help="With --learned: which parts (comma-separated).")
    parser.add_argument("--seeds", type=int, default=0,
                        help="With --learned: the first N of the six seeds.")
    parser.add_argument("--no-marching-cubes", action="store_true",
                        help="Skip the per-particle marching-cubes reference (~3 min full).")
    parser.add_argument("--phantom-only", action="store_true",
                        help="Only the synthetic phantoms (no real packing, no timing).")
    args = parser.parse_args()
    if args.primitives:
        print(json.dumps(primitives(args.primitives), indent=1))
        return
    if args.speed:
        print(json.dumps(speed(args.speed, blocks=args.speed_blocks), indent=1))
        return
    if args.learned:
        from _particles_learned import learned_figures

        classical = {"heal_cracks_um": HEAL_UM, "h": H_UM, "smooth": SMOOTH_VOXELS,
                     "min_volume_um3": MIN_VOLUME_UM3}
        print(json.dumps(learned_figures(
            args.model, shape=args.shape or (64 if args.quick else 128),
            seeds=SEEDS[:args.seeds or (2 if args.quick else len(SEEDS))],
            phantom=PHANTOM | {"modality": "micro"}, classical=classical, quick=args.quick,
            parts=tuple(args.parts.split(","))), indent=1))
        return

    from skimage.measure import regionprops_table

    from electrode_ct.data import nmc_phases
    from electrode_ct.measure import morphology_table, size_distribution
    from electrode_ct.measure.morphology import particle_surface_areas
    from electrode_ct.particles import particle_solidity, separate_particles

    result: dict = {"quick": args.quick}
    shape = 96 if args.quick else 128
    seeds = SEEDS[:2] if args.quick else SEEDS
    runs = [_phantom(shape, seed=s) for s in seeds]
    result["phantom"] = {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in PHANTOM.items()},
        "segmentation": "Gaussian 0.7 voxel + Otsu",
        "separation": {"h_um": H_UM, "smooth_voxels": SMOOTH_VOXELS,
                       "min_volume_um3": MIN_VOLUME_UM3, "heal_cracks_um": HEAL_UM},
        "seeds": list(seeds),
        "healed": _summary(runs, "healed"), "plain": _summary(runs, "plain"),
        "per_seed": runs,
    }
    result["phantom_intact"] = _phantom(shape, seed=seeds[-1], cracked_fraction=0.0)
    if args.phantom_only:
        print(json.dumps(result, indent=1))
        return

    vol = nmc_phases()
    if args.quick:
        vol = vol.with_data(vol.numpy()[:80, :100, :100])
    t0 = time.perf_counter()
    lab0 = separate_particles(vol, phase="active", heal_cracks_um=0.8, resplit=False).labels
    t_sep0 = time.perf_counter() - t0
    dist0 = size_distribution(morphology_table(lab0, spacing=vol.spacing, properties="basic"))
    del lab0
    t0 = time.perf_counter()
    info = separate_particles(vol, phase="active", heal_cracks_um=0.8)
    lab = info.labels
    _ = info.scores  # the confidence is computed on first use: timed with the separation
    t_sep = time.perf_counter() - t0
    # the cost of the confidence's solidity factor (one convex hull per particle; the
    # separation above computes it on the healed regions): the same hulls on the labels
    t0 = time.perf_counter()
    particle_solidity(lab, spacing=vol.spacing)
    t_solidity = time.perf_counter() - t0
    # one healing width only (before the wider-healing hypothesis)
    t0 = time.perf_counter()
    lab1 = separate_particles(vol, phase="active", heal_cracks_um=0.8,
                              heal_alternative=1.0).labels
    t_sep1 = time.perf_counter() - t0
    dist1 = size_distribution(morphology_table(lab1, spacing=vol.spacing, properties="basic"))
    del lab1
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
        "separation_time_s": t_sep, "n_resplit": info.n_resplit,
        "solidity_time_s": t_solidity,
        "n_rehealed": info.n_rehealed,
        "single_width": {"n_particles": dist1["n_particles"],
                         "d50_volume_um": dist1["volume"]["d50_um"],
                         "d50_number_um": dist1["number"]["d50_um"],
                         "separation_time_s": t_sep1},
        "no_resplit": {"n_particles": dist0["n_particles"],
                       "d50_volume_um": dist0["volume"]["d50_um"],
                       "d50_number_um": dist0["number"]["d50_um"],
                       "separation_time_s": t_sep0},
    }

    big = _tile_to(lab, 1000 if args.quick else 10_000)
    timing = {"shape": list(big.shape), "n_particles": int(big.max())}
    t0 = time.perf_counter()
    morphology_table(big, spacing=vol.spacing, properties="basic")
    timing["basic_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = morphology_table(big, spacing=vol.spacing, properties="all")
    timing["all_s"] = time.perf_counter() - t0
    timing["surface_method"] = "configurations"
    t0 = time.perf_counter()
    regionprops_table(big.astype(np.int32), properties=("label", "area", "centroid", "bbox"))
    timing["reference_skimage_regionprops_basic_s"] = time.perf_counter() - t0
    timing["median_sphericity"] = float(full.sphericity.median())
    if not args.no_marching_cubes:
        # the previous default, per-particle marching cubes, measured in the same run
        t0 = time.perf_counter()
        mc = particle_surface_areas(big, spacing=vol.spacing, method="marching_cubes")
        timing["reference_marching_cubes_surface_s"] = time.perf_counter() - t0
        ratio = full.surface_area_um2.to_numpy() / mc[full.label.to_numpy()]
        large = full.equivalent_diameter_um.to_numpy() >= 10 * min(vol.spacing)
        timing["area_ratio_configurations_to_marching_cubes"] = {
            "median": float(np.median(ratio)),
            "p5": float(np.percentile(ratio, 5)), "p95": float(np.percentile(ratio, 95)),
            "median_diameter_ge_10_voxels": float(np.median(ratio[large])),
        }
    result["morphology_10k"] = timing
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
