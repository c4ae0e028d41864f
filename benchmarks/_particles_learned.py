"""The learned instance model beside the classical route (``particles.py --learned``).

Same phantoms, same evaluation (away from the border, ranked by each result's particle
confidence), in the same run:

- ``classical``: Gaussian + Otsu active phase, distance watershed with crack healing
  (the settings of ``particles.py``);
- ``learned``: the instance model (default: the shipped one) on the grey volume,
  tri-planar, its default (relative) seeds, cut back to the same Otsu phase.

Families: the benchmark phantom (30 % cracked, 1-2 voxel cracks) with the micro and the
nano preset on unseen seeds; a harder family (elongated and irregular particles, aspect
spread 0.35, dense calendered packing, CNR 3, thin cracks); the real MATBOX packing
(count and volume d50); prediction speed (Mvoxel/s, tri-planar, 2 threads) against one
Gaussian pass of the same volume.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

HARD = {"aspect_sd": 0.35, "roughness": 0.08, "active_fraction": 0.55, "calender": 0.2,
        "snr": 3.0, "crack_width_um": 0.5}
"""The harder family (over the benchmark phantom's settings)."""


def _figures(labels: np.ndarray, scores: np.ndarray, truth: np.ndarray, dt: float) -> dict:
    from electrode_ct.metrics.instances import away_from_border, match_instances

    m = match_instances(*away_from_border(labels, truth), scores=scores)
    n = m["n_ref"]
    return {"ap50": m["ap50"], "ap": m["ap"], "n_particles": m["n_pred"], "n_true": n,
            "count_error": abs(m["n_pred"] - n) / max(n, 1), "splits": m["splits"],
            "merges": m["merges"], "time_s": dt}


def compare(shape: int, seed: int, settings: dict, model: Any, *, classical: dict) -> dict:
    """Classical and learned figures on one phantom."""
    from particles import _segment_active

    from electrode_ct.particles import separate_learned, separate_particles
    from electrode_ct.synth import electrode

    ph = electrode((shape,) * 3, seed=seed, **settings)
    exact = ph.phases.numpy() == ph.phases.class_map["active"]
    truth = np.where(exact, ph.particles.numpy(), 0).astype(np.uint32)
    grey = ph.grey.numpy()
    active = _segment_active(grey)
    t0 = time.perf_counter()
    cl = separate_particles(active.astype(np.uint8), phase=1, spacing=ph.grey.spacing,
                            **classical)
    out = {"seed": seed, "classical": _figures(cl.labels, cl.scores, truth,
                                               time.perf_counter() - t0)}
    t0 = time.perf_counter()
    le = separate_learned(grey, model, phases=active, spacing=ph.grey.spacing,
                          min_volume_um3=classical["min_volume_um3"])
    out["learned"] = _figures(le.labels, le.scores, truth, time.perf_counter() - t0)
    return out


def summary(runs: list[dict]) -> dict:
    """Mean and worst AP@0.5 and count error of both routes."""
    out = {}
    for route in ("classical", "learned"):
        ap = np.array([r[route]["ap50"] for r in runs])
        ce = np.array([r[route]["count_error"] for r in runs])
        out[route] = {"ap50_mean": float(ap.mean()), "ap50_worst": float(ap.min()),
                      "count_error_mean": float(ce.mean()), "count_error_worst": float(ce.max())}
    return out


def _rendered(phases: np.ndarray, seed: int = 0) -> np.ndarray:
    """Phases imaged like the micro-CT preset (levels, PSF σ 1.4 voxel, CNR 6), uint16."""
    from scipy import ndimage as ndi

    from electrode_ct.synth.imaging import get_preset

    pre = get_preset("micro")
    levels = np.array([pre.pore, pre.active, pre.cbd], np.float32)  # MATBOX 0 pore 1 NMC 2 CBD
    blurred = ndi.gaussian_filter(levels[phases], pre.psf_sigma_vox)
    noise = np.random.default_rng(seed).normal(0, (pre.active - pre.pore) / pre.snr,
                                               phases.shape)
    return np.clip((blurred + noise) * 40000, 0, 65535).astype(np.uint16)


def _count_d50(labels: np.ndarray, spacing: Any, dt: float) -> dict:
    from electrode_ct.measure import morphology_table, size_distribution

    dist = size_distribution(morphology_table(labels, spacing=spacing, properties="basic"))
    return {"n_particles": int(labels.max()), "d50_volume_um": dist["volume"]["d50_um"],
            "d50_number_um": dist["number"]["d50_um"], "time_s": dt}


def _both(grey: np.ndarray, active: np.ndarray, spacing: Any, model: Any) -> dict:
    """Classical (healed distance watershed of ``active``) and learned, count and d50."""
    from electrode_ct.metrics.instances import match_instances
    from electrode_ct.particles import separate_learned, separate_particles

    t0 = time.perf_counter()
    cl = separate_particles(active.astype(np.uint8), phase=1, spacing=spacing,
                            heal_cracks_um=0.8).labels
    t_cl = time.perf_counter() - t0
    t0 = time.perf_counter()
    le = separate_learned(grey, model, phases=active, spacing=spacing).labels
    t_le = time.perf_counter() - t0
    agree = match_instances(le, cl)
    return {"shape": list(grey.shape), "classical": _count_d50(cl, spacing, t_cl),
            "learned": _count_d50(le, spacing, t_le),
            "learned_vs_classical": {"ap50": agree["ap50"], "splits": agree["splits"],
                                     "merges": agree["merges"]}}


def real_packing(model: Any, *, quick: bool) -> dict:
    """Count and volume d50 of both routes on the real packings.

    ``matbox``: the MATBOX NMC-1-cal phases (no grey scan is embedded for them) imaged by
    the micro-CT preset (:func:`_rendered`); ``nmc1cal_grey``: the real 75³ micro-CT crop,
    active phase by Gaussian + Otsu for both routes.
    """
    from particles import _segment_active

    from electrode_ct.data import nmc_microct, nmc_phases

    vol = nmc_phases()
    ph = vol.numpy()[:80, :100, :100] if quick else vol.numpy()
    out = {"voxel_um": vol.spacing[0],
           "matbox": _both(_rendered(ph), ph == vol.class_map["active"], vol.spacing, model)}
    grey = nmc_microct()[0]
    g = grey.numpy()
    out["nmc1cal_grey"] = _both(g, _segment_active(g), grey.spacing, model)
    return out


def _plane_by_plane(model: Any, grey: np.ndarray, threads: int) -> np.ndarray:
    """The s9 prediction route: one plane per forward pass, batch-norm not folded, torch's
    own intra-op threads (the reference of :func:`speed`)."""
    import torch

    from electrode_ct.segment.cnn.predict import predict_plane

    torch.set_num_threads(threads)
    nets = [m.to(memory_format=torch.channels_last).eval() for m in model.nets]
    vol = model.normalise(grey)
    acc = np.zeros((len(model.class_names), *vol.shape), np.float32)
    for ax in range(3):
        for i in range(vol.shape[ax]):
            sl: list[Any] = [slice(None)] * 3
            sl[ax] = i
            acc[(slice(None), *sl)] += predict_plane(nets, vol[tuple(sl)], tile=512)
    return acc / np.float32(3)


def speed(model: Any, n: int) -> dict:
    """Tri-planar prediction Mvoxel/s on 1 and 2 torch threads, beside one Gaussian pass of
    the same volume (the simplest reference) and the plane-by-plane route
    (:func:`_plane_by_plane`), same run; the largest probability difference of the two
    routes."""
    from scipy import ndimage as ndi

    from electrode_ct.particles.learned import learned_maps
    from electrode_ct.synth import electrode

    grey = electrode((n,) * 3, seed=9, voxel_size=0.5, radius_mean_um=4.0).grey.numpy()
    t0 = time.perf_counter()
    ndi.gaussian_filter(grey.astype(np.float32), 1.0)
    out: dict = {"shape": [n] * 3, "gaussian_s": time.perf_counter() - t0}
    for threads in (1, 2):
        t0 = time.perf_counter()
        learned_maps(model, grey, threads=threads)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = _plane_by_plane(model, grey, threads)
        dt_ref = time.perf_counter() - t0
        stacked = model.predict_proba(grey, mode="triplanar", threads=threads)
        out[f"threads_{threads}"] = {"prediction_s": dt, "mvoxel_per_s": grey.size / dt / 1e6,
                                     "x_gaussian": dt / out["gaussian_s"],
                                     "plane_by_plane_mvoxel_per_s": grey.size / dt_ref / 1e6,
                                     "max_abs_difference": float(np.abs(stacked - ref).max())}
    return out


PARTS = ("micro", "nano", "hard", "real", "speed")
"""The parts of :func:`learned_figures` (``--parts``: several processes can share a run)."""


def learned_figures(model_path: str | None, *, shape: int, seeds: tuple[int, ...],
                    phantom: dict, classical: dict, quick: bool,
                    parts: tuple[str, ...] = PARTS) -> dict:
    """The learned-vs-classical figures of ``parts`` (one JSON object)."""
    from electrode_ct.particles.learned import resolve_model

    model = resolve_model(model_path)
    result: dict = {"model": model_path or "shipped", "shape": [shape] * 3,
                    "seeds": list(seeds), "classical_settings": classical, "parts": list(parts),
                    "model_training": {k: model.training.get(k) for k in
                                       ("cpu_s", "wall_s", "epochs_run", "phantoms")}}
    for modality in ("micro", "nano"):
        if modality in parts:
            runs = [compare(shape, s, {**phantom, "modality": modality}, model,
                            classical=classical) for s in seeds]
            result[modality] = {"summary": summary(runs), "per_seed": runs}
    if "hard" in parts:
        runs = [compare(shape, s, {**phantom, **HARD}, model, classical=classical)
                for s in seeds[:3]]
        result["hard"] = {"settings": HARD, "summary": summary(runs), "per_seed": runs}
    if "real" in parts:
        result["real_packing"] = real_packing(model, quick=quick)
    if "speed" in parts:
        result["speed"] = speed(model, 64 if quick else 128)
    return result
