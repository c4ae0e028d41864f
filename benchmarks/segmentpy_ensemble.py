"""Perturbed-label ensemble on the SegmentPy nano-CT slices: spread on new data.

Sub-volume A (or C): N members trained on ONE slice with perturbed labels (SegmentPy's
protocol, Su et al. 2022), validated on a second slice; the members then segment the
sub-volume's other slices stacked as a volume of independent slices (``--predict``) and are
scored on their expert labels (``--test``). Prints one JSON object: per phase the volume
fraction, surface area and interface % per pair of the predicted stack, mean ± std [95 % CI]
over members; IoU ± std on the test slices; the interface-position FWHM per pair; the
learning curves' last epoch per member; wall seconds of training and of prediction, with
the reference of one single-model prediction pass of the same stack timed in the same run.

Run: ``nice .venv/bin/python benchmarks/segmentpy_ensemble.py --subvolume A --n 3``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _segmentpy import CLASS_NAMES, load_subvolume  # noqa: E402

SPLITS = {"A": (200, 300), "C": (546, 622)}
"""Training and validation slice of each sub-volume (as in benchmarks/cnn.py)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subvolume", default="A", choices=sorted(SPLITS))
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per member")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.ensemble import train_ensemble
    from electrode_ct.segment.cnn.ensemble_spread import (
        labelled_spread,
        member_predictions,
        volume_spread,
    )

    torch.set_num_threads(args.threads)
    sv = load_subvolume(args.subvolume)
    train_s, val_s = SPLITS[args.subvolume]
    tests = [s for s in sv.slices if s not in (train_s, val_s)]
    cfg = TrainConfig(channels=args.channels, epochs=args.epochs, members=1,
                      time_limit_s=args.time_limit, threads=args.threads)
    t0 = time.perf_counter()
    res = train_ensemble(sv.images[train_s], sv.labels[train_s], n=args.n, config=cfg,
                         val=(sv.images[val_s], sv.labels[val_s]), slices_2d=True,
                         class_names=list(CLASS_NAMES))
    t_train = time.perf_counter() - t0
    stack = np.stack([sv.images[s] for s in tests])
    t0 = time.perf_counter()
    res.models[0].predict(stack, two_d=True)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = member_predictions(res.models, stack, {"two_d": True})
    t_all = time.perf_counter() - t0
    cmap = dict(zip(CLASS_NAMES, (1, 2, 3), strict=True))
    from electrode_ct.segment.cnn.ensemble import _vote

    vote, _ = _vote(preds, [1, 2, 3])
    vol = volume_spread(preds, cmap, reference=vote, two_d=True)
    labelled = labelled_spread([[p[i:i + 1] for i in range(len(tests))] for p in preds],
                               [sv.labels[s][None] for s in tests], cmap)
    keep = ("volume_fraction", "surface_area_um2", "interface_voxel_percent")
    out = {"subvolume": args.subvolume, "train_slice": train_s, "val_slice": val_s,
           "test_slices": tests, "n": args.n, "config": {"channels": args.channels,
                                                        "epochs": args.epochs,
                                                        "time_limit_s": args.time_limit},
           "predicted": {k + s: vol[k + s] for k in keep for s in ("", "_std", "_ci95")},
           "fwhm_vs_vote_px": {k: h["fwhm_um"] for k, h in vol["interface_position"].items()},
           "test_iou": labelled["iou"], "test_iou_std": labelled["iou_std"],
           "test_mean_iou": labelled["mean_iou"], "test_mean_iou_std": labelled["mean_iou_std"],
           "test_mean_iou_ci95": labelled["mean_iou_ci95"],
           "fwhm_vs_expert_px": {k: h["fwhm_um"]
                                 for k, h in labelled["interface_position"].items()},
           "last_epoch": [m.training["history"][-1] for m in res.models],
           "train_wall_s": t_train, "predict_all_members_s": t_all,
           "reference_one_model_predict_s": t_one}
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
