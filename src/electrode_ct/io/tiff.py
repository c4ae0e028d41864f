"""TIFF volumes: single/multi-page files, ImageJ hyperstacks, OME-TIFF, BigTIFF and
folders or globs of 2-D slices (natural sort order).

Spacing is read from (in order) tifffile's shaped JSON description written by
electrode-ct, OME physical sizes, ImageJ metadata (``spacing`` + resolution tags +
``unit``), then the resolution tags with a micrometre/millimetre/centimetre unit.

Truncated files raise :class:`~electrode_ct.errors.FormatError` when opened (lazy or
not): the IFD chain, the page count promised by the ImageJ/OME/shaped metadata and the
end of every strip/tile are checked against the file size. Folders of slices are
checked with a minimal first-IFD parser (a few hundred bytes per file), so thousands of
slices open in well under a second.
"""

from __future__ import annotations

import glob as _glob
import json
import logging
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from electrode_ct.errors import FormatError, ShapeError
from electrode_ct.io._meta import (
    GuardedSource,
    check_allocation,
    file_spacing,
    lazy_blocks,
    parse_class_map,
    slab_chunks,
    squeeze_to_3d,
    unit_to_um,
)
from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume, register_direct_reader

TIFF_EXTENSIONS = (".tif", ".tiff", ".btf", ".tf8", ".ome.tif", ".ome.tiff")
_SLICE_SUFFIXES = (".tif", ".tiff")
_IMAGEJ_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}
_FOUR_GB = 4 * 1024**3
_LAZY_SLAB_BYTES = 64 * 2**20


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def slice_files(path: str | Path) -> list[Path]:
    """The TIFF slice files of a folder or glob pattern, naturally sorted."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = [Path(f) for f in _glob.glob(text)]
        files = [f for f in files if not f.name.startswith(".") and f.is_file()]
    else:  # scandir knows the entry types without a stat per file
        files = [Path(e.path) for e in os.scandir(text)
                 if e.name.lower().endswith(_SLICE_SUFFIXES) and not e.name.startswith(".")
                 and e.is_file()]
    return sorted(files, key=lambda f: natural_key(f.name))


# ------------------------------------------------------------------------- metadata
def _res_to_um(value: Any, unit: Any) -> float | None:
    """Convert a TIFF resolution (pixels per unit) to µm per pixel."""
    try:
        num, den = value
        ppu = num / den
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not ppu or ppu <= 0:
        return None
    unit_val = int(getattr(unit, "value", unit) or 1)
    scale = {3: 1e4, 4: 1e3, 5: 1.0}.get(unit_val)  # centimetre, millimetre, micrometre
    if scale is None:
        return None
    return scale / ppu


def _ome_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float] | None:
    """(z, y, x) µm from the OME-XML physical sizes of the first image, or None."""
    try:
        image = tifffile.xml2dict(tf.ome_metadata)["OME"]["Image"]
        pix = (image[0] if isinstance(image, list) else image)["Pixels"]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    out: list[float | None] = []
    for ax in "ZYX":
        size = pix.get(f"PhysicalSize{ax}")
        scale = unit_to_um(pix.get(f"PhysicalSize{ax}Unit", "µm"))
        out.append(float(size) * scale if size and scale else None)
    if out[1] and out[2]:
        return (out[0] or out[2], out[1], out[2])
    return None


def _spacing_from_tiff(tf: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, dict]:
    """Spacing (z, y, x) in µm and extra metadata (class map, origin) from an open TIFF."""
    extra: dict[str, Any] = {}
    shaped = tf.shaped_metadata[0] if tf.shaped_metadata else None
    if shaped and "spacing_um" in shaped:
        cm = parse_class_map(shaped.get("class_map"))
        if cm:
            extra["class_map"] = cm
        if "origin_um" in shaped:
            extra["origin_um"] = shaped["origin_um"]
        return tuple(float(s) for s in shaped["spacing_um"]), extra  # type: ignore[return-value]
    page = tf.pages.first
    if tf.is_ome and tf.ome_metadata:
        sp = _ome_spacing(tf)
        if sp is not None:
            return sp, extra
    xres = page.tags.get("XResolution")
    yres = page.tags.get("YResolution")
    ij = tf.imagej_metadata
    if ij:
        info: dict[str, Any] = {}
        if ij.get("electrode_ct"):
            try:
                info = json.loads(ij["electrode_ct"])
            except (ValueError, TypeError):
                info = {}
            cm = parse_class_map(info.get("class_map"))
            if cm:
                extra["class_map"] = cm
            if info.get("origin_um"):
                extra["origin_um"] = info["origin_um"]
        scale = unit_to_um(ij.get("unit"))
        if scale is not None and xres is not None and yres is not None:
            sx = scale / (xres.value[0] / xres.value[1])
            sy = scale / (yres.value[0] / yres.value[1])
            sz = float(ij.get("spacing", sx / scale)) * scale
            exact = info.get("spacing_um")
            # the rational resolution tags round the spacing; our exact copy wins while
            # it still agrees with them (i.e. nobody rescaled the image since)
            if exact and np.allclose(exact, (sz, sy, sx), rtol=1e-5):
                return tuple(float(v) for v in exact), extra  # type: ignore[return-value]
            return (sz, sy, sx), extra
    unit = page.tags.get("ResolutionUnit")
    if xres is not None and yres is not None and unit is not None:
        sx = _res_to_um(xres.value, unit.value)
        sy = _res_to_um(yres.value, unit.value)
        if sx and sy:
            return (sx, sy, sx), extra
    return None, extra


# ------------------------------------------------------------------ integrity checks
class _LogCatcher(logging.Handler):
    """Collects tifffile warnings (it logs, rather than raises, on broken IFD chains)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _strict_tifffile(path: Path) -> Iterator[None]:
    """Turn tifffile's logged structural warnings into a :class:`FormatError`."""
    logger = logging.getLogger("tifffile")
    catcher = _LogCatcher()
    logger.addHandler(catcher)
    old = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(catcher)
        logger.propagate = old
    # only warnings about the page chain or shape; benign tag warnings are ignored
    bad = [m for m in catcher.messages
           if any(w in m.lower() for w in ("page offset", "failed to reshape", "truncat"))]
    if bad:
        raise FormatError(f"{path}: damaged or truncated TIFF ({bad[0].split('> ')[-1]})")


def _expected_pages(tf: tifffile.TiffFile) -> int | None:
    """Number of pages promised by shaped/ImageJ/OME metadata, or None when unknown."""
    if tf.shaped_metadata and "shape" in tf.shaped_metadata[0]:
        shape = tf.shaped_metadata[0]["shape"]
        spp = tf.pages.first.samplesperpixel
        plane = int(np.prod(tf.pages.first.shape))
        total = int(np.prod(shape))
        return max(1, total // plane) if plane and spp else None
    if tf.imagej_metadata and "images" in tf.imagej_metadata:
        return int(tf.imagej_metadata["images"])
    return None


def _check_complete(tf: tifffile.TiffFile, series: Any, path: Path) -> None:
    """Raise :class:`FormatError` when pages or pixel data lie beyond the end of the file."""
    size = tf.filehandle.size
    want = _expected_pages(tf)
    have = len(series.pages) if hasattr(series, "pages") else len(tf.pages)
    if want is not None and have < want and not tf.is_ome:
        raise FormatError(
            f"{path}: truncated TIFF: metadata promises {want} pages, found {have}"
        )
    if series.dataoffset is not None:  # contiguous: one cheap check
        end = series.dataoffset + series.nbytes
    else:
        pages = [p for p in series.pages if p is not None]
        offs, counts = pages[-1].dataoffsets, pages[-1].databytecounts
        end = max((o + c for o, c in zip(offs, counts, strict=True)), default=0)
    if end > size:
        raise FormatError(
            f"{path}: truncated TIFF: pixel data end at byte {end} but the file has {size} bytes"
        )


def _check_segments(series: Any, path: Path) -> None:
    """Raise :class:`FormatError` when a compressed page lists fewer or more strips/tiles
    than its size implies (a damaged length or RowsPerStrip tag would otherwise make the
    decoder visit up to millions of absent segments)."""
    if not _compressed(series) or getattr(series, "keyframe", None) is None:
        return
    key = series.keyframe
    want, have = int(np.prod(key.chunked)), len(key.dataoffsets)
    if want != have:
        raise FormatError(
            f"{path}: damaged TIFF: a {key.imagelength}x{key.imagewidth} page in strips or "
            f"tiles of {'x'.join(str(c) for c in key.chunks)} needs {want:,} of them, the "
            f"file lists {have:,}")


def _compressed(series: Any) -> bool:
    """Whether the pages of a series store compressed pixel data (its key frame's)."""
    key = getattr(series, "keyframe", None)
    return key is None or int(getattr(key, "compression", 1)) != 1


# ----------------------------------------------------------------- single TIFF file
def _read_single(path: Path, lazy: bool) -> Volume:
    with _strict_tifffile(path), tifffile.TiffFile(path) as tf:
        if not tf.series or len(tf.pages) == 0:
            raise FormatError(
                f"{path}: truncated or damaged TIFF (no image page: the file ends before the "
                f"first image directory)"
            )
        spacing, extra = _spacing_from_tiff(tf)
        series = tf.series[0]
        _check_complete(tf, series, path)
        shape, axes = series.shape, series.axes
        check_allocation(shape, series.dtype, stored_bytes=tf.filehandle.size, where=str(path),
                         compressed=_compressed(series), in_memory=not lazy)
        _check_segments(series, path)
        if lazy:
            import dask.array as da
            import zarr

            store = zarr.open(series.aszarr(), mode="r")
            token = (path.stat().st_mtime_ns, series.index if hasattr(series, "index") else 0)
            data: Any = da.from_array(GuardedSource(store, where=str(path), token=token),
                                      chunks=store.chunks)
        else:
            data = series.asarray()
    data = squeeze_to_3d(data, where=str(path), axes=axes)
    if tuple(data.shape) != tuple(shape) and len(shape) > 3:
        extra["tiff_squeezed_from"] = list(shape)
    origin = extra.pop("origin_um", None)
    meta = {"tiff_axes": axes, **extra}
    return Volume(data, spacing=file_spacing(spacing, meta),
                  origin=origin or (0.0, 0.0, 0.0), metadata=meta)


# ------------------------------------------------------------------ folder of slices
_TYPE_FMT = {1: "B", 3: "H", 4: "I", 16: "Q", 6: "b", 8: "h", 9: "i", 17: "q"}
_WANTED = {256, 257, 258, 259, 273, 277, 279, 284, 322, 323, 324, 325, 339}


def quick_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int, int] | None:
    """Shape, dtype, end of pixel data and size (bytes) of the first IFD of a TIFF file.

    A minimal parser (classic and BigTIFF) that reads only the header, the first IFD and
    the strip/tile offset and byte-count arrays: three to five small reads per file.

    Returns
    -------
    tuple or None
        ``((height, width) or (height, width, samples), dtype, data_end, file_size)``;
        None when the file uses a layout this parser does not handle (the caller falls
        back to tifffile).

    Raises
    ------
    FormatError
        When the file is not a TIFF or its IFD lies beyond the end of the file.
    """
    with open(path, "rb", buffering=0) as fh:  # unbuffered: read only the bytes asked for
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(16)
        if head[:2] not in (b"II", b"MM") or len(head) < 8:
            raise FormatError(f"{path}: not a TIFF file")
        bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(bo + "H", head[2:4])[0]
        if magic == 42:
            ifd, cfmt, efmt, inline = struct.unpack(bo + "I", head[4:8])[0], "H", "HHI4s", 4
        elif magic == 43 and len(head) == 16:
            ifd, cfmt, efmt, inline = struct.unpack(bo + "Q", head[8:16])[0], "Q", "HHQ8s", 8
        else:
            raise FormatError(f"{path}: not a TIFF file (magic {magic})")
        fh.seek(ifd)
        csize, esize = struct.calcsize(cfmt), struct.calcsize(bo + efmt)
        raw = fh.read(csize)
        if len(raw) < csize:
            raise FormatError(f"{path}: truncated TIFF (first IFD beyond the end of the file)")
        n = struct.unpack(bo + cfmt, raw)[0]
        if ifd + csize + n * esize > size:  # checked before reading: n comes from the file
            raise FormatError(f"{path}: truncated TIFF (first IFD cut short)")
        block = fh.read(n * esize)
        tags: dict[int, tuple[int, ...]] = {}
        for tag, typ, count, value in struct.iter_unpack(bo + efmt, block):
            if tag not in _WANTED:
                continue
            fmt = _TYPE_FMT.get(typ)
            if fmt is None:
                return None
            nbytes = count * struct.calcsize(fmt)
            if nbytes <= inline:
                data = value[:nbytes]
            else:
                at = struct.unpack(bo + ("I" if inline == 4 else "Q"), value)[0]
                if at + nbytes > size:  # a damaged count must not size the read
                    raise FormatError(
                        f"{path}: damaged TIFF (tag {tag} declares {count:,} values at byte "
                        f"{at}, beyond the end of the {size}-byte file)")
                fh.seek(at)
                data = fh.read(nbytes)
            tags[tag] = struct.unpack(f"{bo}{count}{fmt}", data)
    try:
        width, height = tags[256][0], tags[257][0]
    except KeyError:
        return None
    spp = tags.get(277, (1,))[0]
    bits = tags.get(258, (1,))[0]
    sfmt = tags.get(339, (1,))[0]
    kind = {1: "u", 2: "i", 3: "f"}.get(sfmt)
    if kind is None or bits not in (8, 16, 32, 64) or (spp > 1 and tags.get(284, (1,))[0] != 1):
        return None
    dtype = np.dtype(f"{bo}{kind}{bits // 8}").newbyteorder("=")
    offs = tags.get(273) or tags.get(324)
    counts = tags.get(279) or tags.get(325)
    if not offs or not counts or len(offs) != len(counts):
        return None
    end = max(o + c for o, c in zip(offs, counts, strict=True))
    shape = (height, width) if spp == 1 else (height, width, spp)
    return shape, dtype, end, size


def _mismatch(path: Path, shape: tuple, dtype: Any, first: Path, shape2d: tuple,
              want: np.dtype) -> ShapeError:
    return ShapeError(
        f"{path}: slice of shape {shape} and dtype {dtype} differs from the first slice "
        f"{first.name} ({shape2d}, {want})"
    )


def _slice_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one slice, checking that its data are complete."""
    try:
        quick = quick_header(path)
        if quick is not None:
            shape, dtype, end, size = quick
            if end > size:
                raise FormatError(
                    f"{path}: truncated TIFF slice: pixel data end at byte {end}, file has {size}"
                )
            return shape, dtype
        with tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            _check_complete(tf, tf.series[0], path)
            return tuple(page.shape), page.dtype
    except (OSError, ValueError, struct.error, tifffile.TiffFileError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{path}: unreadable TIFF slice ({exc})") from exc


def _read_slab(
    files: list[Path], shape2d: tuple[int, ...], dtype: np.dtype, *, first: Path,
    workers: int = 1, out: np.ndarray | None = None,
) -> np.ndarray:
    """Read slices straight into one array, checking each slice's shape and dtype against
    the first slice; ``workers`` > 1 reads files in threads (file reads release the GIL,
    which helps on network shares and cold disks). ``out`` is filled when given."""
    if out is None:
        out = np.empty((len(files), *shape2d), dtype=dtype)

    def one(i: int) -> None:
        f = files[i]
        try:
            with tifffile.TiffFile(f) as tf:
                page = tf.pages.first
                if tuple(page.shape) != shape2d or page.dtype != dtype:
                    raise _mismatch(f, tuple(page.shape), page.dtype, first, shape2d, dtype)
                page.asarray(out=out[i])
        except (OSError, ValueError, RuntimeError, struct.error) as exc:
            if isinstance(exc, ShapeError):
                raise
            _slice_header(f)  # names truncation precisely when that is the cause
            raise FormatError(f"{f}: unreadable TIFF slice ({exc})") from exc

    if workers > 1 and len(files) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(files))))
    else:
        for i in range(len(files)):
            one(i)
    return out


def _lazy_slices(files: list[Path], shape2d: tuple[int, ...], dtype: np.dtype) -> Any:
    """A dask array reading slabs of whole slices, one task per slab (~64 MB)."""
    nz = slab_chunks((len(files), *shape2d), dtype.itemsize, target_bytes=_LAZY_SLAB_BYTES)[0]

    def read_block(index: tuple[slice, ...]) -> np.ndarray:
        slab = _read_slab(files[index[0]], shape2d, dtype, first=files[0])
        return slab[(slice(None), *index[1:])]

    from dask.base import tokenize

    token = tokenize([str(f) for f in files], files[0].stat().st_mtime_ns)
    arr = lazy_blocks(read_block, (len(files), *shape2d), dtype, (nz, *shape2d),
                      name=f"tiff-slices-{token}", where=str(files[0].parent))

    def fill(out: np.ndarray) -> None:
        _read_slab(files, shape2d, dtype, first=files[0], workers=min(4, os.cpu_count() or 1),
                   out=out)

    register_direct_reader(arr.name, fill)
    return arr


def _read_folder(path: str, lazy: bool) -> Volume:
    files = slice_files(path)
    if not files:
        raise FormatError(f"{path}: no TIFF slices found (expected *.tif or *.tiff files)")
    with _strict_tifffile(files[0]), tifffile.TiffFile(files[0]) as tf:
        spacing, extra = _spacing_from_tiff(tf)
        first = tf.pages.first
        shape2d, dtype = tuple(first.shape), first.dtype
    if len(shape2d) != 2:
        raise ShapeError(
            f"{files[0]}: expected 2-D grey slices in the folder, got shape {shape2d}"
        )
    check_allocation(shape2d, dtype, stored_bytes=files[0].stat().st_size, where=str(files[0]),
                     compressed=True, in_memory=False)
    check_allocation((len(files), *shape2d), dtype, stored_bytes=None, where=path,
                     in_memory=not lazy)
    if lazy:
        # every header is checked (minimal IFD parse) so a bad slice is named before any
        # data are read; eager reads check each slice as they read it
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            headers = list(pool.map(_slice_header, files))
        for f, (shp, dt) in zip(files, headers, strict=True):
            if shp != shape2d or dt != dtype:
                raise _mismatch(f, shp, dt, files[0], shape2d, dtype)
        data: Any = _lazy_slices(files, shape2d, dtype)
    else:
        data = _read_slab(files, shape2d, dtype, first=files[0],
                          workers=min(4, os.cpu_count() or 1))
    meta = {"n_files": len(files), **extra}
    meta.pop("origin_um", None)
    if spacing is not None:
        spacing = (spacing[2], spacing[1], spacing[2])
    vol = Volume(data, spacing=file_spacing(spacing, meta), metadata=meta)
    vol.metadata["ndim"] = 3
    return vol


def read_tiff(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a TIFF file, a folder of TIFF slices or a glob pattern of slices.

    Parameters
    ----------
    path : str
        File, folder or glob (``"scan/slice_*.tif"``).
    lazy : bool
        Return a dask-backed volume (headers checked, pixel data not read).

    Returns
    -------
    Volume
        Spacing in µm from the metadata (1 µm when none), ``class_map`` when stored.

    Raises
    ------
    FormatError
        Not a TIFF, damaged or truncated file/slice.
    ShapeError
        Slices of different shapes/dtypes; more than 3 non-singleton axes.
    """
    p = Path(path)
    if p.is_dir() or any(ch in path for ch in "*?["):
        return _read_folder(path, lazy)
    try:
        return _read_single(p, lazy)
    except tifffile.TiffFileError as exc:
        raise FormatError(f"{path}: not a readable TIFF file ({exc})") from exc


# -------------------------------------------------------------------------- writing
def _pages(data: Any) -> Iterator[np.ndarray]:
    """2-D pages of a dask array, computing one z-block at a time."""
    for z0 in range(0, data.shape[0], max(1, data.chunksize[0])):
        slab = np.asarray(data[z0:z0 + data.chunksize[0]].compute())
        yield from slab


def write_tiff(
    volume: Volume,
    path: Path,
    *,
    compression: str | None = "zlib",
    **_: Any,
) -> None:
    """Write a volume as TIFF with its spacing and class map.

    uint8/uint16/float32 volumes are written as ImageJ hyperstacks (spacing visible in
    Fiji; class map and origin in the ``electrode_ct`` property); other dtypes as a plain
    TIFF whose JSON description holds ``spacing_um``, ``origin_um`` and ``class_map``.
    Files past 4 GB are BigTIFF. Lazy volumes are written one z-block at a time.

    Parameters
    ----------
    volume : Volume
        Data to write.
    path : pathlib.Path
        Destination (the registry's temporary name).
    compression : str or None
        TIFF compression (``zlib`` default, None for uncompressed).
    **_
        Options of other formats (e.g. the registry's ``final`` name), ignored.
    """
    data: Any = volume.data if volume.is_lazy else np.asarray(volume.data)
    if volume.is_2d:
        data = data[0]
    shape, dtype = tuple(int(s) for s in data.shape), np.dtype(data.dtype)
    if volume.is_lazy and data.ndim == 3:
        data = _pages(data)
    elif volume.is_lazy:
        data = np.asarray(data.compute())
    sz, sy, sx = volume.spacing
    info: dict[str, Any] = {"class_map": volume.class_map,
                            "spacing_um": [float(v) for v in volume.spacing]}
    if any(volume.origin):
        info["origin_um"] = list(volume.origin)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    big = nbytes >= _FOUR_GB - 2**25
    axes = "ZYX" if len(shape) == 3 else "YX"
    common = {"shape": shape, "dtype": dtype, "compression": compression,
              "resolution": (1.0 / sx, 1.0 / sy)}
    if dtype in _IMAGEJ_DTYPES and not big:
        meta = {"axes": axes, "spacing": sz, "unit": "micron", "electrode_ct": json.dumps(info)}
        tifffile.imwrite(path, data, imagej=True, metadata=meta, **common)
    else:
        meta = {"axes": axes, "spacing_um": [sz, sy, sx], **info}
        tifffile.imwrite(path, data, bigtiff=big, resolutionunit="MICROMETER", metadata=meta,
                         photometric="minisblack", **common)


def _sniff_folder(path: Path) -> bool:
    text = str(path)
    if any(ch in text for ch in "*?["):
        return any(f.lower().endswith(_SLICE_SUFFIXES) for f in _glob.glob(text))
    return path.is_dir() and any(e.name.lower().endswith(_SLICE_SUFFIXES)
                                 for e in os.scandir(path))


TIFF = register(
    Format("tiff", TIFF_EXTENSIONS, reader=read_tiff, writer=write_tiff, sniff=_sniff_folder)
)
