"""Ensemble distillation: one fast student network trained on its teachers' probabilities.

A seed ensemble (``members`` networks, probabilities averaged) generalises better from one
labelled slice than any of its members, but costs ``members`` forward passes per pixel. The
student is one network of the same architecture trained to reproduce the ensemble's
averaged probabilities (soft targets, Hinton et al. 2015 "Distilling the knowledge in a
neural network"; Buciluǎ et al. 2006 "Model compression") on

* the labelled training planes, and optionally
* unlabelled planes the user passes (e.g. other slices of the volume being segmented:
  transductive — the teachers' probabilities there carry what the ensemble learned, no
  labels are used).

Only the student is shipped, so prediction costs one network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.segment.cnn._torch import require_torch
from electrode_ct.segment.cnn.normalise import normalise
from electrode_ct.segment.cnn.predict import evenly_spaced, predict_plane

torch = require_torch()
F = torch.nn.functional

TEACHER_TRANSFORMS = 8
"""Rotations/flips averaged when the teachers label the planes (a one-off cost)."""

MAX_PLANES = 16
"""Labelled planes, and separately unlabelled planes, that the teachers label at most (evenly
spaced): bounds the one-off teacher cost (planes × members × transforms forward passes)."""


def unlabelled_planes(images: Sequence[np.ndarray], *, normalisation: str,
                      stats: tuple[float, float], all_axes: bool,
                      max_planes: int = MAX_PLANES) -> list[np.ndarray]:
    """Normalised 2-D planes of unlabelled images or volumes.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        Grey 2-D images (y, x) or volumes (z, y, x).
    normalisation : str
        The training normalisation mode (:func:`~.normalise.normalise`).
    stats : (float, float)
        Training centre and scale (used by ``fixed`` normalisation).
    all_axes : bool
        Take planes along z, y and x of a volume (else z only).
    max_planes : int
        Planes per axis of a volume, evenly spaced.

    Returns
    -------
    list of numpy.ndarray
        Normalised float32 planes.
    """
    out: list[np.ndarray] = []
    for image in images:
        norm = normalise(np.asarray(image), mode=normalisation, stats=stats)
        if norm.ndim == 2:
            out.append(norm)
            continue
        axes = (0, 1, 2) if all_axes and min(norm.shape) > 1 else (0,)
        for ax in axes:
            stack = np.moveaxis(norm, ax, 0)
            out += [np.ascontiguousarray(stack[i])
                    for i in evenly_spaced(stack.shape[0], max_planes)]
    return out


def teacher_targets(nets: Sequence[Any], planes: Sequence[np.ndarray], *, device: Any,
                    transforms: int = TEACHER_TRANSFORMS) -> list[np.ndarray]:
    """The ensemble's averaged class probabilities (K, y, x) float32 on each plane."""
    for net in nets:
        net.to(device, memory_format=torch.channels_last).eval()
    return [predict_plane(list(nets), img, device=device, tile=512, overlap=32,
                          transforms=transforms) for img in planes]


def soft_loss(logits: Any, target: Any, weight: Any, dice_weight: float) -> Any:
    """Class-weighted soft cross-entropy plus soft Dice against probability targets.

    Parameters
    ----------
    logits : torch.Tensor
        (N, K, H, W) student logits.
    target : torch.Tensor
        (N, K, H, W) teacher probabilities (each pixel sums to 1).
    weight : torch.Tensor
        (K,) class weights of the cross-entropy (a pixel is weighted by its expected weight
        under the target).
    dice_weight : float
        Weight of the Dice term.
    """
    logp = F.log_softmax(logits, dim=1)
    pix_w = (target * weight[None, :, None, None]).sum(dim=1)
    ce = (-(target * logp).sum(dim=1) * pix_w).sum() / pix_w.sum().clamp_min(1e-12)
    if dice_weight <= 0:
        return ce
    return ce + dice_weight * (1 - class_dice(logp.exp(), target).mean())


def class_dice(prob: Any, target: Any) -> Any:
    """Soft Dice per class, ``(2 Σ p t + 1) / (Σ p + Σ t + 1)`` over batch and pixels.

    Parameters
    ----------
    prob : torch.Tensor
        (N, K, H, W) predicted probabilities (zero where a pixel does not count).
    target : torch.Tensor
        (N, K, H, W) one-hot or soft targets (zero where a pixel does not count).

    Returns
    -------
    torch.Tensor
        (K,) Dice coefficients (1 for a class absent from both).
    """
    inter = (prob * target).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (2 * inter + 1) / (denom + 1)
