"""Metadata helpers shared by the format modules: units, class maps, spacing attributes,
dimensionality checks and lazy-array wrapping."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import ShapeError
from electrode_ct.volume import Volume

_UNITS_UM: dict[str, float] = {
    "micron": 1.0, "microns": 1.0, "um": 1.0, "µm": 1.0, "μm": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "micrometers": 1.0, "micrometres": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "nanometers": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3, "millimeters": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6, "meters": 1e6,
    "angstrom": 1e-4, "å": 1e-4,
}


def unit_to_um(unit: Any) -> float | None:
    """Micrometres per ``unit`` (``"nm"`` → 0.001, ``"micrometer"`` → 1), or None if unknown.

    Parameters
    ----------
    unit : str or bytes or None
        A length unit name as written by TIFF/OME/NeXus/NRRD tools.

    Returns
    -------
    float or None
        Scale factor to µm; None for missing, ``pixel`` or unrecognised units.
    """
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    u = str(unit).strip().lower().replace("\\u00b5", "µ")
    return _UNITS_UM.get(u)


def parse_class_map(value: Any) -> dict[str, int] | None:
    """A class map (name → value) from a dict or a JSON string, or None when absent/invalid."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping) or not value:
        return None
    try:
        return {str(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


def spacing_attrs(volume: Volume) -> dict[str, Any]:
    """JSON-able attributes recording a volume's spacing (µm), origin (µm), axes and class map."""
    attrs: dict[str, Any] = {
        "spacing_um": [float(s) for s in volume.spacing],
        "origin_um": [float(o) for o in volume.origin],
        "axes": "zyx",
    }
    if volume.class_map:
        attrs["class_map"] = volume.class_map
    return attrs


def triple(value: Any, *, positive: bool = True) -> tuple[float, float, float] | None:
    """Three finite floats (z, y, x) from a sequence/array or one value (isotropic), or None.

    With ``positive`` (spacings) zero or negative values also give None; origins pass
    ``positive=False``.
    """
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        return None
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def squeeze_to_3d(data: Any, *, where: str, axes: str | Sequence[str] = "") -> Any:
    """Drop singleton axes beyond three; raise :class:`ShapeError` for real 4-D+ data.

    Parameters
    ----------
    data : array-like
        numpy or dask array.
    where : str
        File name for the message.
    axes : str or sequence of str
        Axis names, for the message only.
    """
    if data.ndim <= 3:
        return data
    shape = tuple(int(s) for s in data.shape)
    keep = [s for s in shape if s > 1]
    if len(keep) <= 3:
        while len(keep) < 2:
            keep.insert(0, 1)
        return data.reshape(tuple(keep))
    ax = f" (axes {''.join(axes) if not isinstance(axes, str) else axes})" if axes else ""
    raise ShapeError(
        f"{where}: expected a 2-D image or 3-D volume, got {data.ndim}-D data of shape {shape}{ax}"
    )


def check_ndim(shape: Sequence[int], *, where: str) -> None:
    """Raise :class:`ShapeError` unless ``shape`` is 2-D or 3-D after dropping singleton axes."""
    if len(shape) < 2 or len([s for s in shape if s > 1]) > 3:
        raise ShapeError(
            f"{where}: expected a 2-D image or 3-D volume, got {len(shape)}-D data of shape "
            f"{tuple(int(s) for s in shape)}"
        )


def slab_chunks(shape: Sequence[int], itemsize: int, *, target_bytes: int = 64 * 2**20) -> tuple:
    """Dask chunks of whole (y, x) slices, about ``target_bytes`` each (bytes)."""
    plane = max(1, int(np.prod(shape[1:])) * itemsize)
    nz = max(1, min(int(shape[0]), target_bytes // plane))
    return (nz, *[int(s) for s in shape[1:]])


def to_native(data: Any) -> Any:
    """The array with native byte order (numpy or dask), unchanged if already native."""
    dt = np.dtype(data.dtype)
    if dt.isnative or dt.byteorder == "|":
        return data
    return data.astype(dt.newbyteorder("="))


def lazy_blocks(
    read_block: Callable[[tuple[slice, ...]], np.ndarray],
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int],
    *,
    name: str,
) -> Any:
    """A dask array whose blocks are produced by ``read_block(slices)`` when computed.

    Nothing is read when the array is built (unlike ``da.from_array`` on a memory map,
    which may copy it), and the graph holds only the small ``read_block`` callable.

    Parameters
    ----------
    read_block : callable
        Returns the numpy block for a tuple of slices (z, y, x).
    shape, dtype : array shape and dtype.
    chunks : sequence of int
        Block shape.
    name : str
        Unique, deterministic name prefix (e.g. from the path).
    """
    import dask.array as da
    from dask.array.core import normalize_chunks

    norm = normalize_chunks(tuple(int(c) for c in chunks), tuple(int(s) for s in shape))

    def block(block_info: Any = None) -> np.ndarray:
        loc = block_info[None]["array-location"]
        return read_block(tuple(slice(a, b) for a, b in loc))

    return da.map_blocks(block, chunks=norm, dtype=dtype,
                         meta=np.empty((0,) * len(shape), dtype), name=name)


ASSUMED_SPACING_UM: tuple[float, float, float] = (1.0, 1.0, 1.0)


def file_spacing(spacing: Sequence[float] | None, metadata: dict[str, Any]) -> tuple[float, ...]:
    """The voxel size found in the file, or 1 µm isotropic recorded as an assumption.

    Parameters
    ----------
    spacing : sequence of float or None
        Voxel size (z, y, x) in µm read from the file's metadata; None or empty when absent.
    metadata : dict
        The volume's metadata, updated in place with ``spacing_source``: ``"file"`` or
        ``"assumed"`` (no voxel size in the file; 1 µm used, pass ``--voxel-size``).

    Returns
    -------
    tuple of float
        Spacing (z, y, x) in µm.
    """
    if spacing:
        metadata["spacing_source"] = "file"
        return tuple(float(s) for s in spacing)
    metadata["spacing_source"] = "assumed"
    return ASSUMED_SPACING_UM
