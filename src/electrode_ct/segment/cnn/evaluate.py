"""Scoring trained networks on labelled planes: validation mean IoU, the ``auto``
normalisation choice and the majority-class (collapse) check."""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.segment.cnn.data import IGNORE, Planes
from electrode_ct.segment.cnn.predict import as_members, predict_plane


class CollapseWarning(UserWarning):
    """Predictions collapsed onto the dominant class (the majority-class pitfall)."""


def evaluate(net: Any, planes: Planes, n_classes: int,
             device: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean IoU over labelled pixels, and predicted / reference class fractions.

    Parameters
    ----------
    net : torch.nn.Module or list of torch.nn.Module
        One network or the members of a model (probabilities averaged).
    planes : list of (image, index) pairs
        Normalised images and class indices (:data:`~.data.IGNORE` = not scored).
    n_classes : int
        Number of classes K.
    device : torch.device or str
        Compute device.

    Returns
    -------
    (float, numpy.ndarray, numpy.ndarray)
        Mean IoU over the classes (NaN classes skipped), then the K predicted and the K
        reference fractions of the labelled pixels.
    """
    conf, _ = _confusion_loss(net, planes, n_classes, device)
    total = max(conf.sum(), 1)
    return _mean_iou(conf), conf.sum(0) / total, conf.sum(1) / total


def _confusion_loss(net: Any, planes: Planes, n_classes: int, device: Any,
                    weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Confusion matrix (rows = reference) over the labelled pixels of ``planes`` and,
    with class ``weight``, the weighted mean cross-entropy of the predicted probabilities
    (NaN without)."""
    for member in as_members(net):
        member.eval()
    conf = np.zeros((n_classes, n_classes), np.int64)
    nll = wsum = 0.0
    for img, lab in planes:
        prob = predict_plane(net, img, device=device, tile=512, overlap=32)
        keep = lab != IGNORE
        truth = lab[keep].astype(np.int64)
        conf += np.bincount(truth * n_classes + prob.argmax(axis=0)[keep],
                            minlength=n_classes ** 2).reshape(n_classes, n_classes)
        if weight is not None:
            p_true = prob[:, keep][truth, np.arange(truth.size)]
            w = weight[truth]
            nll -= float((w * np.log(np.clip(p_true, 1e-7, 1.0))).sum())
            wsum += float(w.sum())
    return conf, nll / wsum if wsum > 0 else float("nan")


def curve_point(net: Any, planes: Planes, n_classes: int, device: Any,
                weight: np.ndarray) -> tuple[float, float]:
    """One learning-curve point: mean IoU and class-weighted cross-entropy (the training
    loss without Dice and without augmentation) over the labelled pixels of ``planes``.

    Parameters
    ----------
    net : torch.nn.Module or list of torch.nn.Module
        The network(s) scored.
    planes : list of (image, index) pairs
        Normalised images and class indices.
    n_classes : int
        Number of classes K.
    device : torch.device or str
        Compute device.
    weight : numpy.ndarray
        (K,) class weights of the training loss.

    Returns
    -------
    (float, float)
        Mean IoU (NaN classes skipped; NaN without labelled pixels) and the loss (nats).
    """
    conf, loss = _confusion_loss(net, planes, n_classes, device, weight)
    return _mean_iou(conf), loss


def _mean_iou(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (conf.sum(0) + conf.sum(1) - tp)
    if np.isnan(iou).all():
        return float("nan")
    return float(np.nanmean(iou))


def choose_normalisation(nets: Any, image_planes: Planes, fixed_planes: Planes, k: int,
                         device: Any) -> tuple[str, dict[str, float], Planes,
                                               tuple[float, np.ndarray, np.ndarray]]:
    """``normalisation="auto"``: ``image`` or ``fixed``, whichever validates better.

    Parameters
    ----------
    nets : list of torch.nn.Module
        The trained members.
    image_planes, fixed_planes : list of (image, index) pairs
        The validation planes normalised by their own statistics and by the training
        slice's (:func:`~.data.validation_planes`); the first 4 are scored.
    k : int
        Number of classes.
    device : torch.device or str
        Compute device.

    Returns
    -------
    (str, dict, list, tuple)
        The chosen mode, both validation mean IoUs by mode, the validation planes in the
        chosen normalisation and their :func:`evaluate` result (not computed again). A tie
        keeps ``image``.
    """
    runs = {mode: (planes, evaluate(nets, planes[:4], k, device))
            for mode, planes in (("image", image_planes), ("fixed", fixed_planes))}
    scores = {mode: run[1][0] for mode, run in runs.items()}
    mode = "fixed" if scores["fixed"] > scores["image"] else "image"
    return mode, scores, *runs[mode]


def collapse_check(pred_frac: np.ndarray, ref_frac: np.ndarray) -> str | None:
    """A message when predictions collapsed onto the dominant class, else None.

    Collapse: a class with >= 2 % of the reference pixels receives < 10 % of its share,
    while the dominant predicted class is over-predicted.

    Parameters
    ----------
    pred_frac, ref_frac : numpy.ndarray
        Predicted and reference class fractions (0–1) of the labelled pixels.

    Examples
    --------
    >>> import numpy as np
    >>> collapse_check(np.array([0.18, 0.12, 0.7]), np.array([0.2, 0.1, 0.7])) is None
    True
    """
    missing = (ref_frac >= 0.02) & (pred_frac < 0.1 * ref_frac)
    top = int(np.argmax(pred_frac))
    if missing.any() and pred_frac[top] > ref_frac[top]:
        return (f"predictions collapsed onto class index {top} ({pred_frac[top]:.0%} predicted "
                f"vs {ref_frac[top]:.0%} labelled); classes {np.flatnonzero(missing).tolist()} "
                "are almost never predicted: check the labels, use class balancing, more "
                "epochs or a lower learning rate")
    return None
