"""Benchmark: CNN trained on ONE labelled nano-CT slice (the SegmentPy protocol).

For each SegmentPy sub-volume in ``tests/data/segmentpy_nmc_nanoct`` (A: slices 1, 100, 200,
300, 400; C: 394, 470, 546, 622, 698, 774 — each file an independent 2-D slice), train on one
slice, early-stop on a second slice of the same sub-volume, predict every other slice and
compare with the expert labels (``metrics.compare``, confusion pooled over the test slices).
Expert labels are mapped ONCE per sub-volume by ``benchmarks/_segmentpy.py`` (which of 1/2 is
CBD is decided from the mean grey level pooled over all slices of the sub-volume; deciding per
file is wrong because the grey order of 1/2 flips on single slices).

Reference in the same run, same split: the project's random forest
(``segment.forest.train_forest``) trained on the same slice with the same dense labels.

Speed: prediction Mpixel/s of the default model on a 500 × 500 slice with 1 and 2 torch
threads, beside the published LRCS-Net size (32 channels, 5 × 5) measured in the same run
(the machine is shared: compare ratios, not absolute numbers).

Also an ablation on the same models (``ablation_mean_iou``): the first member alone and all
members, without and with test-time augmentation.

Prints one JSON object. Run (the default model: 3 members, 20 epochs; docs/cnn.md)::

    flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/cnn.py --threads 1 --parallel \
        --time-limit 600

(``--quick`` for a smoke run; ``--subvolumes C`` for one sub-volume).

Cross-scan protocol (issue #23; ``benchmarks/_cross_scan.py``): ``--cross-scan`` trains every
``--candidate NAME=key:value,...`` (default: the shipped defaults only) on one slice of A and
of C, scores each with no validation slice and with one, chooses on one sub-volume and
reports the score on the other (``cross_scan`` in the JSON)::

    nice .venv/bin/python benchmarks/cnn.py --cross-scan --threads 1 --parallel \
        --time-limit 600 --candidate default

(``--merge A.json C.json ...`` combines runs of other sub-volumes or candidates.)

Labelled-slices curve (issue #23; ``benchmarks/_cnn_curve.py``): ``--curve`` trains on the
dense labels of 1, 2, 3, 5 slices of each sub-volume and scores every slice; the budget is
the usual options (stated in the output's ``budget``), e.g. a reduced one::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/cnn.py --curve --threads 1 \
        --epochs 6 --set members=1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _segmentpy import CLASS_NAMES, SubVolume, load_subvolume  # noqa: E402

SPLITS = {"A": {"train": 200, "val": 300}, "C": {"train": 546, "val": 622}}
"""Training and validation slice of each sub-volume (middle slices; all others are tests)."""

PUBLISHED_LRCS = {"nmc": 0.927, "cbd": 0.376, "pore": 0.659, "mean": 0.654}
CLASS_MAP = {name: i + 1 for i, name in enumerate(CLASS_NAMES)}


def _log(name: str):
    def log(rec: dict) -> None:
        print(f"{name} epoch {rec['epoch']}: loss {rec['loss']:.3f} val "
              f"{rec['val_mean_iou']:.3f} lr {rec['lr']:.1e} {rec['seconds']:.0f} s",
              file=sys.stderr, flush=True)
    return log


def _score(preds: list[np.ndarray], refs: list[np.ndarray]) -> dict:
    from electrode_ct.metrics.compare import compare

    res = compare(np.concatenate([p.ravel() for p in preds]),
                  np.concatenate([r.ravel() for r in refs]), class_map=CLASS_MAP)
    return {"iou": res["iou"], "mean_iou": res["mean_iou"], "accuracy": res["accuracy"]}


def run_cnn(sv: SubVolume, cfg, *, tests: list[int]) -> tuple[dict, object]:
    """Train on the split's slice, validate on its validation slice, score the tests."""
    from electrode_ct.segment.cnn.train import train

    split = SPLITS[sv.name]
    tr, va = split["train"], split["val"]
    res = train(sv.images[tr], sv.labels[tr], config=cfg,
                val=(sv.images[va], sv.labels[va]), class_names=list(CLASS_NAMES),
                callback=_log(sv.name))
    preds, t_pred = {}, 0.0
    for s in [*tests, va]:
        t = time.perf_counter()
        preds[s] = res.model.predict(sv.images[s]).labels[0]  # the model's TTA default
        t_pred += time.perf_counter() - t
    test = _score([preds[s] for s in tests], [sv.labels[s] for s in tests])
    return {
        **test,
        "ablation_mean_iou": ablation(res.model, sv, tests, cfg.transforms),
        "mean_iou_per_slice": {str(s): _score([preds[s]], [sv.labels[s]])["mean_iou"]
                               for s in tests},
        "mean_iou_val_slice": _score([preds[va]], [sv.labels[va]])["mean_iou"],
        "train_wall_s": res.wall_s, "train_cpu_s": res.cpu_s,
        "epochs_run": len(res.history), "best_epoch": res.best_epoch,
        "best_val_mean_iou": res.model.training["best_val_mean_iou"],
        "members": res.model.training["members"],
        "normalisation": res.model.normalisation["mode"],
        "normalisation_choice": res.model.training.get("normalisation_choice"),
        "stopped_early": res.stopped_early, "collapsed": res.collapsed,
        "predict_wall_s": t_pred,
    }, res.model


def ablation(model, sv: SubVolume, tests: list[int], transforms: int) -> dict:
    """Test mean IoU of the first member alone and of all members, without and with TTA.

    TTA: the first member with 2, 3 and 8 of the dihedral transforms (2 and 3 cost about as
    much as 2 and 3 members) and all members with 8.
    """
    from electrode_ct.segment.cnn.model import CNNModel

    first = CNNModel(model.nets[0], arch=model.arch, class_values=model.class_values,
                     class_names=model.class_names, normalisation=model.normalisation,
                     prediction=model.prediction)
    variants = {"first_member_tta1": (first, 1), "all_members_tta1": (model, 1)}
    for t in sorted({2, 3, 8, transforms} - {1}):  # test-time flips/rotations, same models
        variants[f"first_member_tta{t}"] = (first, t)
    variants["all_members_tta8"] = (model, 8)
    refs = [sv.labels[s] for s in tests]
    return {name: _score([m.predict(sv.images[s], transforms=t).labels[0] for s in tests],
                         refs)["mean_iou"]
            for name, (m, t) in variants.items()}


def run_forest(sv: SubVolume, *, tests: list[int]) -> dict:
    """The project's forest on the same training slice and labels, same test slices."""
    from electrode_ct.segment.forest_train import train_forest

    tr = SPLITS[sv.name]["train"]
    t0, c0 = time.perf_counter(), time.process_time()
    model = train_forest(sv.images[tr], sv.labels[tr], class_names=list(CLASS_NAMES), seed=0,
                         n_jobs=2)
    preds = [model.predict(sv.images[s]).labels[0] for s in tests]
    out = _score(preds, [sv.labels[s] for s in tests])
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
    return out


def speed(net_args: dict, *, threads: int, repeats: int = 3, members: int = 1,
          transforms: int = 1) -> float:
    """Best-of-``repeats`` prediction Mpixel/s of an (untrained) model on a 500 × 500 slice.

    ``members`` networks of the architecture ``net_args``, ``transforms`` test-time
    transforms each.
    """
    from electrode_ct.segment.cnn.model import CNNModel
    from electrode_ct.segment.cnn.nets import build_net

    nets = [build_net(net_args["name"], n_classes=3, channels=net_args["channels"],
                      depth=net_args["depth"], kernel=net_args["kernel"]).eval()
            for _ in range(members)]
    model = CNNModel(nets, arch=net_args, class_values=[1, 2, 3], class_names=list(CLASS_NAMES),
                     normalisation={"mode": "image"})
    img = np.random.default_rng(0).normal(size=(500, 500)).astype(np.float32)
    model.predict(img, threads=threads, transforms=transforms)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(img, threads=threads, transforms=transforms)
        best = min(best, time.perf_counter() - t)
    return img.size / best / 1e6


def _in_subprocesses(names: list[str]) -> dict:
    """Run this benchmark once per sub-volume, all at once; their results by name."""
    import subprocess

    argv = [a for a in sys.argv[1:] if a != "--parallel"]
    keep, skip = [], False
    for a in argv:  # drop any --subvolumes X
        if skip:
            skip = False
            continue
        if a == "--subvolumes":
            skip = True
            continue
        if not a.startswith("--subvolumes="):
            keep.append(a)
    procs = {n: subprocess.Popen([sys.executable, __file__, *keep, "--subvolumes", n,
                                  "--no-speed"], stdout=subprocess.PIPE, text=True)
             for n in names}
    results = {}
    for n, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"sub-volume {n}: benchmark process failed ({proc.returncode})")
        results[n] = json.loads(stdout.strip().splitlines()[-1])[n]
    return results


def _cross_scan_main(args: argparse.Namespace, cfg) -> dict:
    """``--cross-scan``: every candidate on every sub-volume, then the cross-scan choice."""
    import subprocess

    import _cross_scan as cs

    cands = dict(cs.parse_candidate(c) for c in (args.candidate or ["default"]))
    configs = {n: cs.candidate_config(cfg, o) for n, o in cands.items()}
    names = args.subvolumes.split(",")
    if not (args.parallel and len(names) > 1):
        return cs.cross_scan(names, configs, load=load_subvolume, forest=not args.no_forest,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    argv = [a for a in sys.argv[1:] if a != "--parallel"]
    procs = [subprocess.Popen([sys.executable, __file__, *argv, "--subvolumes", n],
                              stdout=subprocess.PIPE, text=True) for n in names]
    parts = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("cross-scan: a sub-volume process failed")
    return cs.merge(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--kernel", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other TrainConfig field (repeatable)")
    ap.add_argument("--subvolumes", default="A,C")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="training wall-clock limit per sub-volume in seconds")
    ap.add_argument("--no-forest", action="store_true", help="skip the forest reference")
    ap.add_argument("--parallel", action="store_true",
                    help="train the sub-volumes at the same time, one process each (use with "
                         "--threads 1 on a 2-core machine)")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    ap.add_argument("--cross-scan", action="store_true",
                    help="the cross-scan protocol of issue #23 (benchmarks/_cross_scan.py)")
    ap.add_argument("--candidate", action="append", default=None,
                    metavar="NAME=KEY:VALUE,...", help="a --cross-scan candidate (repeatable)")
    ap.add_argument("--curve", action="store_true",
                    help="the labelled-slices curve of issue #23 (benchmarks/_cnn_curve.py)")
    ap.add_argument("--curve-counts", default="1,2,3,5",
                    help="--curve: numbers of labelled slices")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="merge saved --cross-scan outputs and select again")
    args = ap.parse_args()

    from dataclasses import asdict, fields

    from electrode_ct.segment.cnn.config import TrainConfig

    cfg = TrainConfig(threads=args.threads)
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(TrainConfig)}
    for key, val in [("arch", args.arch), ("channels", args.channels), ("kernel", args.kernel),
                     ("depth", args.depth), ("epochs", args.epochs),
                     ("time_limit_s", args.time_limit)]:
        if val is not None:
            setattr(cfg, key, val)
    for item in args.set:
        key, val = item.split("=", 1)
        if key not in types:  # e.g. an option removed since a documented run
            raise SystemExit(f"--set {key}: not a TrainConfig field; known: {sorted(types)}")
        kind = types[key]
        setattr(cfg, key, (val.lower() in ("1", "true", "yes")) if kind is bool
                else kind(val) if kind in (int, float) else val)
    if args.quick:
        cfg.epochs, cfg.patches_per_epoch = 2, 32
    if args.merge:  # saved --cross-scan outputs (sub-volumes or candidates run apart)
        import _cross_scan as cs

        print(json.dumps(cs.merge([json.loads(Path(f).read_text()) for f in args.merge]),
                         default=float))
        return
    if args.curve:
        from _cnn_curve import labelled_curve

        t0 = time.perf_counter()
        res = labelled_curve(args.subvolumes.split(","), cfg, load=load_subvolume,
                             counts=tuple(int(k) for k in args.curve_counts.split(",")),
                             log=lambda m: print(m, file=sys.stderr, flush=True))
        res.update(benchmark="cnn_labelled_slices_segmentpy", quick=args.quick,
                   load=os.getloadavg(), total_wall_s=time.perf_counter() - t0)
        print(json.dumps(res, default=float))
        return
    if args.cross_scan:
        t0 = time.perf_counter()
        res = _cross_scan_main(args, cfg)
        res.update(benchmark="cnn_cross_scan_segmentpy", quick=args.quick, load=os.getloadavg(),
                   total_wall_s=time.perf_counter() - t0)
        print(json.dumps(res, default=float))
        return
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict = {"benchmark": "cnn_one_slice_segmentpy", "quick": args.quick,
                 "config": asdict(cfg), "arch": cfg.arch_record(),
                 "published_lrcs_net": PUBLISHED_LRCS}
    names = args.subvolumes.split(",")
    if args.parallel and len(names) > 1:
        out.update(_in_subprocesses(names))
        names = []
    for name in names:
        sv = load_subvolume(name)
        split = SPLITS[name]
        tests = [s for s in sv.slices if s not in (split["train"], split["val"])]
        if args.quick:
            tests = tests[:1]
        res, _ = run_cnn(sv, cfg, tests=tests)
        res.update(train_slice=split["train"], val_slice=split["val"], test_slices=tests,
                   label_mapping={str(k): CLASS_NAMES[v - 1] for k, v in sv.mapping.items()})
        if not args.no_forest:
            res["forest_same_split"] = run_forest(sv, tests=tests)
        out[name] = res
        print(json.dumps({name: res}, default=float), file=sys.stderr, flush=True)
    names = args.subvolumes.split(",")
    out["mean_iou_both"] = float(np.mean([out[n]["mean_iou"] for n in names]))
    if args.no_speed:
        print(json.dumps(out, default=float))
        return
    arch = cfg.arch_record()
    published = {"name": "lrcs", "channels": 32, "depth": 3, "kernel": 5}
    reps = 1 if args.quick else 3
    out["predict_mpixel_per_s"] = {
        f"{label}_{th}_threads": speed(a, threads=th, repeats=reps, members=m, transforms=t)
        for th in (1, 2)
        for label, a, m, t in (("as_benchmarked", arch, cfg.members, cfg.transforms),
                               ("one_network", arch, 1, 1),
                               ("published_32ch_5x5", published, 1, 1))}
    out["target"] = {"mean_iou": 0.62, "train_minutes": 20, "predict_mpixel_per_s": 0.4}
    out["peak_rss_mb"] = max(resource.getrusage(who).ru_maxrss / 1024
                             for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    out["total_wall_s"] = time.perf_counter() - t0
    out["total_cpu_s"] = time.process_time() - c0
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
