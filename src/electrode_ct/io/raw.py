"""Raw binary volumes: NRRD (``.nhdr`` detached / ``.nrrd`` attached header), MetaImage
(``.mhd`` detached / ``.mha`` attached) and plain ``.raw`` with explicit
``shape``/``dtype``/``byte_order``.

Header conventions: sizes are listed fastest axis first (x y z) and reversed to (z, y, x).
Spacing without a unit is taken as millimetres (the ITK / 3D Slicer convention) and
converted to µm; NRRD ``space units`` are honoured. The data file size must match the
header exactly (``byte skip: -1`` / ``HeaderSize = -1`` mean "data at the end of the file").
Uncompressed data are memory-mapped; lazy reads wrap the map in dask without reading it.
"""

from __future__ import annotations

import bz2
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError, InputError
from electrode_ct.io._meta import (
    check_allocation,
    check_ndim,
    declared_bytes,
    file_spacing,
    lazy_blocks,
    slab_chunks,
    to_native,
    unit_to_um,
)
from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume

_MM_UM = 1000.0

NRRD_TYPES: dict[str, str] = {}
for _names, _code in [
    (("signed char", "int8", "int8_t"), "i1"),
    (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    (("int", "signed int", "int32", "int32_t"), "i4"),
    (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    (("longlong", "long long", "long long int", "signed long long", "signed long long int",
      "int64", "int64_t"), "i8"),
    (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    (("float",), "f4"),
    (("double",), "f8"),
]:
    for _n in _names:
        NRRD_TYPES[_n] = _code

MET_TYPES = {
    "MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}


@dataclass
class RawLayout:
    """Where and how a raw array is stored.

    Attributes
    ----------
    data_file : pathlib.Path
        File holding the samples.
    shape : tuple of int
        Array shape (z, y, x) (or (y, x)).
    dtype : numpy.dtype
        Sample type with explicit byte order.
    offset : int
        Bytes before the data; -1 means the data end at the end of the file.
    encoding : str
        ``raw``, ``gzip``, ``bzip2`` or ``zlib``.
    spacing : tuple of float or None
        (z, y, x) in µm.
    origin : tuple of float or None
        (z, y, x) in µm.
    header : pathlib.Path or None
        The header file, for messages.
    """

    data_file: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int = 0
    encoding: str = "raw"
    spacing: tuple[float, float, float] | None = None
    origin: tuple[float, float, float] | None = None
    header: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _order_char(byte_order: str | None) -> str:
    bo = (byte_order or "little").strip().lower()
    table = {"little": "<", "<": "<", "le": "<", "big": ">", ">": ">", "be": ">",
             "native": "=", "=": "="}
    if bo not in table:
        raise InputError(f"byte order: expected little or big, got {byte_order!r}")
    return table[bo]


def _zyx(values: list[float]) -> tuple[float, float, float] | None:
    """(z, y, x) from values listed x-first; 2-D lists reuse x for z."""
    if len(values) == 2:
        values = [*values, values[0]]
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        return None
    return (values[2], values[1], values[0])


# ---------------------------------------------------------------------------- NRRD
def _nrrd_fields(path: Path) -> tuple[dict[str, str], int]:
    """Header fields of an NRRD file and the byte offset just after the header."""
    with open(path, "rb") as fh:
        magic = fh.readline()
        if not magic.startswith(b"NRRD000"):
            raise FormatError(f"{path}: not an NRRD header (expected a first line NRRD000N)")
        fields: dict[str, str] = {}
        while True:
            raw = fh.readline()
            if not raw or raw in (b"\n", b"\r\n"):
                break
            line = raw.decode("latin-1").rstrip("\r\n")
            if line.startswith("#") or (":=" in line and line.index(":=") == line.index(":")):
                continue
            if ":" not in line:
                raise FormatError(f"{path}: malformed NRRD header line {line!r}")
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        return fields, fh.tell()


def _nrrd_vectors(text: str) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for tok in re.findall(r"\([^)]*\)|none", text):
        if tok == "none":
            out.append(None)
        else:
            out.append(np.array([float(v) for v in tok.strip("()").split(",")]))
    return out


def nrrd_layout(path: Path) -> RawLayout:
    """Parse an NRRD header (``.nhdr`` or attached ``.nrrd``) into a :class:`RawLayout`."""
    fields, header_end = _nrrd_fields(path)
    try:
        type_name = fields["type"].lower()
        sizes = [int(s) for s in fields["sizes"].split()]
    except KeyError as exc:
        raise FormatError(f"{path}: NRRD header lacks the required field {exc}") from None
    if type_name not in NRRD_TYPES:
        raise FormatError(f"{path}: unsupported NRRD type {type_name!r}")
    code = NRRD_TYPES[type_name]
    endian = fields.get("endian", "little")
    dtype = np.dtype(("<" if endian == "little" else ">") + code) if code[1] != "1" else \
        np.dtype(code)
    encoding = fields.get("encoding", "raw").lower()
    encoding = {"gz": "gzip", "bz2": "bzip2"}.get(encoding, encoding)
    if encoding not in ("raw", "gzip", "bzip2"):
        raise FormatError(f"{path}: NRRD encoding {encoding!r} not supported (raw, gzip, bzip2)")
    data_name = fields.get("data file", fields.get("datafile"))
    if data_name:
        if data_name.split()[0] == "LIST" or len(data_name.split()) > 1:
            raise FormatError(f"{path}: multi-file NRRD data ({data_name!r}) is not supported")
        data_file = Path(data_name)
        if not data_file.is_absolute():
            data_file = path.parent / data_file
        offset = int(fields.get("byte skip", "0"))
    else:
        data_file, offset = path, header_end
    if int(fields.get("line skip", "0")) > 0:
        with open(data_file, "rb") as fh:
            for _ in range(int(fields["line skip"])):
                if not fh.readline():  # fewer lines than the header says: stop at the end
                    break
            offset = fh.tell() + max(offset, 0)
    # spacing: per-axis spacings or norms of the space directions, units when given
    steps: list[float | None] = [None] * len(sizes)
    if "space directions" in fields:
        vecs = _nrrd_vectors(fields["space directions"])
        if len(vecs) == len(sizes):
            steps = [float(np.linalg.norm(v)) if v is not None else None for v in vecs]
    elif "spacings" in fields:
        steps = [float(v) if v.lower() != "nan" else None for v in fields["spacings"].split()]
    units = re.findall(r'"([^"]*)"', fields.get("space units", fields.get("units", "")))
    spatial = [i for i, s in enumerate(steps) if s is not None]
    scale = _MM_UM
    if units:
        scales = {unit_to_um(u) for u in units if u}
        if len(scales) == 1 and None not in scales:
            scale = scales.pop()  # type: ignore[assignment]
    spacing = None
    if len(spatial) in (2, 3):
        spacing = _zyx([steps[i] * scale for i in spatial])  # type: ignore[operator]
    origin = None
    if "space origin" in fields:
        o = _nrrd_vectors(fields["space origin"])
        if o and o[0] is not None and len(o[0]) == 3:
            origin = (o[0][2] * scale, o[0][1] * scale, o[0][0] * scale)
    shape = tuple(reversed(sizes))
    return RawLayout(data_file, shape, dtype, offset, encoding, spacing, origin, header=path)


# ------------------------------------------------------------------------ MetaImage
def mhd_layout(path: Path) -> RawLayout:
    """Parse a MetaImage header (``.mhd`` or attached ``.mha``) into a :class:`RawLayout`."""
    fields: dict[str, str] = {}
    header_end = 0
    with open(path, "rb") as fh:
        for _ in range(200):
            raw = fh.readline()
            if not raw:
                break
            line = raw.decode("latin-1").strip()
            if "=" not in line:
                if line:
                    raise FormatError(f"{path}: malformed MetaImage header line {line!r}")
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            fields[key.lower()] = value
            if key.lower() == "elementdatafile":
                header_end = fh.tell()
                break
    try:
        dims = [int(v) for v in fields["dimsize"].split()]
        met = fields["elementtype"].upper()
        data_name = fields["elementdatafile"]
    except KeyError as exc:
        raise FormatError(f"{path}: MetaImage header lacks the required field {exc}") from None
    if met not in MET_TYPES:
        raise FormatError(f"{path}: unsupported MetaImage element type {met!r}")
    channels = int(fields.get("elementnumberofchannels", "1"))
    if channels != 1:
        dims = [channels, *dims]
    msb = fields.get("elementbyteordermsb", fields.get("binarydatabyteordermsb", "False"))
    order = ">" if msb.lower() == "true" else "<"
    code = MET_TYPES[met]
    dtype = np.dtype(code) if code[1] == "1" else np.dtype(order + code)
    if data_name == "LOCAL":
        data_file, offset = path, header_end
    elif data_name.split()[0] == "LIST" or len(data_name.split()) > 1:
        raise FormatError(f"{path}: multi-file MetaImage data ({data_name!r}) is not supported")
    else:
        data_file = Path(data_name)
        if not data_file.is_absolute():
            data_file = path.parent / data_file
        offset = int(fields.get("headersize", "0"))
    compressed = fields.get("compresseddata", "False").lower() == "true"
    sp = fields.get("elementspacing", fields.get("elementsize"))
    spacing = _zyx([float(v) * _MM_UM for v in sp.split()]) if sp else None
    org = fields.get("offset", fields.get("origin", fields.get("position")))
    origin = None
    if org and len(org.split()) == 3:
        ox, oy, oz = (float(v) * _MM_UM for v in org.split())
        origin = (oz, oy, ox)
    return RawLayout(data_file, tuple(reversed(dims)), dtype, offset,
                     "zlib" if compressed else "raw", spacing, origin, header=path)


# ------------------------------------------------------------------------- loading
def _decompress(blob: bytes, encoding: str, *, limit: int) -> bytes:
    """Decompressed ``blob`` (gzip, bzip2 or zlib), never more than ``limit`` bytes."""
    if encoding == "bzip2":
        return bz2.BZ2Decompressor().decompress(blob, max_length=limit)
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    return zlib.decompressobj(wbits).decompress(blob, limit)


def _load(layout: RawLayout, lazy: bool) -> Any:
    """The array described by ``layout`` (memory-mapped/dask for raw encoding)."""
    df = layout.data_file
    where = f"{df}" if layout.header in (None, df) else f"{df} (header {layout.header.name})"
    if not df.is_file():
        raise InputError(f"{where}: data file not found")
    check_ndim(layout.shape, where=where)
    if any(s < 1 for s in layout.shape):
        raise FormatError(f"{where}: sizes must be positive integers, got {layout.shape}")
    n = declared_bytes(layout.shape, layout.dtype.itemsize)
    size = df.stat().st_size
    if layout.encoding == "raw":
        offset = size - n if layout.offset < 0 else layout.offset
        if offset < 0 or offset + n != size:
            raise FormatError(
                f"{where}: file size {size} bytes does not match the header: expected "
                f"{n} bytes of data ({'x'.join(map(str, layout.shape))} {layout.dtype.name}) "
                f"after {max(layout.offset, 0)} header bytes"
                + (" (set the skip to -1 or fix the shape/dtype)" if size > n else "")
            )
        if n == 0:
            return np.zeros(layout.shape, layout.dtype.newbyteorder("="))
        dtype, shape = layout.dtype, layout.shape

        def read_block(index: tuple[slice, ...]) -> np.ndarray:
            mm = np.memmap(df, dtype=dtype, mode="r", offset=offset, shape=shape)
            return to_native(np.array(mm[index]))

        if lazy:
            chunks = slab_chunks(shape, dtype.itemsize)
            from dask.base import tokenize

            token = tokenize(str(df.resolve()), df.stat().st_mtime_ns, offset, dtype.str, shape)
            name = f"raw-{token}"
            return lazy_blocks(read_block, shape, dtype.newbyteorder("="), chunks, name=name,
                               where=where)
        return read_block(tuple(slice(None) for _ in shape))
    check_allocation(layout.shape, layout.dtype, stored_bytes=size - max(layout.offset, 0),
                     where=where)
    with open(df, "rb") as fh:
        fh.seek(max(layout.offset, 0))
        blob = fh.read()
    try:
        blob = _decompress(blob, layout.encoding, limit=n + 1)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise FormatError(f"{where}: corrupt {layout.encoding} data ({exc})") from exc
    if len(blob) != n:
        raise FormatError(
            f"{where}: decompressed size {len(blob)} bytes does not match the header "
            f"({n} bytes expected for {'x'.join(map(str, layout.shape))} {layout.dtype.name})"
        )
    return to_native(np.frombuffer(blob, layout.dtype).reshape(layout.shape).copy())


def _volume(layout: RawLayout, lazy: bool, fmt: str) -> Volume:
    data = _load(layout, lazy)
    if data.ndim > 3:
        from electrode_ct.io._meta import squeeze_to_3d

        data = squeeze_to_3d(data, where=str(layout.header or layout.data_file))
    big = layout.dtype.byteorder == ">"
    meta = {"data_file": str(layout.data_file), "byte_order": "big" if big else "little",
            "encoding": layout.encoding, "header_format": fmt}
    return Volume(data, spacing=file_spacing(layout.spacing, meta),
                  origin=layout.origin or (0.0, 0.0, 0.0), metadata=meta)


def read_nrrd(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read an NRRD volume (``.nhdr`` with its data file, or ``.nrrd``).

    Parameters
    ----------
    path : str
        Header path.
    lazy : bool
        Dask-backed memory map (raw encoding only; compressed data are decoded).

    Returns
    -------
    Volume
        Spacing (µm) from ``space directions``/``spacings`` and ``space units``
        (millimetres when no unit is given).
    """
    return _volume(nrrd_layout(Path(path)), lazy, "nrrd")


def read_mhd(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a MetaImage volume (``.mhd`` + data file, or ``.mha``).

    ``ElementSpacing`` and ``Offset`` are millimetres (ITK convention), converted to µm.
    """
    return _volume(mhd_layout(Path(path)), lazy, "mhd")


def _sibling_header(p: Path) -> Path | None:
    for ext in (".nhdr", ".mhd"):
        cand = p.with_suffix(ext)
        if cand.is_file():
            return cand
    return None


def read_raw(
    path: str,
    *,
    lazy: bool = False,
    shape: tuple[int, ...] | None = None,
    dtype: str | np.dtype | None = None,
    byte_order: str | None = "little",
    offset: int = 0,
    **_: Any,
) -> Volume:
    """Read a headerless raw file with an explicit layout.

    Parameters
    ----------
    path : str
        The ``.raw`` file. Without ``shape``, a sibling ``.nhdr``/``.mhd`` of the same
        stem is used when present.
    lazy : bool
        Return a dask-backed memory map.
    shape : tuple of int
        (z, y, x) (or (y, x)) in voxels.
    dtype : str or numpy.dtype
        Sample type, e.g. ``uint16``, ``float32``.
    byte_order : str
        ``little`` (default) or ``big``.
    offset : int
        Header bytes to skip at the start of the file.

    Raises
    ------
    InputError
        When ``shape``/``dtype`` are missing.
    FormatError
        When the file size does not equal ``offset + prod(shape) * itemsize``.
    """
    p = Path(path)
    if shape is None:
        header = _sibling_header(p)
        if header is not None:
            reader = read_nrrd if header.suffix == ".nhdr" else read_mhd
            return reader(str(header), lazy=lazy)
        raise InputError(
            f"{path}: a raw file needs its layout; give --shape Z Y X and --dtype "
            "(and --byte-order big if needed)"
        )
    if dtype is None:
        raise InputError(f"{path}: a raw file needs --dtype (e.g. uint16, float32)")
    try:
        base = np.dtype(dtype)
    except TypeError as exc:
        raise InputError(f"{path}: unknown dtype {dtype!r}") from exc
    dt = base.newbyteorder(_order_char(byte_order)) if base.itemsize > 1 else base
    shp = tuple(int(s) for s in shape)
    if any(s < 1 for s in shp):
        raise InputError(f"{path}: shape must be positive integers, got {shp}")
    layout = RawLayout(p, shp, dt, int(offset), header=None)
    return _volume(layout, lazy, "raw")


NRRD = register(Format("nrrd", (".nhdr", ".nrrd"), reader=read_nrrd))
MHD = register(Format("mhd", (".mhd", ".mha"), reader=read_mhd))
RAW = register(Format("raw", (".raw", ".bin", ".vol"), reader=read_raw))
