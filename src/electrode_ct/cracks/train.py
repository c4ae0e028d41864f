"""Train a cracks model (features or CNN) on one labelled, prepared scan."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks.evaluate import reference_flawed
from electrode_ct.cracks.models import METHODS
from electrode_ct.cracks.scan import PreparedScan, cnn_slices
from electrode_ct.errors import InputError

FINE_MIN_AUC = 0.65
"""``auto`` CNN input: the fine-scale image is added when the ``fine_dark_fraction``
descriptor alone separates the training scan's flawed from intact particles with at
least this AUC (nano-CT phantoms 0.80-0.89; micro-CT 0.45-0.57, where the fine scale is
noise and only makes the network overfit)."""


def choose_image(image: str, descriptors: pd.DataFrame, flawed: np.ndarray) -> str:
    """Resolve the CNN input ``auto`` on a labelled training scan (other values returned).

    Parameters
    ----------
    image : {"auto", "both", "fine", "grey"}
        Requested input.
    descriptors : pandas.DataFrame
        Descriptor table of the training particles (with ``fine_dark_fraction``).
    flawed : numpy.ndarray
        0/1 per row.

    Returns
    -------
    str
        ``both`` when the AUC of ``fine_dark_fraction`` is at least :data:`FINE_MIN_AUC`,
        else ``grey`` (for ``auto``).
    """
    if image != "auto":
        return image
    from electrode_ct.cracks.evaluate import roc_auc

    auc = roc_auc(np.asarray(flawed), descriptors["fine_dark_fraction"].to_numpy())
    return "both" if np.isfinite(auc) and auc >= FINE_MIN_AUC else "grey"


def train_cracks_model(scan: PreparedScan, truth: pd.DataFrame, *, method: str = "features",
                       k: int = 10, axes: int | str | list[int] = 0, slice_size: int = 128,
                       threshold: float | None = None, estimator: str = "logistic",
                       seed: int = 0, cnn_config: Any = None) -> Any:
    """Train a cracks model on the candidate particles of one labelled scan.

    Parameters
    ----------
    scan : PreparedScan
        From :func:`~electrode_ct.cracks.scan.prepare_scan`.
    truth : pandas.DataFrame
        ``label`` + ``flawed`` (0/1) or ``cracked``; every candidate particle needs a row.
    method : {"features", "cnn"}
        Which classifier.
    k, axes, slice_size : int, axes, int
        CNN slice sampling.
    threshold : float, optional
        Fixed score threshold stored in the model (CNN default: the published 0.4);
        features models without one default to the count-matching ``expected`` rule.
    estimator : {"logistic", "boosting"}
        Features classifier.
    seed : int
        Random seed.
    cnn_config : CNNConfig, optional
        CNN settings (``size`` is set to ``slice_size``; ``image="auto"`` is resolved by
        :func:`choose_image`).

    Returns
    -------
    FeaturesModel or CrackSliceCNN
    """
    if method not in METHODS:
        raise InputError(f"method: expected features or cnn, got {method!r}")
    y = reference_flawed(truth, scan.ids)
    if method == "features":
        from electrode_ct.cracks.features_model import train_features

        model = train_features(scan.descriptors, y, estimator=estimator,
                               threshold=0.5 if threshold is None else threshold,
                               threshold_rule="expected" if threshold is None else "fixed",
                               seed=seed)
        model.training["spacing_um"] = [float(s) for s in scan.spacing]
        return model
    from dataclasses import replace

    from electrode_ct.cracks.cnn_model import PUBLISHED_THRESHOLD, CNNConfig, train_cnn
    from electrode_ct.cracks.sampling import parse_axes

    cfg = replace(cnn_config or CNNConfig(seed=seed), size=int(slice_size))
    cfg = replace(cfg, image=choose_image(cfg.image, scan.descriptors, y))
    ax = list(parse_axes(axes))
    slices = cnn_slices(scan, scan.ids, image=cfg.image, k=k, axes=ax, size=cfg.size)
    model = train_cnn(slices, y, config=cfg, k=k, axes=ax,
                      threshold=PUBLISHED_THRESHOLD if threshold is None else threshold)
    model.training["spacing_um"] = [float(s) for s in scan.spacing]
    return model
