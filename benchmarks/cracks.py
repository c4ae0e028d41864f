"""Benchmark of per-particle flaw classification and crack measurement on phantoms.

Prints one JSON object. For each imaging preset (lab micro-CT and nano-CT SNR), a
features classifier and a small CNN are trained on one noisy phantom (30 % cracked
particles, default thin cracks included) and tested on another (different seed):
AUC, % flawed vs truth, particles/s on CPU. Crack volume fraction of the 3-phase split
and of the partial-volume estimate is compared with the truth on a phantom with cracks
at least one voxel wide. Reference in the same run: the AUC of the plain mean grey level
of each particle, and the time of the GREAT2 layer sums alone.

The features classifier is trained on seed 101 and tested on seeds 102, 104 and 105
(mean, min, max); AUC is also given on the subsets without the faint flaws (intact
particles plus flawed ones with a crack volume fraction >= 1 % or >= 3 %). The CNN is
tested on seed 102.

Run: ``flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/cracks.py [--quick] [--skip-cnn]``.
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


def _auc_ge(y, score, frac, lo):
    from electrode_ct.cracks.evaluate import roc_auc

    keep = (y == 0) | (frac >= lo)
    return roc_auc(y[keep], score[keep])


def _cnn(pa, pb, y_a, y_b, frac_b, t_prep, cnn_cfg, k) -> dict:
    from electrode_ct.cracks.cnn_model import particle_scores, train_cnn
    from electrode_ct.cracks.evaluate import roc_auc
    from electrode_ct.cracks.sampling import sample_slices

    def slices(p):
        return sample_slices(p.grey, p.healed, p.ids, k=k, axes=0, size=cnn_cfg.size,
                             solid=p.reference.to_input(p.reference.solid),
                             background=p.reference.to_input(p.reference.background))

    t0 = time.perf_counter()
    cm = train_cnn(slices(pa), y_a, config=cnn_cfg, k=k, axes=[0])
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    prob = cm.slice_probabilities(slices(pb))
    t_cnn = time.perf_counter() - t0
    score = particle_scores(prob)
    return {"auc": roc_auc(y_b, score), "auc_flaws_ge_1pct": _auc_ge(y_b, score, frac_b, 0.01),
            "percent_flawed_at_0_4": float(100 * (score >= 0.4).mean()),
            "percent_flawed_error_pp_at_0_4": float(100 * ((score >= 0.4).mean() - y_b.mean())),
            "particles_per_s": len(pb.ids) / (t_prep + t_cnn),
            "particles_per_s_network_only": len(pb.ids) / t_cnn,
            "train_s": t_train, "epochs_run": cm.training["epochs_run"],
            "slice_size": cnn_cfg.size, "slices_per_particle": k}


def _spread(values: list[float]) -> dict:
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "values": v.tolist()}


def run(quick: bool = False, cnn: bool = True) -> dict:
    from electrode_ct.cracks import prepare, reference_flawed, train
    from electrode_ct.cracks.cnn_model import CNNConfig
    from electrode_ct.cracks.evaluate import roc_auc, select_threshold
    from electrode_ct.cracks.threephase import three_phase
    from electrode_ct.measure.radial import layer_sums

    shape = (64, 64, 64) if quick else (96, 96, 96)
    test_seeds = (102,) if quick else (102, 104, 105)
    cnn_cfg = CNNConfig(channels=(8, 16) if quick else (16, 32, 64), size=32,
                        epochs=2 if quick else 12, patience=12, batch=128, seed=0)
    out: dict = {"shape": list(shape), "voxel_size_um": 0.5, "cracked_fraction": 0.3,
                 "cnn": cnn, "train_seed": 101, "test_seeds": list(test_seeds),
                 "crack_width_um": 0.5, "quick": quick, "presets": {}}
    for modality in ("micro", "nano"):
        a = _phantom(shape, 101, modality)
        pa = prepare(a.grey.numpy(), a.particles.numpy(), spacing=a.grey.spacing)
        y_a = reference_flawed(a.truth, pa.ids)
        fm = train(None, None, a.truth, prepared=pa)
        thr_prev = select_threshold(y_a, fm.score(pa.descriptors), rule="prevalence")
        per: dict = {k: [] for k in ("auc", "auc_flaws_ge_1pct", "auc_flaws_ge_3pct",
                                      "percent_flawed_error_pp",
                                      "percent_flawed_error_pp_prevalence_threshold",
                                      "percent_flawed_expected_error_pp",
                                      "reference_mean_grey_auc", "particles_per_s")}
        res: dict = {"n_test_particles": [], "percent_flawed_truth": [],
                     "percent_cracked_below_1pct": []}
        for seed in test_seeds:
            b = _phantom(shape, seed, modality)
            t0 = time.perf_counter()
            pb = prepare(b.grey.numpy(), b.particles.numpy(), spacing=b.grey.spacing)
            t_prep = time.perf_counter() - t0
            t0 = time.perf_counter()
            layer_sums(b.particles.numpy(), b.grey.numpy(), spacing=b.grey.spacing)
            res["reference_layer_sums_s"] = time.perf_counter() - t0
            y_b = reference_flawed(b.truth, pb.ids)
            frac_b = b.truth.set_index("label").loc[pb.ids, "crack_volume_fraction"].to_numpy()
            lab = b.particles.numpy().ravel()
            mean = (np.bincount(lab, weights=b.grey.numpy().ravel().astype(float))
                    / np.maximum(np.bincount(lab), 1))[pb.ids]
            t0 = time.perf_counter()
            score = fm.score(pb.descriptors)
            thr = fm.default_threshold(score)
            t_cls = time.perf_counter() - t0
            truth_pct = 100 * y_b.mean()
            res["n_test_particles"].append(int(len(pb.ids)))
            res["percent_flawed_truth"].append(float(truth_pct))
            faint = frac_b[y_b.astype(bool)] < 0.01
            res["percent_cracked_below_1pct"].append(float(100 * faint.mean()))
            per["auc"].append(roc_auc(y_b, score))
            per["auc_flaws_ge_1pct"].append(_auc_ge(y_b, score, frac_b, 0.01))
            per["auc_flaws_ge_3pct"].append(_auc_ge(y_b, score, frac_b, 0.03))
            per["percent_flawed_error_pp"].append(100 * (score >= thr).mean() - truth_pct)
            per["percent_flawed_error_pp_prevalence_threshold"].append(
                100 * (score >= thr_prev).mean() - truth_pct)
            per["percent_flawed_expected_error_pp"].append(100 * score.mean() - truth_pct)
            per["reference_mean_grey_auc"].append(roc_auc(y_b, -mean))
            per["particles_per_s"].append(len(pb.ids) / (t_prep + t_cls))
            if cnn and seed == test_seeds[0]:
                res["cnn"] = _cnn(pa, pb, y_a, y_b, frac_b, t_prep, cnn_cfg, 10)
        res["features"] = {k: _spread(v) for k, v in per.items()}
        res["features"]["threshold_rule"] = fm.threshold_rule
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
