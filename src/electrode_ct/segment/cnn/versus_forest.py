"""Does the CNN beat a forest on the user's own validation data? (``--compare-forest``).

A random forest (:func:`electrode_ct.segment.forest_train.train_forest`, its defaults) is
trained on the same labels as the CNN; both models segment the validation image and are
scored on its labelled pixels (mean IoU over the classes, :func:`metrics.compare`). The
result is stored in the CNN model (``training["forest_comparison"]``), printed by
``ect segment train-cnn`` and shown in the pipeline report; a CNN that does not score above
the forest is flagged, because then the forest is the better (and cheaper) model for this
scan.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import ConfigError, InputError


def check_validation_classes(train_labels: np.ndarray, val_labels: np.ndarray, *,
                             name: str = "validation labels") -> None:
    """Raise :class:`InputError` unless both label arrays hold the same classes.

    Parameters
    ----------
    train_labels, val_labels : numpy.ndarray
        Integer labels, 0 = unlabelled.
    name : str
        What the validation labels are called in the message (e.g. a file name).
    """
    tr = sorted(int(v) for v in np.unique(train_labels) if v != 0)
    va = sorted(int(v) for v in np.unique(val_labels) if v != 0)
    if tr != va:
        raise InputError(f"{name}: classes {va} differ from the training labels' classes {tr}; "
                         "the validation slice must label the same classes")


def _val_mean_iou(model: Any, image: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Mean IoU and per-class IoU of ``model`` on the labelled pixels of ``labels``."""
    from electrode_ct.metrics.compare import compare

    pred = np.asarray(model.predict(image).labels).reshape(labels.shape)
    keep = labels != 0
    res = compare(pred[keep], labels[keep])
    return {"mean_iou": res["mean_iou"], "iou": res["iou"]}


def compare_with_forest(cnn: Any, image: np.ndarray, labels: np.ndarray,
                        val: tuple[np.ndarray, np.ndarray], *,
                        class_names: Sequence[str] | None = None, seed: int = 0,
                        two_d: bool = False, n_jobs: int = 2) -> dict[str, Any]:
    """Train a forest on ``labels`` and score it and ``cnn`` on the validation pair.

    Parameters
    ----------
    cnn : CNNModel
        The trained CNN (any model with ``predict(image).labels``).
    image, labels : numpy.ndarray
        The CNN's training image and labels (0 = unlabelled, 1..K), 2-D or 3-D.
    val : (numpy.ndarray, numpy.ndarray)
        Validation image and labels (the same classes as ``labels``).
    class_names : sequence of str, optional
        Names of classes 1..K.
    seed : int
        Forest seed.
    two_d : bool
        2-D forest features on every z slice (as the CNN's ``--2d``); also used when the
        validation image is 2-D, so a forest trained on a volume can segment it.
    n_jobs : int
        Forest threads.

    Returns
    -------
    dict
        ``cnn_val_mean_iou``, ``forest_val_mean_iou``, ``margin`` (CNN − forest),
        ``cnn_beats_forest`` (bool), ``cnn_val_iou`` / ``forest_val_iou`` (per class value),
        ``forest_train_s`` (seconds), ``warning`` (text when the CNN does not beat the
        forest, else None).
    """
    from electrode_ct.segment.forest_train import train_forest

    vimg, vlab = (np.asarray(a) for a in val)
    check_validation_classes(labels, vlab)
    t0 = time.perf_counter()
    mode = "2d" if two_d or vimg.ndim == 2 else None
    forest = train_forest(np.asarray(image), np.asarray(labels), class_names=class_names,
                          mode=mode, seed=seed, n_jobs=n_jobs)
    took = time.perf_counter() - t0
    c, f = _val_mean_iou(cnn, vimg, vlab), _val_mean_iou(forest, vimg, vlab)
    margin = c["mean_iou"] - f["mean_iou"]
    beats = bool(margin > 0)
    warning = None if beats else (
        f"the CNN does not beat a forest trained on the same labels on your validation data "
        f"(mean IoU {c['mean_iou']:.3f} vs {f['mean_iou']:.3f}): prefer the forest "
        "(ect segment train) for this scan")
    return {"cnn_val_mean_iou": c["mean_iou"], "forest_val_mean_iou": f["mean_iou"],
            "margin": margin, "cnn_beats_forest": beats, "cnn_val_iou": c["iou"],
            "forest_val_iou": f["iou"], "forest_train_s": took, "warning": warning}


def stored_comparison(model: Any, source: str | None) -> dict[str, Any]:
    """The forest comparison a CNN model file carries (``train-cnn --compare-forest``).

    Parameters
    ----------
    model : CNNModel
        A loaded model.
    source : str, optional
        Its file (named in the error).

    Raises
    ------
    ConfigError
        The model is not a CNN or was trained without ``--compare-forest``.
    """
    cmp = (getattr(model, "training", None) or {}).get("forest_comparison")
    if getattr(model, "kind", "cnn") != "cnn" or not cmp:
        raise ConfigError(f"steps.segment.compare_forest: the model {source} carries no forest "
                          "comparison; train it with ect segment train-cnn ... --val IMAGE "
                          "LABELS --compare-forest")
    return {k: cmp[k] for k in ("cnn_val_mean_iou", "forest_val_mean_iou", "margin",
                                "cnn_beats_forest", "warning")}
