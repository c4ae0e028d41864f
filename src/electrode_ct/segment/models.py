"""Saved segmentation models: one archive format, one loader per model kind.

A model file (any name the user chooses) is a zip archive holding ``model.json`` — at
least ``{"kind": ..., "format_version": ..., "package_version": ...,
"class_values": [...], "class_names": [...]}`` plus, where known, ``training_data``
(SHA-256 of the training arrays) and ``training_spacing_um`` — and the kind's payload
files: numeric arrays (``.npz``, read with ``allow_pickle=False``) or torch state dicts
(read with ``weights_only=True``). :func:`load_model` reads the header and dispatches on
``kind``, so ``ect segment predict`` serves every kind.

Nothing in a model file is executed when it is loaded. Archives of format 1 that hold a
pickle (``*.pkl``: forests and cracks-features models of earlier releases) are refused;
``ect model convert OLD NEW --trust`` (:mod:`electrode_ct.segment.convert`) rewrites them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from electrode_ct.errors import ConfigError, ModelError
from electrode_ct.io._atomic import atomic_path
from electrode_ct.volume import Volume

MODEL_FORMAT_VERSION = 2
"""Archive format: 2 = no pickle anywhere (arrays and torch weights only); 1 = earlier
releases (forests and cracks-features models pickled)."""

MAX_DEFLATE_RATIO = 1100
"""Deflate expands at most ~1032:1; a member claiming more is refused before reading."""

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
"""Archive members of earlier releases that only unpickling could read (refused)."""

PACKAGE_YAML = ("rdf.yaml", "bioimageio.yaml")
"""Description file of a bioimage.io model package (read as a ``cnn`` model)."""

CONVERT_HINT = ("convert it with 'ect model convert OLD NEW --trust' if you trust its "
                "source (loading it runs any code it contains)")


@dataclass
class Prediction:
    """The result of a model prediction.

    Attributes
    ----------
    labels : numpy.ndarray
        Class values (the model's ``class_values``), shape (z, y, x), uint8.
    probabilities : numpy.ndarray or None
        Per-class probabilities, shape (K, z, y, x), float32, in ``class_values`` order.
    uncertainty : numpy.ndarray or None
        Normalised entropy of the probabilities in [0, 1], shape (z, y, x), float32.
    intensity_range : (float, float) or None
        Normalisation range (lo, hi) in grey units that this prediction mapped the image
        by, (v − lo)/(hi − lo) (forest models; None where a model has no such range).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    intensity_range: tuple[float, float] | None = None


@runtime_checkable
class SegmentationModel(Protocol):
    """What every model kind provides: one ``predict`` signature, one archive.

    ``predict`` takes the grey volume and the keywords every kind shares
    (``probabilities``, ``uncertainty``, ``two_d``: segment each z slice (axis 0) on its
    own, ``progress``: wraps the kind's block or plane iterator) plus the kind's own
    options, named in ``prediction_options``; any other keyword raises
    :class:`ConfigError` (:func:`check_options`).
    """

    kind: str
    class_values: list[int]
    class_names: list[str]
    prediction_options: tuple[str, ...]

    def predict(self, volume: Volume | np.ndarray, *, probabilities: bool = False,
                uncertainty: bool = False, two_d: bool = False,
                progress: Callable[[Any], Any] | None = None,
                **options: Any) -> Prediction:
        """Segment a volume."""
        ...

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive."""
        ...


def check_options(model: SegmentationModel, options: Mapping[str, Any]) -> None:
    """Refuse prediction options that ``model``'s kind does not know.

    Raises
    ------
    ConfigError
        Naming the unknown options and the ones the kind accepts.
    """
    unknown = sorted(set(options) - set(model.prediction_options))
    if unknown:
        known = ", ".join(model.prediction_options) or "none"
        raise ConfigError(f"{model.kind} model: unknown prediction option(s) "
                          f"{', '.join(unknown)}; this kind accepts {known} (and "
                          "probabilities, uncertainty, two_d, progress)")


Loader = Callable[[dict[str, Any], zipfile.ZipFile, Path], Any]
_LOADERS: dict[str, Loader] = {}


def register_kind(kind: str, loader: Loader) -> None:
    """Register ``loader(header, archive, path) -> model`` for a model kind."""
    _LOADERS[kind] = loader


def write_archive(path: str | os.PathLike[str], header: dict[str, Any],
                  files: dict[str, bytes]) -> Path:
    """Write a model archive atomically: ``model.json`` plus payload files."""
    from electrode_ct import __version__

    head = {"format_version": MODEL_FORMAT_VERSION, "package_version": __version__, **header}
    if "kind" not in head:
        raise ValueError("model header needs a 'kind'")
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("model.json", json.dumps(head, indent=2))
            for name, payload in files.items():
                zf.writestr(name, payload)
    return Path(path)


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``model.json`` header of a model archive.

    Raises
    ------
    ModelError
        When the file is missing, not a model archive or of a newer format.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model file")
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            if "model.json" not in names and any(n in names for n in PACKAGE_YAML):
                return _package_header(zf, p)
            head = json.loads(read_member(zf, "model.json").getvalue())
    except (zipfile.BadZipFile, KeyError, ValueError, zlib.error, OSError) as exc:
        raise ModelError(f"{p}: not an electrode-ct model file (expected a model archive "
                         "written by 'ect segment train-*')") from exc
    if not isinstance(head, dict):
        raise ModelError(f"{p}: model.json is not an object")
    fmt = head.get("format_version", 0)
    if not isinstance(fmt, int):
        raise ModelError(f"{p}: model.json format_version {fmt!r}: expected an integer")
    if fmt > MODEL_FORMAT_VERSION:
        raise ModelError(f"{p}: model format {head.get('format_version')} is newer than this "
                         f"electrode-ct understands ({MODEL_FORMAT_VERSION}); upgrade electrode-ct")
    return head


def _package_header(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """The electrode-ct header of a bioimage.io model package (``config.electrode_ct``).

    The package's YAML is read with ``yaml.safe_load`` (plain data only).

    Raises
    ------
    ModelError
        A package not exported by electrode-ct, or one without state dict weights.
    """
    import yaml

    name = next(n for n in PACKAGE_YAML if n in zf.namelist())
    try:
        rdf = yaml.safe_load(read_member(zf, name).getvalue())
        head = rdf["config"]["electrode_ct"]
        weights = rdf["weights"]["pytorch_state_dict"]["source"]
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: a bioimage.io package without electrode-ct's header and "
                         "PyTorch state dict weights; only packages made by 'ect segment "
                         "export' can be used as models") from exc
    if not isinstance(head, dict) or head.get("kind") != "cnn":
        raise ModelError(f"{path}: config.electrode_ct of this bioimage.io package is not a "
                         "cnn model header")
    return {**head, "package": {"format": "bioimageio", "rdf": name,
                                "state_dict": str(weights)}}


def read_member(zf: zipfile.ZipFile, name: str) -> io.BytesIO:
    """A payload file of an open archive as a binary stream.

    Raises
    ------
    ModelError
        The member is missing, damaged (bad CRC or compressed data), or claims more
        bytes than deflate can produce from its compressed size (a zip bomb).
    """
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + (1 << 20):
            raise ModelError(f"{zf.filename}: member {name} claims {info.file_size} bytes "
                             f"from {info.compress_size}; the archive is damaged")
        return io.BytesIO(zf.read(info))
    except KeyError as exc:
        raise ModelError(f"{zf.filename}: member {name} missing; the file is damaged or not "
                         "a model written by electrode-ct") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ModelError(f"{zf.filename}: member {name} is damaged ({exc})") from exc


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Numeric arrays as the bytes of an ``.npz`` archive member (no object arrays)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype.hasobject:
            raise ValueError(f"array {name!r}: object arrays cannot be stored")
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def read_arrays(zf: zipfile.ZipFile, name: str, path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` member, read with ``allow_pickle=False``.

    Raises
    ------
    ModelError
        The member is missing, not an npz archive, or holds pickled objects.
    """
    try:
        with np.load(read_member(zf, name), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: member {name} is not a plain numeric array archive "
                         f"({type(exc).__name__}); the file is damaged or not a model "
                         "written by electrode-ct") from exc


def load_weights(zf: zipfile.ZipFile, name: str, path: Path) -> dict[str, Any]:
    """A torch state dict member, read with ``torch.load(weights_only=True)``.

    Only tensors and plain containers are accepted: a pickle that would build any other
    object (and run code doing so) is refused before anything of it executes.

    Raises
    ------
    ModelError
        The member is missing or is not a plain state dict.
    """
    import pickle

    from electrode_ct.segment.cnn._torch import require_torch

    torch = require_torch()
    try:
        state = torch.load(read_member(zf, name), map_location="cpu", weights_only=True)
    except (KeyError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: member {name} is not a plain torch state dict "
                         f"({type(exc).__name__}); the file is damaged or was not written "
                         "by electrode-ct") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path}: member {name} holds a {type(state).__name__}, expected a "
                         "state dict")
    return state


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of arrays (dtype, shape and bytes): the ``training_data`` hash of a model."""
    h = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def refuse_pickles(zf: zipfile.ZipFile, path: Path) -> None:
    """Raise :class:`ModelError` when an archive holds a pickle (an old-format model)."""
    old = [n for n in zf.namelist() if n.lower().endswith(PICKLE_SUFFIXES)]
    if old:
        raise ModelError(f"{path}: an old-format model (pickled {', '.join(old)}); "
                         f"{CONVERT_HINT}")


def check_classes(head: dict[str, Any], path: Path) -> None:
    """Raise :class:`ModelError` unless the header's classes are a valid uint8 class map."""
    values, names = head.get("class_values"), head.get("class_names")
    if not isinstance(values, list) or not isinstance(names, list):
        raise ModelError(f"{path}: model header lacks class_values and class_names lists")
    if (len(values) != len(names) or len(set(values)) != len(values) or not values
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in values)
            or not all(isinstance(n, str) for n in names)):
        raise ModelError(f"{path}: class_values {values} and class_names {names}: expected "
                         "as many distinct integers 0..255 as names")


def load_model(path: str | os.PathLike[str], *, kind: str | None = None) -> SegmentationModel:
    """Load a model of any registered kind.

    Parameters
    ----------
    path : path-like
        Model archive.
    kind : str, optional
        Expected kind; a model of another kind is a :class:`ModelError`.
    """
    head = read_header(path)
    found = head.get("kind")
    if kind is not None and found != kind:
        raise ModelError(f"{path}: is a {found!r} model, expected a {kind!r} model")
    if found not in _LOADERS:
        _import_kinds()
    if found not in _LOADERS:
        raise ModelError(f"{path}: unknown model kind {found!r}; known: {sorted(_LOADERS)}")
    check_classes(head, Path(path))
    with zipfile.ZipFile(path) as zf:
        refuse_pickles(zf, Path(path))
        return _LOADERS[found](head, zf, Path(path))


def _import_kinds() -> None:
    """Import the modules that register model kinds (the CNN one needs torch)."""
    import importlib

    for mod in ("electrode_ct.segment.forest", "electrode_ct.segment.cnn"):
        try:
            importlib.import_module(mod)
        except ImportError:
            continue


def entropy(prob: np.ndarray) -> np.ndarray:
    """Normalised entropy (0 = certain, 1 = uniform) over axis 0 of a probability array."""
    k = prob.shape[0]
    p = np.clip(prob.astype(np.float32), 1e-7, 1.0)
    h = -(p * np.log(p)).sum(axis=0)
    return (h / np.log(k)).astype(np.float32) if k > 1 else np.zeros(prob.shape[1:], np.float32)
