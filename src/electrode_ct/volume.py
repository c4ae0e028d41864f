"""The :class:`Volume` data model: an array, its voxel spacing and its metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError

Spacing = tuple[float, float, float]

_DIRECT_READERS: dict[str, Callable[[np.ndarray], Any]] = {}
_MAX_DIRECT_READERS = 256


def register_direct_reader(name: str, fill: Callable[[np.ndarray], Any]) -> None:
    """Register a function that reads a lazy array straight into a preallocated array.

    Readers of lazy volumes call this with the (content-derived, unique) name of the dask
    array they return; :meth:`Volume.compute` then fills its result directly, skipping the
    per-block copies and dask scheduling. Any operation on the dask array gives it a new
    name, so only the unmodified array read from the file takes this path.

    Parameters
    ----------
    name : str
        ``dask_array.name``.
    fill : callable
        ``fill(out)`` writes the whole array into ``out`` (shape and dtype of the array).
    """
    if len(_DIRECT_READERS) >= _MAX_DIRECT_READERS:
        _DIRECT_READERS.pop(next(iter(_DIRECT_READERS)))
    _DIRECT_READERS[name] = fill


def as_spacing(value: float | Iterable[float] | None, *, name: str = "voxel size") -> Spacing:
    """Normalise a voxel size to a (z, y, x) tuple in µm.

    Parameters
    ----------
    value : float or sequence of 1 or 3 floats or None
        One value (isotropic) or three (z, y, x), in µm. ``None`` gives (1, 1, 1).
    name : str
        Name of the parameter, used in error messages.

    Returns
    -------
    tuple of float
        (z, y, x) spacing in µm.

    Raises
    ------
    InputError
        When the value is not 1 or 3 positive finite numbers.

    Examples
    --------
    >>> as_spacing(0.4)
    (0.4, 0.4, 0.4)
    >>> as_spacing([1, 0.5, 0.5])
    (1.0, 0.5, 0.5)
    """
    if value is None:
        return (1.0, 1.0, 1.0)
    if np.isscalar(value):
        vals = [float(value)]  # type: ignore[arg-type]
    else:
        try:
            vals = [float(v) for v in value]  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}: expected 1 or 3 numbers in µm, got {value!r}") from exc
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise InputError(f"{name}: expected 1 value or 3 values (Z Y X) in µm, got {len(vals)}")
    if not all(np.isfinite(v) and v > 0 for v in vals):
        raise InputError(f"{name}: every value must be a positive number of µm, got {vals}")
    return (vals[0], vals[1], vals[2])


@dataclass
class Volume:
    """A 3-D image or label volume with physical voxel spacing.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        Array in (z, y, x) order. 2-D images are stored as one slice (shape (1, y, x)).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    origin : tuple of float
        Position of voxel (0, 0, 0) in µm.
    metadata : dict
        Free metadata: ``source`` (path), ``format``, ``original_dtype``, ``class_map``
        (name -> value, for label volumes), ``ndim`` (2 for a 2-D image) and whatever a
        reader found.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((4, 5, 6), np.uint8), spacing=(0.4, 0.4, 0.4))
    >>> v.shape, v.spacing
    ((4, 5, 6), (0.4, 0.4, 0.4))
    """

    data: Any
    spacing: Spacing = (1.0, 1.0, 1.0)
    origin: Spacing = (0.0, 0.0, 0.0)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = self.data
        if not hasattr(data, "ndim"):
            data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
            self.metadata.setdefault("ndim", 2)
        if data.ndim != 3:
            src = self.metadata.get("source", "array")
            raise ShapeError(
                f"{src}: expected a 2-D image or 3-D volume (z, y, x), got {data.ndim}-D "
                f"array of shape {tuple(data.shape)}"
            )
        self.data = data
        self.spacing = as_spacing(self.spacing)
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.metadata.setdefault("ndim", 3)

    # -- basic properties -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x) in voxels."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        """Array dtype."""
        return np.dtype(self.data.dtype)

    @property
    def is_lazy(self) -> bool:
        """True when the data is a dask array (not loaded)."""
        return not isinstance(self.data, np.ndarray)

    @property
    def is_2d(self) -> bool:
        """True for a 2-D image stored as one slice."""
        return self.metadata.get("ndim") == 2 and self.shape[0] == 1

    @property
    def nbytes(self) -> int:
        """Size of the array in memory, in bytes."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def class_map(self) -> dict[str, int] | None:
        """Class map (name -> label value) of a label volume, or None."""
        cm = self.metadata.get("class_map")
        return dict(cm) if cm else None

    @property
    def source(self) -> str:
        """Where the data came from (a path), for messages."""
        return str(self.metadata.get("source", "<array>"))

    # -- conversions ------------------------------------------------------------------
    def compute(self) -> Volume:
        """Return a Volume whose data is a loaded numpy array.

        A dask array is stored block by block into one preallocated array (each block is
        freed once copied), which halves peak memory and is markedly faster than
        ``dask.compute``, which holds every block and then concatenates them. The reads run
        on local threads even while a distributed client is open (dask's default scheduler
        then): the blocks are this machine's files, and a client's workers would fill their
        own copies of the array, leaving this one uninitialised.
        """
        if not self.is_lazy:
            return self
        data = self.data
        fill = _DIRECT_READERS.get(str(getattr(data, "name", "")))
        if fill is not None:
            out = np.empty(self.shape, dtype=self.dtype)
            fill(out.reshape(tuple(int(n) for n in data.shape)))
        elif hasattr(data, "store") and hasattr(data, "chunks"):
            out = np.empty(self.shape, dtype=self.dtype)
            data.store(out, lock=False, scheduler="threads")
        else:
            out = np.asarray(data.compute(scheduler="threads"))
        return replace(self, data=out, metadata=dict(self.metadata))

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (loads a lazy volume)."""
        return np.asarray(self.compute().data)

    def with_data(self, data: Any, **metadata: Any) -> Volume:
        """A new Volume with other data, the same spacing/origin and updated metadata."""
        meta = dict(self.metadata)
        meta.update(metadata)
        if np.ndim(data) == 2:
            meta["ndim"] = 2
        return Volume(data, spacing=self.spacing, origin=self.origin, metadata=meta)

    def with_class_map(self, class_map: Mapping[str, int] | None) -> Volume:
        """Return the same volume with a class map (name -> value) attached."""
        meta = dict(self.metadata)
        if class_map:
            meta["class_map"] = {str(k): int(v) for k, v in class_map.items()}
        else:
            meta.pop("class_map", None)
        return Volume(self.data, spacing=self.spacing, origin=self.origin, metadata=meta)


DEFAULT_PHASES: dict[str, int] = {"pore": 0, "cbd": 1, "active": 2}
"""Default class map of 3-phase volumes made by electrode-ct."""


def default_class_map(n_classes: int) -> dict[str, int]:
    """Class map for ``n_classes`` phases ordered by mean grey level.

    Three classes are named pore, cbd, active; other counts are named
    ``phase0 .. phase{N-1}``.
    """
    if n_classes == 3:
        return dict(DEFAULT_PHASES)
    if n_classes == 2:
        return {"pore": 0, "active": 1}
    return {f"phase{i}": i for i in range(n_classes)}


def resolve_phase(phase: str | int, class_map: Mapping[str, int] | None, *, where: str = "") -> int:
    """Turn a phase name or integer into a label value.

    Parameters
    ----------
    phase : str or int
        A class name looked up in ``class_map``, or an integer value (also as a string).
    class_map : mapping or None
        name -> value.
    where : str
        The file or parameter name, for the error message.

    Raises
    ------
    InputError
        When a name is not in the class map (or there is no map).
    """
    if isinstance(phase, (int, np.integer)):
        return int(phase)
    text = str(phase).strip()
    if class_map and text in class_map:
        return int(class_map[text])
    try:
        return int(text)
    except ValueError:
        names = ", ".join(sorted(class_map)) if class_map else "none (no class map)"
        prefix = f"{where}: " if where else ""
        raise InputError(
            f"{prefix}phase {text!r} is not a class name or integer value; known names: {names}"
        ) from None
