"""The cracks-features estimators as plain arrays, and back (model files without pickle).

The two estimators :func:`~electrode_ct.cracks.features_model.train_features` makes are
stored as numbers and rebuilt into the same scikit-learn objects, predicting
bit-identically with the same scikit-learn:

- ``logistic``: :class:`~sklearn.preprocessing.StandardScaler` (``scaler_mean``,
  ``scaler_scale``, ``scaler_var``) then :class:`~sklearn.linear_model.LogisticRegression`
  (``coef``, ``intercept``);
- ``boosting``: :class:`~sklearn.calibration.CalibratedClassifierCV` of one
  histogram gradient-boosting model per fold (tree arrays of
  :mod:`electrode_ct.segment.tree_arrays`, keys prefixed ``fold<i>_``) with its sigmoid
  calibration (``sigmoid_a``, ``sigmoid_b``).

The JSON part (which estimator, constructor parameters) goes into ``model.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.errors import ModelError
from electrode_ct.segment.tree_arrays import (
    boosting_from_arrays,
    boosting_to_arrays,
    json_params,
)


def estimator_to_arrays(est: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and a JSON description of a fitted cracks-features estimator.

    Raises
    ------
    ModelError
        An estimator of another type than the two :func:`train_features` makes.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    if isinstance(est, Pipeline) and [n for n, _ in est.steps] == ["standardscaler",
                                                                     "logisticregression"]:
        sc, lr = est.steps[0][1], est.steps[1][1]
        arrays = {"scaler_mean": sc.mean_, "scaler_scale": sc.scale_, "scaler_var": sc.var_,
                  "coef": lr.coef_, "intercept": lr.intercept_, "classes": lr.classes_}
        return arrays, {"type": "logistic", "logistic_params": json_params(lr)}
    if isinstance(est, CalibratedClassifierCV) and est.method == "sigmoid":
        out: dict[str, np.ndarray] = {"classes": est.classes_}
        params = []
        for i, cc in enumerate(est.calibrated_classifiers_):
            tree_arrays, p = boosting_to_arrays(cc.estimator)
            out.update({f"fold{i}_{k}": v for k, v in tree_arrays.items()})
            params.append(p)
        cal = [cc.calibrators[0] for cc in est.calibrated_classifiers_]
        out["sigmoid_a"] = np.array([c.a_ for c in cal], np.float64)
        out["sigmoid_b"] = np.array([c.b_ for c in cal], np.float64)
        return out, {"type": "calibrated-boosting", "boosting_params": params}
    raise ModelError(f"cracks-features: cannot store a {type(est).__name__} estimator "
                     "(expected the logistic or boosting estimator of train_features)")


def estimator_from_arrays(arrays: dict[str, np.ndarray], spec: dict[str, Any], *,
                          source: str) -> Any:
    """Rebuild the estimator written by :func:`estimator_to_arrays`.

    Raises
    ------
    ModelError
        An unknown estimator type, missing or inconsistent arrays.
    """
    kind = spec.get("type")
    try:
        if kind == "logistic":
            return _logistic(arrays, spec)
        if kind == "calibrated-boosting":
            return _calibrated(arrays, spec, source)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{source}: cracks-features arrays are incomplete or inconsistent "
                         f"({type(exc).__name__}: {exc})") from exc
    raise ModelError(f"{source}: unknown cracks-features estimator {kind!r} (expected "
                     "logistic or calibrated-boosting)")


def _logistic(arrays: dict[str, np.ndarray], spec: dict[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    coef = np.asarray(arrays["coef"], np.float64)
    n = coef.shape[1]
    sc = StandardScaler()
    sc.mean_, sc.var_ = _vector(arrays["scaler_mean"], n), _vector(arrays["scaler_var"], n)
    sc.scale_, sc.n_features_in_ = _vector(arrays["scaler_scale"], n), n
    lr = LogisticRegression(**dict(spec.get("logistic_params") or {}))
    lr.coef_, lr.intercept_ = coef, _vector(arrays["intercept"], coef.shape[0])
    lr.classes_, lr.n_features_in_ = np.asarray(arrays["classes"]), n
    if coef.shape[0] != 1 or len(lr.classes_) != 2:
        raise ValueError(f"binary logistic model expected, got coef of shape {coef.shape}")
    return make_pipeline(sc, lr)


def _calibrated(arrays: dict[str, np.ndarray], spec: dict[str, Any], source: str) -> Any:
    from sklearn.calibration import (
        CalibratedClassifierCV,
        _CalibratedClassifier,
        _SigmoidCalibration,
    )

    classes = np.asarray(arrays["classes"])
    folds = []
    for i, params in enumerate(spec["boosting_params"]):
        prefix = f"fold{i}_"
        sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        hgb = boosting_from_arrays(sub, dict(params), source=f"{source}: fold {i}")
        sig = _SigmoidCalibration()
        sig.a_, sig.b_ = float(arrays["sigmoid_a"][i]), float(arrays["sigmoid_b"][i])
        folds.append(_CalibratedClassifier(hgb, [sig], classes=classes, method="sigmoid"))
    if not folds:
        raise ValueError("no calibrated folds")
    est = CalibratedClassifierCV(folds[0].estimator, method="sigmoid", cv=len(folds))
    est.calibrated_classifiers_, est.classes_ = folds, classes
    est.n_features_in_ = folds[0].estimator.n_features_in_
    return est


def _vector(arr: np.ndarray, n: int) -> np.ndarray:
    """A float64 vector of length ``n`` (ValueError otherwise)."""
    v = np.asarray(arr, np.float64).reshape(-1)
    if v.shape != (n,):
        raise ValueError(f"expected {n} values, got {v.shape}")
    return v
