"""Training one network: the learning-rate schedule and the epoch loop.

Adam with a cosine (default) or SegmentPy step-decay schedule; each epoch draws
``patches_per_epoch`` augmented patches, updates the weight average (EMA) after every step,
scores the averaged weights on the validation planes and keeps the final or the
best-validation weights (``TrainConfig.keep``). Seeded.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from electrode_ct.segment.cnn._torch import require_torch
from electrode_ct.segment.cnn.averaging import WeightAverage, capped_decay
from electrode_ct.segment.cnn.config import TrainConfig
from electrode_ct.segment.cnn.data import IGNORE, PatchSampler, Planes, augment
from electrode_ct.segment.cnn.evaluate import curve_point
from electrode_ct.segment.cnn.loss import loss_fn

torch = require_torch()

EpochCallback = Callable[[dict[str, float]], None]
"""Called with each epoch's history record."""


def learning_rate(epoch: int, cfg: TrainConfig, *, elapsed_s: float | None = None) -> float:
    """Learning rate of a 0-based epoch under the configured schedule.

    With a ``time_limit_s``, the cosine schedule follows whichever is further along: the
    epochs or the elapsed training time (``elapsed_s``, seconds), so a time-limited run
    still anneals before it is cut.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return max(cfg.lr * cfg.step_gamma ** (epoch // cfg.step_epochs), cfg.lr_floor)
    t = epoch / max(1, cfg.epochs - 1)
    if cfg.time_limit_s and elapsed_s is not None:
        t = min(1.0, max(t, elapsed_s / cfg.time_limit_s))
    return cfg.lr_floor + 0.5 * (cfg.lr - cfg.lr_floor) * (1 + np.cos(np.pi * t))


def _epoch(net: Any, sampler: PatchSampler, opt: Any, average: WeightAverage | None,
           cfg: TrainConfig, *, steps: int, gen: Any, weight: Any, device: Any) -> float:
    """One epoch of ``steps`` optimiser steps; the mean loss."""
    net.train()
    total = 0.0
    for _ in range(steps):
        xb, yb = sampler.sample(cfg.batch_size)
        x, y = torch.from_numpy(xb), torch.from_numpy(yb)
        if cfg.augment:
            x, y = augment(x, y, cfg, gen)
        x, y = x.to(device), y.to(device)
        loss = loss_fn(net(x), y, weight, cfg.dice_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update(net)
        total += float(loss.detach())
    return total / steps


CURVE_WINDOW = 512
"""Edge (pixels) of the window of each training plane scored for the learning curves."""

CURVE_BUDGET = 2 ** 19
"""Training pixels scored per epoch for the learning curves (about two 512² windows)."""


def curve_planes(planes: Planes) -> Planes:
    """The training planes scored for the learning curves: the first ones, each cut to a
    :data:`CURVE_WINDOW` window centred on its labelled pixels, until
    :data:`CURVE_BUDGET` pixels (so the curves cost the same on large images)."""
    out, total = [], 0
    for img, lab in planes:
        ys, xs = np.nonzero(lab != IGNORE)
        if ys.size == 0:
            continue
        cut = []
        for centre, n in ((int(np.median(ys)), lab.shape[0]), (int(np.median(xs)), lab.shape[1])):
            lo = min(max(0, centre - CURVE_WINDOW // 2), max(0, n - CURVE_WINDOW))
            cut.append(slice(lo, lo + CURVE_WINDOW))
        out.append((img[tuple(cut)], lab[tuple(cut)]))
        total += out[-1][1].size
        if total >= CURVE_BUDGET:
            break
    return out


def learning_curves(net: Any, planes: Planes, val_planes: Planes, k: int, device: Any,
                    weight: Any) -> dict[str, float]:
    """One epoch's learning-curve record: ``train_loss``, ``train_mean_iou``
    (:func:`curve_planes` of the training planes, not augmented), ``val_loss``,
    ``val_mean_iou`` (all validation planes; NaN without); losses are the class-weighted
    cross-entropy (nats)."""
    w = weight.detach().cpu().numpy()
    train_iou, train_loss = curve_point(net, planes, k, device, w)
    val_iou, val_loss = (curve_point(net, val_planes, k, device, w) if val_planes
                         else (float("nan"), float("nan")))
    return {"train_loss": train_loss, "train_mean_iou": train_iou, "val_loss": val_loss,
            "val_mean_iou": val_iou}


def fit(net: Any, planes: Planes, val_planes: Planes, cfg: TrainConfig, *, weight: Any,
        device: Any, callback: EpochCallback | None, member: int) -> dict[str, Any]:
    """Train one network in place; keep its final (``keep="last"``) or best-validation weights.

    Parameters
    ----------
    net : torch.nn.Module
        The network (trained in place, left in eval mode).
    planes, val_planes : list of (image, index) pairs
        Training and validation planes (:mod:`~.data`); no validation planes: the epoch's
        score is minus its training loss.
    cfg : TrainConfig
        Hyper-parameters (``seed`` is this network's seed).
    weight : torch.Tensor
        (K,) cross-entropy class weights on ``device``.
    device : torch.device
        Compute device.
    callback : callable, optional
        Called with each epoch's history record.
    member : int
        Index of the network in the model (recorded in the history).

    Returns
    -------
    dict
        ``history`` (per epoch: ``member``, ``epoch``, ``lr``, ``loss`` (the mean loss of
        the epoch's augmented batches), ``train_loss``, ``train_mean_iou``, ``val_loss``,
        ``val_mean_iou`` (:func:`learning_curves`), ``seconds``), ``best_epoch`` (the epoch
        whose weights were kept, 1-based), ``best`` (its score), ``stopped`` (the time limit
        ended training).
    """
    t0 = time.perf_counter()
    k = int(weight.shape[0])
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = PatchSampler(planes, k, patch=cfg.patch, balance=cfg.balance,
                           rng=np.random.default_rng(cfg.seed))
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, cfg.patches_per_epoch // cfg.batch_size)
    average = (WeightAverage(net, capped_decay(cfg.ema, cfg.epochs * steps)) if cfg.ema > 0
               else None)
    judged = net if average is None else average.net  # the weights validated and kept
    history: list[dict[str, float]] = []
    scored = curve_planes(planes)
    best, best_state, best_epoch, stopped = -np.inf, None, 0, False
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        lr = learning_rate(epoch, cfg, elapsed_s=te - t0)
        for group in opt.param_groups:
            group["lr"] = lr
        if average is not None and cfg.time_limit_s and epoch:
            # epochs the time limit will allow at this pace: the span stays a third of those
            planned = min(cfg.epochs, epoch * cfg.time_limit_s / max(te - t0, 1e-9))
            average.decay = capped_decay(cfg.ema, int(planned * steps))
        loss = _epoch(net, sampler, opt, average, cfg, steps=steps, gen=gen, weight=weight,
                      device=device)
        curves = learning_curves(judged, scored, val_planes, k, device, weight)
        score = curves["val_mean_iou"] if val_planes else -loss
        rec = {"member": member, "epoch": epoch + 1, "lr": lr, "loss": loss, **curves,
               "seconds": time.perf_counter() - te}
        history.append(rec)
        if callback is not None:
            callback(rec)
        if cfg.keep == "last" or score > best:
            best, best_epoch = score, epoch + 1
            if cfg.keep == "best":
                best_state = copy.deepcopy(judged.state_dict())
        if cfg.time_limit_s is not None and time.perf_counter() - t0 > cfg.time_limit_s:
            stopped = True
            break
    if cfg.keep == "last" and average is not None:
        best_state = average.net.state_dict()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"history": history, "best": best, "best_epoch": best_epoch, "stopped": stopped}
