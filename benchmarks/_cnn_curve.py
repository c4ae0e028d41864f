"""Labelled-slices curve of ``benchmarks/cnn.py --curve`` (issue #23).

The CNN's counterpart of ``benchmarks/forest.py --sections curve``: on each SegmentPy
sub-volume the dense expert labels of k slices (k = 1, 2, 3, 5; chosen as
``ect scribbles --slices k`` chooses them: the central slice and equally spaced others,
:func:`electrode_ct.segment.scribbles.scribble_slices`) train one model (no validation
slice, so ``auto`` normalisation is ``image``), which then predicts every slice of the
sub-volume. Reported per k: the mean over slices of each slice's mean IoU (``all_slices``,
what the user gets) and the same over the slices without labels (``unlabelled_slices``,
None when every slice is labelled), as the forest's curve reports them.

The training budget (epochs, members, patches per epoch) is the caller's
:class:`TrainConfig`; it is recorded in the output with each training's CPU time, because
the curve is usually run below the shipped budget on a shared machine.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from _segmentpy import CLASS_NAMES, PHASE_MAP, SubVolume, phases

COUNTS: tuple[int, ...] = (1, 2, 3, 5)
"""Numbers of labelled slices of the curve."""


def slice_miou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean IoU of one predicted slice against its expert labels (training values 1..3)."""
    from electrode_ct.metrics.compare import compare

    return float(compare(phases(pred), phases(ref), class_map=PHASE_MAP)["mean_iou"])


def curve_point(sv: SubVolume, k: int, cfg: Any) -> dict[str, Any]:
    """Train on the dense labels of k slices of ``sv``; score every slice."""
    from electrode_ct.segment.cnn.train import train
    from electrode_ct.segment.scribbles import scribble_slices

    labelled = [sv.slices[int(i)] for i in scribble_slices(len(sv.slices), k)]
    res = train([sv.images[s] for s in labelled], [sv.labels[s] for s in labelled],
                config=cfg, class_names=list(CLASS_NAMES))
    iou = {s: slice_miou(res.model.predict(sv.images[s]).labels[0], sv.labels[s])
           for s in sv.slices}
    free = [s for s in sv.slices if s not in labelled]
    return {"labelled": labelled, "all_slices": float(np.mean(list(iou.values()))),
            "unlabelled_slices": float(np.mean([iou[s] for s in free])) if free else None,
            "per_slice": {str(s): v for s, v in iou.items()},
            "train_cpu_s": res.cpu_s, "train_wall_s": res.wall_s,
            "epochs_run": len(res.history)}


def labelled_curve(names: list[str], cfg: Any, *, load, log,
                   counts: tuple[int, ...] = COUNTS) -> dict[str, Any]:
    """The curve on every sub-volume of ``names`` (see the module docstring).

    Parameters
    ----------
    names : list of str
        Sub-volumes (``A``, ``C``).
    cfg : TrainConfig
        Training budget and hyper-parameters of every point.
    load : callable
        Sub-volume name -> :class:`SubVolume`.
    log : callable
        Called with one progress line per point.
    counts : tuple of int
        Numbers of labelled slices.
    """
    out: dict[str, Any] = {"protocol": "labelled_slices_curve", "config": asdict(cfg),
                           "budget": {"epochs": cfg.epochs, "members": cfg.members,
                                      "patches_per_epoch": cfg.patches_per_epoch}}
    for name in names:
        sv = load(name)
        out[name] = {}
        for k in counts:
            out[name][str(k)] = p = curve_point(sv, k, cfg)
            log(f"{name} k={k}: all {p['all_slices']:.3f} unlabelled "
                f"{p['unlabelled_slices']} ({p['train_cpu_s']:.0f} CPU-s)")
    return out
