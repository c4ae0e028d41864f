"""Screen: which weights to keep per network — raw or averaged, best-validation or final.

Paired comparison on the SegmentPy one-slice protocol (split and scoring of
``benchmarks/cnn.py``): each member of the default training (U-Net 16ch, 20 epochs of 32
steps, cosine by epoch, no time limit, no early stopping) is trained ONCE while exponential
moving averages of its weights (``--decays``) are kept beside the raw weights. After every
epoch the raw and averaged weights are stored and scored on the validation slice; afterwards
each selection rule picks one snapshot per member and the picks are averaged (the
ensemble) and scored on the test slices. All rules share the same trajectories, so
run-to-run noise cancels between them. Rules: ``<variant>_valiou_es`` (best validation IoU
with patience 8: the previous default for ``raw``), ``_valiou``, ``_valnll`` (lowest
validation cross-entropy), ``_last`` (final weights), ``swa_last5/10`` (mean of the final
5/10 epochs' raw weights).

Prints one JSON object per sub-volume. Run (~15 min per sub-volume on one thread; both in
parallel)::

    flock /tmp/ect-heavy.lock bash -c '.venv/bin/python benchmarks/cnn_averaging.py A & \\
        .venv/bin/python benchmarks/cnn_averaging.py C; wait'
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _segmentpy import CLASS_NAMES, load_subvolume  # noqa: E402
from cnn import SPLITS  # noqa: E402

CLASS_MAP = {n: i + 1 for i, n in enumerate(CLASS_NAMES)}


def val_metrics(net, planes, k: int) -> tuple[float, float]:
    """Validation mean IoU and mean cross-entropy (nats) of one network."""
    from electrode_ct.segment.cnn.data import IGNORE
    from electrode_ct.segment.cnn.predict import predict_plane

    net.eval()
    conf = np.zeros((k, k), np.int64)
    nll, n = 0.0, 0
    for img, lab in planes:
        p = predict_plane(net, img, tile=512, overlap=32)
        keep = lab != IGNORE
        conf += np.bincount(lab[keep] * k + p.argmax(0)[keep],
                            minlength=k * k).reshape(k, k)
        pl = np.take_along_axis(p, np.clip(lab, 0, None)[None], 0)[0][keep]
        nll += float(-np.log(np.clip(pl, 1e-6, 1)).sum())
        n += int(keep.sum())
    tp = np.diag(conf).astype(float)
    return float(np.nanmean(tp / (conf.sum(0) + conf.sum(1) - tp))), nll / max(n, 1)


def train_member(cfg, planes, vplanes, weight, arch, k, decays, log):
    """One member's trajectory: per variant, the state and (val IoU, val NLL) per epoch."""
    from electrode_ct.segment.cnn.averaging import WeightAverage
    from electrode_ct.segment.cnn.data import PatchSampler, augment, torch
    from electrode_ct.segment.cnn.fit import learning_rate
    from electrode_ct.segment.cnn.loss import loss_fn
    from electrode_ct.segment.cnn.model import net_from_arch

    torch.manual_seed(cfg.seed)
    net = net_from_arch(arch, k)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = PatchSampler(planes, k, patch=cfg.patch, balance=cfg.balance, rng=rng)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    avgs = {f"ema{d}": WeightAverage(net, d) for d in decays}
    states = {v: [] for v in ["raw", *avgs]}
    scores = {v: [] for v in states}
    steps = cfg.patches_per_epoch // cfg.batch_size
    for epoch in range(cfg.epochs):
        for group in opt.param_groups:
            group["lr"] = learning_rate(epoch, cfg)
        net.train()
        for _ in range(steps):
            xb, yb = sampler.sample(cfg.batch_size)
            x, y = augment(torch.from_numpy(xb), torch.from_numpy(yb), cfg, gen)
            loss = loss_fn(net(x), y, weight, cfg.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for avg in avgs.values():
                avg.update(net)
        for v, mod in [("raw", net), *((v, a.net) for v, a in avgs.items())]:
            states[v].append(copy.deepcopy(mod.state_dict()))
            scores[v].append(val_metrics(mod, vplanes, k))
        log(epoch + 1, {v: round(s[-1][0], 3) for v, s in scores.items()})
    return states, scores


def early_stop_pick(values: list[float], patience: int = 8) -> int:
    """Index of the best value seen before ``patience`` epochs without gain."""
    best, pick, stale = -np.inf, 0, 0
    for i, s in enumerate(values):
        if s > best:
            best, pick, stale = s, i, 0
        else:
            stale += 1
        if stale >= patience:
            break
    return pick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("subvolume", choices=sorted(SPLITS))
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--decays", default="0.99,0.995,0.998")
    ap.add_argument("--quick", action="store_true", help="2 epochs of 16 patches, 1 member")
    args = ap.parse_args()

    from electrode_ct.metrics.compare import compare
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.data import torch, training_planes
    from electrode_ct.segment.cnn.loss import class_weights
    from electrode_ct.segment.cnn.model import net_from_arch
    from electrode_ct.segment.cnn.normalise import normalise
    from electrode_ct.segment.cnn.predict import predict_plane

    torch.set_num_threads(1)
    sv = load_subvolume(args.subvolume)
    tr, va = SPLITS[sv.name]["train"], SPLITS[sv.name]["val"]
    tests = [s for s in sv.slices if s not in (tr, va)]
    cfg = TrainConfig(threads=1)
    members = args.members
    if args.quick:
        cfg, members = replace(cfg, epochs=2, patches_per_epoch=16), 1
    decays = [float(d) for d in args.decays.split(",") if d]
    planes, values, stats = training_planes(sv.images[tr], sv.labels[tr])
    vplanes, _, _ = training_planes(sv.images[va], sv.labels[va], all_axes=False)
    k = values.size
    weight = torch.from_numpy(class_weights(planes, k, cfg.class_weighting))
    arch = cfg.arch_record()
    timgs = {s: normalise(sv.images[s], mode="image", stats=stats) for s in tests}  # as trained
    t0 = time.perf_counter()
    runs = []
    for m in range(members):
        def log(epoch, scores, m=m):
            print(sv.name, "member", m, "epoch", epoch, scores, file=sys.stderr, flush=True)
        runs.append(train_member(replace(cfg, seed=cfg.seed + m), planes, vplanes, weight,
                                 arch, k, decays, log))
    train_s = time.perf_counter() - t0

    cache: dict = {}

    def probs(key, state):
        if key not in cache:
            net = net_from_arch(arch, k)
            net.load_state_dict(state)
            net.eval()
            cache[key] = {s: predict_plane(net, timgs[s], tile=512, overlap=32) for s in tests}
        return cache[key]

    def score(members_probs) -> float:
        preds = [np.mean([p[s] for p in members_probs], 0).argmax(0) + 1 for s in tests]
        res = compare(np.concatenate([p.ravel() for p in preds]),
                      np.concatenate([sv.labels[s].ravel() for s in tests]),
                      class_map=CLASS_MAP)
        return round(float(res["mean_iou"]), 4)

    rules = {}
    for v in runs[0][0]:
        rules[f"{v}_valiou_es"] = (v, lambda sc: early_stop_pick([s[0] for s in sc]))
        rules[f"{v}_valiou"] = (v, lambda sc: int(np.argmax([s[0] for s in sc])))
        rules[f"{v}_valnll"] = (v, lambda sc: int(np.argmin([s[1] for s in sc])))
        rules[f"{v}_last"] = (v, lambda sc: len(sc) - 1)
    out = {"subvolume": sv.name, "train_slice": tr, "val_slice": va, "test_slices": tests,
           "members": members, "decays": decays, "train_wall_s": train_s, "rules": {}}
    for name, (v, pick) in rules.items():
        picks = [pick(sc[v]) for _, sc in runs]
        got = [probs((m, v, e), st[v][e]) for m, ((st, _), e) in enumerate(zip(runs, picks,
                                                                                strict=True))]
        out["rules"][name] = {"ensemble": score(got), "members": [score([g]) for g in got],
                              "epochs": [e + 1 for e in picks]}
    for n in (5, 10):
        got = []
        for m, (st, _) in enumerate(runs):
            last = st["raw"][-n:]
            mean = {key: (sum(s[key] for s in last) / len(last)
                          if last[0][key].dtype.is_floating_point else last[-1][key])
                    for key in last[0]}
            got.append(probs((m, f"swa{n}"), mean))
        out["rules"][f"swa_last{n}"] = {"ensemble": score(got),
                                        "members": [score([g]) for g in got]}
    out["val_mean_iou_per_epoch"] = {v: [[round(s[0], 4) for s in sc[v]] for _, sc in runs]
                                     for v in runs[0][1]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
