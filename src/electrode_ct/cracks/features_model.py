"""The CPU-light flaw classifier on 3-D particle descriptors (model kind ``cracks-features``).

A scikit-learn estimator on :data:`~electrode_ct.cracks.descriptors.FEATURE_COLUMNS`:
logistic regression on standardised descriptors (default; its probabilities are
calibrated by construction) or gradient boosting wrapped in a sigmoid
(Platt) calibration with 3-fold cross-validation. Saved in the project's model archive
(:mod:`electrode_ct.segment.models`) as plain arrays (``estimator.npz``,
:mod:`electrode_ct.cracks.features_arrays`): loading runs nothing from the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks.descriptors import FEATURE_COLUMNS
from electrode_ct.cracks.features_arrays import estimator_from_arrays, estimator_to_arrays
from electrode_ct.errors import InputError, ModelError
from electrode_ct.segment.convert import register_legacy
from electrode_ct.segment.models import (
    array_digest,
    pack_arrays,
    read_arrays,
    register_kind,
    write_archive,
)

KIND = "cracks-features"
MEMBER = "estimator.npz"
"""Archive member holding the estimator's arrays."""
ESTIMATORS = ("logistic", "boosting")
THRESHOLD_RULES = ("expected", "fixed")


class FeaturesModel:
    """A trained descriptor classifier.

    Attributes
    ----------
    estimator : sklearn estimator
        Fitted, with ``predict_proba``.
    features : list of str
        Descriptor columns, in the estimator's order.
    threshold : float
        Fixed score threshold for ``flawed`` (used when ``threshold_rule`` is ``fixed``).
    threshold_rule : {"expected", "fixed"}
        Default threshold when none is given: ``expected`` flags the ``round(sum(score))``
        highest-scoring particles of the scan (unbiased % flawed, see
        :func:`~electrode_ct.cracks.evaluate.expected_count_threshold`); ``fixed`` uses
        ``threshold``.
    training : dict
        Training record (counts, seed, estimator, AUC on the training set).
    """

    kind = KIND
    method = "features"

    def __init__(self, estimator: Any, *, features: list[str], threshold: float = 0.5,
                 threshold_rule: str = "fixed",
                 training: dict[str, Any] | None = None) -> None:
        if threshold_rule not in THRESHOLD_RULES:
            raise InputError(f"threshold_rule: expected one of {', '.join(THRESHOLD_RULES)}, "
                             f"got {threshold_rule!r}")
        self.estimator = estimator
        self.threshold_rule = threshold_rule
        self.features = list(features)
        self.threshold = float(threshold)
        self.training = dict(training or {})

    def score(self, descriptors: pd.DataFrame) -> np.ndarray:
        """Calibrated flaw probability per row of a descriptor table."""
        missing = [c for c in self.features if c not in descriptors.columns]
        if missing:
            raise ModelError(f"cracks-features model: descriptor columns {missing} missing; "
                             "the model was trained with another electrode-ct version")
        x = descriptors[self.features].to_numpy(np.float64)
        return self.estimator.predict_proba(x)[:, 1].astype(np.float64)

    def default_threshold(self, score: np.ndarray) -> float:
        """The threshold used when none is given, for the scores ``score`` of one scan."""
        if self.threshold_rule == "expected":
            from electrode_ct.cracks.evaluate import expected_count_threshold

            return expected_count_threshold(score)
        return self.threshold

    def header(self) -> dict[str, Any]:
        """The ``model.json`` content."""
        return {"kind": KIND, "method": "features", "features": self.features,
                "threshold": self.threshold,
                "threshold_rule": self.threshold_rule, "training": self.training,
                "training_data": self.training.get("training_data"),
                "training_spacing_um": self.training.get("spacing_um"),
                "class_values": [0, 1], "class_names": ["intact", "flawed"]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (atomically): ``model.json`` + ``estimator.npz``."""
        arrays, spec = estimator_to_arrays(self.estimator)
        return write_archive(path, {**self.header(), "estimator": spec},
                             {MEMBER: pack_arrays(arrays)})


def _estimator(name: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    gb = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_depth=3,
                                        l2_regularization=1.0, random_state=seed)
    return CalibratedClassifierCV(gb, method="sigmoid", cv=3)


def train_features(descriptors: pd.DataFrame, flawed: np.ndarray, *,
                   estimator: str = "logistic", threshold: float = 0.5,
                   threshold_rule: str = "expected", seed: int = 0) -> FeaturesModel:
    """Fit the descriptor classifier.

    Parameters
    ----------
    descriptors : pandas.DataFrame
        From :func:`~electrode_ct.cracks.descriptors.particle_descriptors`.
    flawed : numpy.ndarray
        0/1 (or bool) reference per row.
    estimator : {"logistic", "boosting"}
        Logistic regression (default) or calibrated gradient boosting.
    threshold : float
        Fixed score threshold stored with the model.
    threshold_rule : {"expected", "fixed"}
        Default threshold rule (see :class:`FeaturesModel`).
    seed : int
        Random seed (boosting).

    Raises
    ------
    InputError
        Unknown estimator, length mismatch, or fewer than 3 particles of either class.
    """
    if estimator not in ESTIMATORS:
        raise InputError(f"estimator: expected one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    y = np.asarray(flawed).astype(np.int64).ravel()
    if len(y) != len(descriptors):
        raise InputError(f"flawed: {len(y)} values for {len(descriptors)} particles")
    n1, n0 = int(y.sum()), int((y == 0).sum())
    if min(n0, n1) < 3:
        raise InputError(f"training labels: need at least 3 flawed and 3 intact particles, got "
                         f"{n1} flawed and {n0} intact")
    feats = list(FEATURE_COLUMNS)
    x = descriptors[feats].to_numpy(np.float64)
    est = _estimator(estimator, seed)
    est.fit(x, y)
    from electrode_ct.cracks.evaluate import roc_auc

    auc = roc_auc(y, est.predict_proba(x)[:, 1])
    record = {"estimator": estimator, "n_particles": len(y), "n_flawed": n1, "seed": seed,
              "train_auc": auc,
              "training_data": {"descriptors_sha256": array_digest(x, y)}}
    return FeaturesModel(est, features=feats, threshold=threshold, threshold_rule=threshold_rule,
                         training=record)


def _loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> FeaturesModel:
    spec = header.get("estimator")
    if not isinstance(spec, dict):
        raise ModelError(f"{path}: cracks-features model without an estimator description "
                         "(expected 'estimator' in model.json)")
    est = estimator_from_arrays(read_arrays(archive, MEMBER, path), spec, source=str(path))
    return features_model(header, est, path)


def features_model(header: dict[str, Any], estimator: Any, path: Path) -> FeaturesModel:
    """A :class:`FeaturesModel` from its ``model.json`` header and its fitted estimator.

    Raises
    ------
    ModelError
        A malformed header or an estimator taking another number of descriptors.
    """
    try:
        features = [str(f) for f in header["features"]]
        model = FeaturesModel(estimator, features=features,
                              threshold=header.get("threshold", 0.5),
                              threshold_rule=header.get("threshold_rule", "fixed"),
                              training=header.get("training"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: damaged cracks-features model ({type(exc).__name__})") from exc
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in != len(features):
        raise ModelError(f"{path}: estimator takes {n_in} descriptors, the header lists "
                         f"{len(features)}")
    return model


register_kind(KIND, _loader)
register_legacy(KIND, "estimator.pkl", features_model)
