"""Convert a model file of an earlier release to the current, pickle-free format.

Forests and cracks-features models of format 1 hold a pickle (``stage1.pkl``,
``estimator.pkl``). Unpickling a file runs whatever code it names, so
:func:`convert_model` unpickles only when the caller states that it trusts the file
(``ect model convert OLD NEW --trust``); it then writes the model again in the current
format, whose loading executes nothing. Files without a pickle (CNN models of any
release, current files) are rewritten without needing trust.

This is the only module of electrode-ct that unpickles anything.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from electrode_ct.errors import ModelError
from electrode_ct.segment.models import (
    MODEL_FORMAT_VERSION,
    PICKLE_SUFFIXES,
    load_model,
    read_header,
)

Builder = Callable[[dict[str, Any], Any, Path], Any]
_LEGACY: dict[str, tuple[str, Builder]] = {}


def register_legacy(kind: str, member: str, builder: Builder) -> None:
    """Register how a format-1 model of ``kind`` is rebuilt from its pickled ``member``.

    ``builder(header, unpickled_object, path)`` returns the model (which has ``save``).
    """
    _LEGACY[kind] = (member, builder)


def convert_model(old: str | os.PathLike[str], new: str | os.PathLike[str], *,
                  trust: bool = False) -> dict[str, Any]:
    """Rewrite a model file in the current format.

    Parameters
    ----------
    old, new : path-like
        The model file to read and the one to write (atomically; may not be ``old``).
    trust : bool
        Unpickle the old file's pickled members (runs any code they contain): only for a
        file from a source you trust.

    Returns
    -------
    dict
        ``kind``, ``from_format``, ``to_format``, ``unpickled`` (the members read by
        unpickling), ``out``.

    Raises
    ------
    ModelError
        A file that is not a model, a pickled model without ``trust``, a kind this version
        cannot convert (e.g. a two-stage forest), or ``new`` equal to ``old``.
    """
    src, dst = Path(old), Path(new)
    if dst.resolve() == src.resolve():
        raise ModelError(f"{dst}: the converted model needs another file name than the old one")
    head = read_header(src)
    kind = head.get("kind")
    with zipfile.ZipFile(src) as zf:
        pickled = [n for n in zf.namelist() if n.lower().endswith(PICKLE_SUFFIXES)]
        if not pickled:
            model = load_model(src)
        else:
            model = _from_pickle(head, zf, src, pickled, trust=trust)
    model.save(dst)
    return {"kind": kind, "from_format": int(head.get("format_version", 1)),
            "to_format": MODEL_FORMAT_VERSION, "unpickled": pickled, "out": str(dst)}


def _from_pickle(head: dict[str, Any], zf: zipfile.ZipFile, path: Path, pickled: list[str],
                 *, trust: bool) -> Any:
    """Rebuild a format-1 model from its pickle (only with ``trust``)."""
    kind = head.get("kind")
    if "stage2.pkl" in pickled:
        raise ModelError(f"{path}: an auto-context (two-stage) forest; auto-context was "
                         "removed (no measured gain, docs/forest.md): retrain the model")
    if kind not in _LEGACY or pickled != [_LEGACY[kind][0]]:
        raise ModelError(f"{path}: cannot convert a {kind!r} model holding {pickled}; "
                         "retrain it with this electrode-ct")
    if not trust:
        raise ModelError(f"{path}: holds a pickle ({', '.join(pickled)}), which can run any "
                         "code when loaded; pass --trust to load it if you trust its source")
    member, builder = _LEGACY[kind]
    try:
        obj = pickle.loads(zf.read(member))  # noqa: S301 -- the user passed --trust
    except Exception as exc:  # unpickling across library versions fails in many ways
        raise ModelError(f"{path}: cannot unpickle {member} with this Python environment "
                         f"({type(exc).__name__}); retrain the model") from exc
    return builder(head, obj, path)
