"""Benchmark of per-particle flaw classification and crack measurement on phantoms.

Prints one JSON object. For each imaging preset (lab micro-CT and nano-CT SNR), a
features classifier and a small CNN are trained on one noisy phantom (30 % cracked
particles, default thin cracks included) and tested on another (different seed):
AUC, % flawed vs truth, particles/s on CPU. Crack volume fraction of the 3-phase split
and of the partial-volume estimate is compared with the truth on a phantom with cracks
at least one voxel wide. Reference in the same run: the AUC of the plain mean grey level
of each particle, and the time of the GREAT2 layer sums alone.

Run: ``flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/cracks.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def _phantom(shape, seed, modality, width=0.5):
    from electrode_ct.synth import electrode

    return electrode(shape, voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.75,
                     modality=modality, seed=seed, cracked_fraction=0.3, crack_width_um=width)


def _cnn(a, b, pa, pb, y_b, t_prep, size, cnn_cfg) -> dict:
    from electrode_ct.cracks import classify, train

    t0 = time.perf_counter()
    cm = train(None, None, a.truth, prepared=pa, method="cnn", k=10, slice_size=size,
               cnn_config=cnn_cfg)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    rc = classify(None, None, model=cm, truth=b.truth, prepared=pb)
    t_cnn = time.perf_counter() - t0
    return {"auc": rc.summary["auc"], "percent_flawed": rc.summary["percent_flawed"],
            "percent_flawed_error_pp": rc.summary["percent_flawed"] - 100 * y_b.mean(),
            "particles_per_s": len(pb.ids) / (t_prep + t_cnn),
            "train_s": t_train, "epochs_run": cm.training["epochs_run"],
            "slice_size": size, "percent_flawed_vs_m": rc.summary["percent_flawed_vs_m"]}


def run(quick: bool = False, cnn: bool = True) -> dict:
    from electrode_ct.cracks import classify, prepare, reference_flawed, train
    from electrode_ct.cracks.cnn_model import CNNConfig
    from electrode_ct.cracks.evaluate import roc_auc, select_threshold
    from electrode_ct.cracks.threephase import three_phase
    from electrode_ct.measure.radial import layer_sums

    shape = (64, 64, 64) if quick else (96, 96, 96)
    cnn_cfg = CNNConfig(channels=(4, 8, 16), epochs=2 if quick else 8, patience=3,
                        batch=128, seed=0)
    size = 32 if quick else 64
    out: dict = {"shape": list(shape), "voxel_size_um": 0.5, "cracked_fraction": 0.3,
                 "cnn": cnn,
                 "crack_width_um": 0.5, "quick": quick, "presets": {}}
    for modality in ("micro", "nano"):
        a, b = _phantom(shape, 101, modality), _phantom(shape, 102, modality)
        pa = prepare(a.grey.numpy(), a.particles.numpy(), spacing=a.grey.spacing)
        t0 = time.perf_counter()
        pb = prepare(b.grey.numpy(), b.particles.numpy(), spacing=b.grey.spacing)
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        layer_sums(b.particles.numpy(), b.grey.numpy(), spacing=b.grey.spacing)
        t_ref = time.perf_counter() - t0
        y_a = reference_flawed(a.truth, pa.ids)
        y_b = reference_flawed(b.truth, pb.ids)
        lab = b.particles.numpy().ravel()
        mean = (np.bincount(lab, weights=b.grey.numpy().ravel().astype(float))
                / np.maximum(np.bincount(lab), 1))[pb.ids]
        res: dict = {"n_test_particles": int(len(pb.ids)),
                     "percent_flawed_truth": float(100 * y_b.mean()),
                     "reference_mean_grey_auc": roc_auc(y_b, -mean),
                     "reference_layer_sums_s": t_ref}
        fm = train(None, None, a.truth, prepared=pa)
        # threshold chosen on the training phantom so the % flawed matches there
        thr = select_threshold(y_a, fm.score(pa.descriptors), rule="prevalence")
        t0 = time.perf_counter()
        r = classify(None, None, model=fm, truth=b.truth, prepared=pb, threshold=thr)
        t_cls = time.perf_counter() - t0
        res["features"] = {
            "auc": r.summary["auc"], "threshold": thr,
            "percent_flawed": r.summary["percent_flawed"],
            "percent_flawed_error_pp": r.summary["percent_flawed"] - 100 * y_b.mean(),
            "percent_flawed_at_0_5": float(100 * (r.table["flaw_score"] >= 0.5).mean()),
            "particles_per_s": len(pb.ids) / (t_prep + t_cls),
            "time_s": t_prep + t_cls}
        if cnn:
            res["cnn"] = _cnn(a, b, pa, pb, y_b, t_prep, size, cnn_cfg)
        # crack volume fraction, cracks >= 1 voxel wide, on the truly cracked particles
        w = _phantom(shape, 103, modality, width=1.0)
        pw = prepare(w.grey.numpy(), w.particles.numpy(), spacing=w.grey.spacing)
        tr = w.truth.set_index("label").loc[pw.ids]
        cracked = pw.ids[tr["cracked"].to_numpy()]
        _, tab, _ = three_phase(pw.grey, pw.healed, cracked, labels=pw.labels,
                                spacing=pw.spacing)
        vol = tr.loc[cracked, "volume_um3"].to_numpy()
        true_frac = float((tr.loc[cracked, "crack_volume_fraction"] * vol).sum() / vol.sum())
        seg_frac = float(tab["crack_volume_um3"].sum() / vol.sum())
        pv = pw.descriptors.set_index("label").loc[cracked, "pv_deficit"].to_numpy()
        pv_frac = float((np.clip(pv, 0, 1) * vol).sum() / vol.sum())
        res["crack_fraction"] = {"truth": true_frac, "three_phase": seg_frac,
                                 "three_phase_rel_error": seg_frac / true_frac - 1,
                                 "partial_volume": pv_frac,
                                 "partial_volume_rel_error": pv_frac / true_frac - 1,
                                 "n_cracked": int(len(cracked))}
        out["presets"][modality] = res
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-cnn", action="store_true", help="features classifier only")
    args = ap.parse_args()
    print(json.dumps(run(quick=args.quick, cnn=not args.skip_cnn), indent=1, default=float))
