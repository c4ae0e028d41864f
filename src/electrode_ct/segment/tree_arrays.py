"""Fitted tree ensembles as plain arrays, and back: model files without pickle.

A scikit-learn :class:`~sklearn.ensemble.RandomForestClassifier` is stored as the node
arrays of its trees (the content of ``tree_.__getstate__()``: ``children_left``,
``children_right``, ``feature``, ``threshold``, ``impurity``, ``n_node_samples``,
``weighted_n_node_samples``, ``missing_go_to_left``, ``value``), concatenated over the
trees with ``node_offsets`` marking where each tree starts. The node records of a
histogram gradient-boosting predictor (``TreePredictor.nodes``) are stored likewise,
field by field. Every array is numeric, so the archive is read with
``numpy.load(allow_pickle=False)`` and nothing in the file is ever executed.

Loading checks the arrays before they reach scikit-learn's compiled tree walkers (which do
not bound-check): every child index points forward inside its own tree, every split
feature exists, and the value arrays have the stated number of classes. A model rebuilt
from its arrays predicts bit-identically to the original with the same scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.errors import ModelError

FOREST_FIELDS = {  # array name in the file -> field of sklearn's node record
    "children_left": "left_child",
    "children_right": "right_child",
    "feature": "feature",
    "threshold": "threshold",
    "impurity": "impurity",
    "n_node_samples": "n_node_samples",
    "weighted_n_node_samples": "weighted_n_node_samples",
    "missing_go_to_left": "missing_go_to_left",
}
"""Node arrays of a forest (file name → field of ``sklearn.tree._tree.NODE_DTYPE``)."""

LEAF = -1
"""Child index of a leaf in a forest tree (sklearn's ``TREE_LEAF``)."""


def forest_to_arrays(forest: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the JSON parameters of a fitted random forest.

    Parameters
    ----------
    forest : sklearn.ensemble.RandomForestClassifier
        Fitted, single output.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        Node arrays of all trees concatenated, ``node_offsets`` (n_trees + 1),
        ``max_depth`` per tree, ``classes`` and ``n_features``.
    params : dict
        The forest's JSON-safe constructor parameters (``get_params``).
    """
    if getattr(forest, "n_outputs_", 1) != 1:
        raise ModelError("forest: only single-output forests can be saved")
    states = [est.tree_.__getstate__() for est in forest.estimators_]
    counts = [int(s["node_count"]) for s in states]
    nodes = np.concatenate([s["nodes"] for s in states])
    arrays = {name: np.ascontiguousarray(nodes[field]) for name, field in FOREST_FIELDS.items()}
    arrays["value"] = np.concatenate([s["values"] for s in states])
    arrays["max_depth"] = np.array([int(s["max_depth"]) for s in states], np.int64)
    return {**arrays, **_ensemble_arrays(forest, counts)}, json_params(forest)


def forest_from_arrays(arrays: dict[str, np.ndarray], params: dict[str, Any], *,
                       source: str) -> Any:
    """Rebuild a working :class:`~sklearn.ensemble.RandomForestClassifier`.

    Parameters
    ----------
    arrays, params
        As written by :func:`forest_to_arrays`.
    source : str
        The file the arrays came from (named in errors).

    Raises
    ------
    ModelError
        Missing or inconsistent arrays (child indices, features, class counts).
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import NODE_DTYPE, Tree

    offsets, classes, n_features, value = _forest_parts(arrays, source)
    nodes = _records(arrays, FOREST_FIELDS, NODE_DTYPE, len(value), source)
    n_classes = len(classes)
    try:
        forest = RandomForestClassifier(**{**params, "n_estimators": len(offsets) - 1})
    except TypeError as exc:
        raise ModelError(f"{source}: forest parameters not understood ({exc})") from exc
    trees = []
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        check_children(nodes["left_child"][a:b], nodes["right_child"][a:b],
                       nodes["feature"][a:b], n_features=n_features, leaf=LEAF,
                       source=f"{source}: tree {i}")
        tree = DecisionTreeClassifier(**{p: getattr(forest, p) for p in forest.estimator_params})
        tree.tree_ = Tree(n_features, np.array([n_classes], np.intp), 1)
        tree.tree_.__setstate__({"max_depth": int(arrays["max_depth"][i]), "node_count": b - a,
                                 "nodes": nodes[a:b].copy(), "values": value[a:b].copy()})
        _set_fitted(tree, classes, n_features)
        trees.append(tree)
    forest.estimators_ = trees
    forest.estimator_ = DecisionTreeClassifier()
    _set_fitted(forest, classes, n_features)
    return forest


def _ensemble_arrays(est: Any, counts: list[int]) -> dict[str, np.ndarray]:
    """``node_offsets`` (from the trees' node counts), ``classes`` and ``n_features``."""
    return {"node_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "classes": np.asarray(est.classes_),
            "n_features": np.array(int(est.n_features_in_), np.int64)}


def _check_offsets(offsets: np.ndarray, n_nodes: int, source: str) -> None:
    """Refuse tree offsets that do not split ``n_nodes`` nodes into non-empty trees."""
    if (len(offsets) < 2 or offsets[0] != 0 or np.any(np.diff(offsets) < 1)
            or offsets[-1] != n_nodes):
        raise ModelError(f"{source}: tree node offsets do not match the node arrays")


def _forest_parts(arrays: dict[str, np.ndarray], source: str
                  ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The checked offsets, classes, feature count and values of stored forest arrays."""
    need = [*FOREST_FIELDS, "value", "node_offsets", "max_depth", "classes", "n_features"]
    missing = [k for k in need if k not in arrays]
    if missing:
        raise ModelError(f"{source}: forest arrays missing: {', '.join(missing)}")
    offsets = np.asarray(arrays["node_offsets"], np.int64)
    value = np.ascontiguousarray(arrays["value"], np.float64)
    classes = np.asarray(arrays["classes"])
    n_features = int(arrays["n_features"])
    _check_offsets(offsets, len(value), source)
    if len(arrays["max_depth"]) != len(offsets) - 1:
        raise ModelError(f"{source}: forest max_depth does not match the number of trees")
    if value.ndim != 3 or value.shape[1:] != (1, len(classes)) or n_features < 1:
        raise ModelError(f"{source}: forest values of shape {value.shape} do not match "
                         f"{len(classes)} classes")
    return offsets, classes, n_features, value


def _records(arrays: dict[str, np.ndarray], fields: dict[str, str], dtype: np.dtype,
             n: int, source: str) -> np.ndarray:
    """Assemble a node record array of ``dtype`` from per-field arrays of length ``n``."""
    rec = np.zeros(n, dtype=dtype)
    stored = {field: name for name, field in fields.items()}
    for field in dtype.names:
        if field not in stored:
            raise ModelError(f"{source}: this scikit-learn's trees need node field {field!r}, "
                             "which the model file lacks; retrain the model")
        col = np.asarray(arrays[stored[field]])
        if col.shape != (n,) or col.dtype.kind not in "biuf":
            raise ModelError(f"{source}: node array {stored[field]!r} has shape {col.shape} "
                             f"and dtype {col.dtype}; expected {n} numbers")
        rec[field] = col
    return rec


def check_children(left: np.ndarray, right: np.ndarray, feature: np.ndarray, *,
                   n_features: int, leaf: int | None, source: str,
                   is_leaf: np.ndarray | None = None) -> None:
    """Refuse a tree whose walk could leave its node array or loop.

    Parameters
    ----------
    left, right, feature : numpy.ndarray
        Child indices and split feature per node (indices local to the tree).
    n_features : int
        Number of input features.
    leaf : int or None
        Child index that marks a leaf (forests: -1); None when ``is_leaf`` says it.
    source : str
        Named in the error.
    is_leaf : numpy.ndarray of bool, optional
        Leaf flags (gradient-boosting predictors).

    Raises
    ------
    ModelError
        A split node whose children do not lie after it inside the tree, or whose feature
        is out of range.
    """
    n = len(left)
    split = (left != leaf) if is_leaf is None else ~np.asarray(is_leaf, bool)
    idx = np.arange(n)
    ok = ((left[split] > idx[split]) & (left[split] < n) & (right[split] > idx[split])
          & (right[split] < n) & (feature[split] >= 0) & (feature[split] < n_features))
    if is_leaf is None:
        ok_leaf = (left[~split] == leaf) & (right[~split] == leaf)
        ok = np.concatenate([ok, ok_leaf])
    if not ok.all():
        raise ModelError(f"{source}: node arrays are inconsistent (child index or feature "
                         "out of range); the file is damaged or was not written by "
                         "electrode-ct")


def boosting_to_arrays(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and JSON parameters of a fitted binary histogram gradient-boosting model.

    Parameters
    ----------
    model : sklearn.ensemble.HistGradientBoostingClassifier
        Fitted on numeric features (no categorical ones), two classes.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        Node fields of all predictors concatenated (``value``, ``feature_idx``,
        ``num_threshold``, ``left``, ``right``, ``is_leaf``...), ``node_offsets``,
        ``baseline``, ``classes``, ``n_features``.
    params : dict
        JSON-safe constructor parameters.
    """
    if model.n_trees_per_iteration_ != 1 or model.is_categorical_ is not None:
        raise ModelError("boosting: only binary models on numeric features can be saved")
    preds = [p[0] for p in model._predictors]
    nodes = np.concatenate([p.nodes for p in preds])
    arrays = {name: np.ascontiguousarray(nodes[name]) for name in nodes.dtype.names}
    arrays["baseline"] = np.asarray(model._baseline_prediction, np.float64)
    counts = [len(p.nodes) for p in preds]
    return {**arrays, **_ensemble_arrays(model, counts)}, json_params(model)


def boosting_from_arrays(arrays: dict[str, np.ndarray], params: dict[str, Any], *,
                         source: str) -> Any:
    """Rebuild a working binary :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.

    Raises
    ------
    ModelError
        Missing or inconsistent arrays, categorical splits.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    need = ["node_offsets", "baseline", "classes", "n_features"]
    if any(k not in arrays for k in need):
        raise ModelError(f"{source}: boosting arrays missing: "
                         f"{', '.join(k for k in need if k not in arrays)}")
    offsets = np.asarray(arrays["node_offsets"], np.int64)
    n_features = int(arrays["n_features"])
    fields = {name: name for name in PREDICTOR_RECORD_DTYPE.names}
    n_nodes = len(np.asarray(arrays.get("value", ())))
    _check_offsets(offsets, n_nodes, source)
    nodes = _records(arrays, fields, PREDICTOR_RECORD_DTYPE, n_nodes, source)
    classes = np.asarray(arrays["classes"])
    if (len(classes) != 2 or np.any(nodes["is_categorical"])
            or np.shape(arrays["baseline"]) != (1, 1)):
        raise ModelError(f"{source}: boosting arrays are inconsistent (classes, baseline or "
                         "categorical splits)")
    empty = np.zeros((0, 8), np.uint32)
    predictors = []
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        tree = nodes[a:b].copy()
        check_children(tree["left"].astype(np.int64), tree["right"].astype(np.int64),
                       tree["feature_idx"], n_features=n_features, leaf=None,
                       is_leaf=tree["is_leaf"], source=f"{source}: predictor {i}")
        predictors.append([TreePredictor(tree, empty, empty)])
    try:
        model = HistGradientBoostingClassifier(**params)
    except TypeError as exc:
        raise ModelError(f"{source}: boosting parameters not understood ({exc})") from exc
    model.classes_, model.n_features_in_, model.n_trees_per_iteration_ = classes, n_features, 1
    model.is_categorical_ = model._preprocessor = None
    mapper = _BinMapper()
    mapper.is_categorical_ = np.zeros(n_features, np.uint8)
    mapper.bin_thresholds_ = [np.zeros(0)] * n_features
    mapper.missing_values_bin_idx_ = int(model.max_bins)
    model._bin_mapper, model._predictors = mapper, predictors
    model._baseline_prediction = np.asarray(arrays["baseline"], np.float64)
    model._loss = model._get_loss(sample_weight=None)
    return model


def _set_fitted(est: Any, classes: np.ndarray, n_features: int) -> None:
    """Set the fitted attributes a single-output classifier needs to predict."""
    est.classes_ = classes
    est.n_classes_ = len(classes)
    est.n_outputs_ = 1
    est.n_features_in_ = n_features


def json_params(est: Any) -> dict[str, Any]:
    """The JSON-valued constructor parameters of an estimator (``get_params(deep=False)``;
    estimator objects and arrays left out: they are not needed to predict)."""
    return {k: v for k, v in est.get_params(deep=False).items() if _json_safe(v)}


def _json_safe(value: Any) -> bool:
    """Whether a constructor parameter is a JSON value (no estimator objects, no arrays)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False
