"""Benchmark: CNN trained on ONE labelled nano-CT slice (the SegmentPy protocol).

For each SegmentPy sub-volume in ``tests/data/segmentpy_nmc_nanoct`` (A: slices 1, 100, 200,
300, 400; C: 394, 470, 546, 622, 698, 774 — each file an independent 2-D slice), train on one
slice, use a neighbouring slice for early stopping, predict every other slice and compare
with the expert labels (``metrics.compare``). Expert labels are 0 = NMC and 1/2 = CBD or
pore; per file the brighter of 1/2 (mean grey level) is CBD. Training labels:
1 = pore, 2 = CBD, 3 = NMC.

Prints one JSON object: per sub-volume IoU per class and mean (test slices = all but the
training and validation slice; also with the validation slice), training wall/CPU time,
prediction speed, peak memory, the published LRCS-Net figures and the forest's figure
when ``benchmarks/forest.py`` is available.

Run: ``flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/cnn.py`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "segmentpy_nmc_nanoct"
SUBVOLUMES = {
    "A": {"slices": [1, 100, 200, 300, 400], "train": 200, "val": 300},
    "C": {"slices": [394, 470, 546, 622, 698, 774], "train": 546, "val": 622},
}
CLASS_NAMES = ["pore", "cbd", "nmc"]
PUBLISHED_LRCS = {"nmc": 0.927, "cbd": 0.376, "pore": 0.659, "mean": 0.654}


def load_slice(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey slice and training labels (1 pore, 2 CBD, 3 NMC) of one SegmentPy file."""
    img = tifffile.imread(DATA / f"{n}.tif").astype(np.float32)
    raw = tifffile.imread(DATA / f"{n}_label.tif")
    m1, m2 = img[raw == 1].mean(), img[raw == 2].mean()
    cbd, pore = (1, 2) if m1 > m2 else (2, 1)
    lab = np.zeros(raw.shape, np.uint8)
    lab[raw == pore] = 1
    lab[raw == cbd] = 2
    lab[raw == 0] = 3
    return img, lab


def run_subvolume(name: str, spec: dict, cfg, *, quick: bool) -> dict:
    from electrode_ct.metrics.compare import compare
    from electrode_ct.segment.cnn.train import train

    img, lab = load_slice(spec["train"])
    vimg, vlab = load_slice(spec["val"])
    def log(rec: dict) -> None:
        print(f"{name} epoch {rec['epoch']}: loss {rec['loss']:.3f} val {rec['val_mean_iou']:.3f} "
              f"{rec['seconds']:.0f} s", file=sys.stderr, flush=True)

    res = train(img, lab, config=cfg, val=(vimg, vlab), class_names=CLASS_NAMES, callback=log)
    model = res.model
    preds, refs, pv, rv = [], [], [], []
    t_pred, n_pix = 0.0, 0
    others = [s for s in spec["slices"] if s != spec["train"]]
    if quick:
        others = others[:2]
    for s in others:
        im, lb = load_slice(s)
        t = time.perf_counter()
        out = model.predict(im).labels[0]
        t_pred += time.perf_counter() - t
        n_pix += im.size
        (pv if s == spec["val"] else preds).append(out.ravel())
        (rv if s == spec["val"] else refs).append(lb.ravel())
    cmap = {n: i + 1 for i, n in enumerate(CLASS_NAMES)}
    test = compare(np.concatenate(preds), np.concatenate(refs), class_map=cmap)
    with_val = compare(np.concatenate(preds + pv), np.concatenate(refs + rv), class_map=cmap)
    per_slice = {}
    for s, p, r in zip([s for s in others if s != spec["val"]], preds, refs, strict=True):
        per_slice[str(s)] = compare(p, r, class_map=cmap)["mean_iou"]
    return {
        "train_slice": spec["train"], "val_slice": spec["val"],
        "test_slices": [s for s in others if s != spec["val"]],
        "iou": test["iou"], "mean_iou": test["mean_iou"], "accuracy": test["accuracy"],
        "mean_iou_per_slice": per_slice,
        "mean_iou_including_val": with_val["mean_iou"],
        "train_wall_s": res.wall_s, "train_cpu_s": res.cpu_s,
        "epochs_run": len(res.history), "best_epoch": res.best_epoch,
        "best_val_mean_iou": max(h["val_mean_iou"] for h in res.history),
        "collapsed": res.collapsed,
        "predict_mpixel_per_s": n_pix / t_pred / 1e6,
    }


def prediction_speed(model, *, repeats: int = 3) -> float:
    """Mpixel/s of the default model on a 500 × 500 slice (best of ``repeats``)."""
    img, _ = load_slice(546)
    model.predict(img)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(img)
        best = min(best, time.perf_counter() - t)
    return img.size / best / 1e6


def forest_reference() -> dict | None:
    """The forest benchmark's figures, when ``benchmarks/forest.py`` exists and runs."""
    import subprocess

    script = ROOT / "benchmarks" / "forest.py"
    if not script.exists():
        return None
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=1200, check=True).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--arch", default="lrcs")
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--kernel", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--subvolumes", default="A,C")
    ap.add_argument("--time-limit", type=float, default=600.0,
                    help="training wall-clock limit per sub-volume in seconds")
    ap.add_argument("--forest", action="store_true", help="also run benchmarks/forest.py")
    args = ap.parse_args()

    import torch

    from electrode_ct.segment.cnn.train import TrainConfig

    torch.set_num_threads(2)
    cfg = TrainConfig(arch=args.arch, channels=args.channels, kernel=args.kernel,
                      depth=args.depth, threads=2, time_limit_s=args.time_limit)
    if args.epochs:
        cfg.epochs = args.epochs
    if args.quick:
        cfg.epochs, cfg.patches_per_epoch = 2, 64
    t0 = time.perf_counter()
    out: dict = {"benchmark": "cnn_one_slice_segmentpy", "quick": args.quick,
                 "config": {k: v for k, v in vars(cfg).items()},
                 "published_lrcs_net": PUBLISHED_LRCS, "threads": torch.get_num_threads()}
    models = {}
    for name in args.subvolumes.split(","):
        out[name] = run_subvolume(name, SUBVOLUMES[name], cfg, quick=args.quick)
    out["mean_iou_both"] = float(np.mean([out[n]["mean_iou"] for n in args.subvolumes.split(",")]))
    del models
    from electrode_ct.segment.cnn.train import train

    img, lab = load_slice(546)
    tiny = TrainConfig(**{**vars(cfg), "epochs": 1, "patches_per_epoch": 8})
    out["predict_mpixel_per_s_500x500"] = prediction_speed(train(img, lab, config=tiny).model)
    out["target"] = {"mean_iou": 0.62, "train_minutes": 20, "predict_mpixel_per_s": 0.4}
    if args.forest:
        out["forest"] = forest_reference()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["total_wall_s"] = time.perf_counter() - t0
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
