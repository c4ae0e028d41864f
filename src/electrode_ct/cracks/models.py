"""Which cracks model classifies: the shipped default, a model file, or a loaded model.

Both model kinds (``cracks-features``, ``cracks-cnn``) live in the project's model archive
(:mod:`electrode_ct.segment.models`); this module finds the right one and checks that it
is of the method asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from electrode_ct.errors import InputError, ModelError

METHODS = ("features", "cnn")
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "data" / \
    "cracks_features_default.ectmodel"
"""The shipped features classifier (trained on phantoms by
``scripts/train_default_cracks_model.py``)."""
DEFAULT_CNN_MODEL = DEFAULT_MODEL.with_name("cracks_cnn_default.ectmodel")
"""The shipped CNN classifier (trained on phantoms by ``scripts/train_default_cracks_cnn.py``;
used for ``method="cnn"`` without a model file)."""


def check_method(method: str | None) -> None:
    """Raise a one-line :class:`InputError` unless ``method`` is None or in :data:`METHODS`."""
    if method is not None and method not in METHODS:
        raise InputError(f"method: expected features or cnn, got {method!r}")


def load_cracks_model(path: str | Path | None, *, method: str | None = None) -> Any:
    """Load a cracks model (default: the shipped features model, or the shipped CNN for
    ``method="cnn"``); check its method.

    Raises
    ------
    ModelError
        A model of another kind or method than ``method``.
    """
    from electrode_ct.cracks import cnn_model, features_model  # noqa: F401 (kinds)
    from electrode_ct.segment.models import load_model, read_header

    p = Path(path) if path is not None else \
        (DEFAULT_CNN_MODEL if method == "cnn" else DEFAULT_MODEL)
    head = read_header(p)
    kind = head.get("kind")
    if kind not in (features_model.KIND, cnn_model.KIND):
        raise ModelError(f"{p}: is a {kind!r} model, expected a cracks model "
                         "(made by 'ect cracks train')")
    found = "cnn" if kind == cnn_model.KIND else "features"
    if method is not None and method != found:
        raise ModelError(f"{p}: is a {found!r} cracks model, but --method {method} was asked")
    return load_model(p, kind=kind)


def resolve_model(model: Any, *, method: str | None = None) -> Any:
    """A loaded cracks model from a model object, a model file or None (the shipped one
    of ``method``: the features model by default, the CNN for ``method="cnn"``).

    Raises
    ------
    InputError
        Unknown ``method``.
    ModelError
        A model of another method.
    """
    check_method(method)
    if model is None or isinstance(model, (str, Path)):
        return load_cracks_model(model, method=method)
    if method is not None and model.method != method:
        raise ModelError(f"model is a {model.method!r} cracks model, but method {method!r} "
                         "was asked")
    return model
