"""The CNN training loss: class-weighted cross-entropy plus soft Dice over labelled pixels."""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.segment.cnn._torch import require_torch
from electrode_ct.segment.cnn.data import IGNORE, Planes

torch = require_torch()
F = torch.nn.functional


def class_dice(prob: Any, target: Any) -> Any:
    """Soft Dice per class, ``(2 Σ p t + 1) / (Σ p + Σ t + 1)`` over batch and pixels.

    Parameters
    ----------
    prob : torch.Tensor
        (N, K, H, W) predicted probabilities (zero where a pixel does not count).
    target : torch.Tensor
        (N, K, H, W) one-hot targets (zero where a pixel does not count).

    Returns
    -------
    torch.Tensor
        (K,) Dice coefficients (1 for a class absent from both).
    """
    inter = (prob * target).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (2 * inter + 1) / (denom + 1)


def loss_fn(logits: Any, target: Any, weight: Any, dice_weight: float) -> Any:
    """Weighted cross-entropy plus soft Dice over labelled pixels.

    Parameters
    ----------
    logits : torch.Tensor
        (N, K, H, W) network outputs.
    target : torch.Tensor
        (N, H, W) int64 class indices, :data:`~.data.IGNORE` where unlabelled.
    weight : torch.Tensor or None
        (K,) cross-entropy class weights (:func:`class_weights`).
    dice_weight : float
        Weight of the Dice term (1 − mean Dice over the classes present in the batch).
    """
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    if dice_weight <= 0:
        return ce
    valid = (target != IGNORE)
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(target.clamp_min(0), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot * valid[:, None]
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = class_dice(prob, onehot)
    dice_loss = 1 - dice[present].mean() if present.any() else ce * 0
    return ce + dice_weight * dice_loss


def class_weights(planes: Planes, n_classes: int, mode: str) -> np.ndarray:
    """Cross-entropy weights ∝ frequency^-1/2 (mean 1) of labelled pixels, or ones.

    Parameters
    ----------
    planes : list of (image, index) pairs
        Training planes (:func:`~.data.training_planes`).
    n_classes : int
        Number of classes K.
    mode : {"balanced", "none"}
        ``none``: all weights 1.
    """
    if mode == "none":
        return np.ones(n_classes, np.float32)
    counts = np.zeros(n_classes)
    for _, lab in planes:
        counts += np.bincount(lab[lab != IGNORE], minlength=n_classes)[:n_classes]
    w = 1.0 / np.sqrt(np.maximum(counts, 1))
    return (w / w.mean()).astype(np.float32)
