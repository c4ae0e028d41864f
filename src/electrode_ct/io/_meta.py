"""Metadata helpers shared by the format modules: units, class maps, spacing attributes,
dimensionality checks and lazy-array wrapping."""

from __future__ import annotations

import json
import os
import tokenize
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import ElectrodeCTError, FormatError, ShapeError
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
    where: str | None = None,
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
    where : str, optional
        File name for the error raised when a block cannot be decoded.
    """
    import dask.array as da
    from dask.array.core import normalize_chunks

    norm = normalize_chunks(tuple(int(c) for c in chunks), tuple(int(s) for s in shape))

    def block(block_info: Any = None) -> np.ndarray:
        loc = block_info[None]["array-location"]
        try:
            return read_block(tuple(slice(a, b) for a, b in loc))
        except ElectrodeCTError:
            raise
        except READ_ERRORS as exc:
            raise read_error(where or name, exc) from exc

    return da.map_blocks(block, chunks=norm, dtype=dtype,
                         meta=np.empty((0,) * len(shape), dtype), name=name)


# what readers and third-party decoders raise on damaged data (zlib.error derives from
# Exception directly; blosc and imagecodecs raise RuntimeError subclasses; the XML parser
# of OME metadata raises a SyntaxError subclass; numpy's .npy header parser a TokenError;
# C decoders given negative sizes by a damaged header raise SystemError)
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, ArithmeticError,
    AttributeError, AssertionError, EOFError, SyntaxError, SystemError, zlib.error,
    tokenize.TokenError,
)


def read_error(where: str, exc: BaseException) -> FormatError:
    """The one-line :class:`FormatError` for a decoder failure on ``where``."""
    return FormatError(f"{where}: cannot read: damaged or truncated data "
                       f"({type(exc).__name__}: {exc})")


class GuardedSource:
    """An array-like over a file's array (h5py dataset, zarr array) for ``dask.array``:
    reads that fail in the decoder raise :class:`FormatError` naming the file, so lazy
    volumes fail with the project's error when computed, as eager reads do.

    Parameters
    ----------
    source : array-like
        Object with ``shape``, ``dtype`` and ``__getitem__``.
    where : str
        File (and inner path) for messages.
    token : object
        Deterministic identity for dask names (path, modification time, ...).
    """

    def __init__(self, source: Any, *, where: str, token: Any) -> None:
        self.source = source
        self.shape = tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)
        self.where = where
        self.token = token

    def __dask_tokenize__(self) -> Any:
        return ("guarded-source", self.where, self.token, self.shape, self.dtype.str)

    def __getitem__(self, index: Any) -> np.ndarray:
        try:
            return np.asarray(self.source[index])
        except ElectrodeCTError:
            raise
        except READ_ERRORS as exc:
            raise read_error(self.where, exc) from exc


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


# Deflate (zlib/gzip, the TIFF/HDF5/NRRD default) expands at most ~1032-fold; a header that
# declares more than this many times the bytes stored is refused in eager reads unless the
# array is small enough to be harmless.
MAX_EXPANSION = 1032
SMALL_ARRAY_BYTES = 256 * 2**20


def available_memory() -> int:
    """Bytes of memory available to this process now (psutil, else /proc, else 2**62)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with dask.distributed
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 2**62


def declared_bytes(shape: Sequence[int], itemsize: int) -> int:
    """Bytes of an array of ``shape`` (exact Python integer, never overflows)."""
    n = int(itemsize)
    for s in shape:
        n *= int(s)
    return n


def check_allocation(
    shape: Sequence[int], dtype: Any, *, stored_bytes: int | None, where: str,
    compressed: bool = True, in_memory: bool = True,
) -> None:
    """Refuse, before allocating, an array larger than its file can hold.

    Parameters
    ----------
    shape, dtype : array shape and dtype declared by the file's header.
    stored_bytes : int or None
        Bytes of data the file holds for the array (file size, stored chunk bytes);
        None when unknown (only the memory check applies).
    where : str
        File name for the message.
    compressed : bool
        False for raw samples: the declared size must fit in ``stored_bytes`` exactly.
        True for compressed or chunked data: at most :data:`MAX_EXPANSION` times
        ``stored_bytes`` (arrays under :data:`SMALL_ARRAY_BYTES` always pass).
    in_memory : bool
        The array is to be allocated now (eager read): it must also fit in the memory
        available. Lazy reads pass False.

    Raises
    ------
    FormatError
        When the declared size is impossible for the file or exceeds the memory available.
    """
    from electrode_ct.errors import FormatError

    dt = np.dtype(dtype)
    n = declared_bytes(shape, dt.itemsize)
    what = f"{'x'.join(str(int(s)) for s in shape)} {dt.name} ({n:,} bytes)"
    if stored_bytes is not None:
        limit = stored_bytes if not compressed else max(
            stored_bytes * MAX_EXPANSION, SMALL_ARRAY_BYTES)
        if n > limit:
            held = "holds" if not compressed else "stores (compressed)"
            raise FormatError(
                f"{where}: the header declares {what} but the file {held} only "
                f"{stored_bytes:,} bytes; damaged header or truncated file"
            )
    free = available_memory() if in_memory else n
    if n > free:
        raise FormatError(
            f"{where}: the header declares {what}, more than the {free:,} bytes of memory "
            "available; read it lazily (electrode_ct.io.read(..., lazy=True)) or crop it"
        )
