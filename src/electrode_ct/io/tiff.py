"""TIFF volumes: single/multi-page files, ImageJ hyperstacks, OME-TIFF, BigTIFF and
folders or globs of 2-D slices (natural sort order).

Spacing is read from (in order) tifffile's shaped JSON description written by
electrode-ct, ImageJ metadata (``spacing`` + resolution tags), OME physical sizes,
then the resolution tags with a micrometre/centimetre unit.
"""

from __future__ import annotations

import glob as _glob
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from electrode_ct.errors import FormatError, ShapeError
from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume

TIFF_EXTENSIONS = (".tif", ".tiff", ".btf", ".tf8", ".ome.tif", ".ome.tiff")
_IMAGEJ_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}
_FOUR_GB = 4 * 1024**3


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def slice_files(path: str | Path) -> list[Path]:
    """The TIFF slice files of a folder or glob pattern, naturally sorted."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = [Path(f) for f in _glob.glob(text)]
    else:
        p = Path(text)
        files = [f for f in p.iterdir() if f.suffix.lower() in (".tif", ".tiff")]
    files = [f for f in files if f.is_file() and not f.name.startswith(".")]
    return sorted(files, key=lambda f: natural_key(f.name))


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


def _unit_scale(unit: str | None) -> float | None:
    if unit is None:
        return None
    u = unit.strip().lower().replace("\\u00b5", "µ")
    table = {
        "micron": 1.0, "microns": 1.0, "um": 1.0, "µm": 1.0, "micrometer": 1.0,
        "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
        "cm": 1e4, "m": 1e6, "pixel": None, "": None,
    }
    return table.get(u)


def _spacing_from_tiff(tf: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, dict]:
    """Spacing (z, y, x) in µm and extra metadata from an open TIFF."""
    extra: dict[str, Any] = {}
    shaped = tf.shaped_metadata[0] if tf.shaped_metadata else None
    if shaped and "spacing_um" in shaped:
        if shaped.get("class_map"):
            extra["class_map"] = {str(k): int(v) for k, v in shaped["class_map"].items()}
        for key in ("origin_um",):
            if key in shaped:
                extra[key] = shaped[key]
        return tuple(float(s) for s in shaped["spacing_um"]), extra  # type: ignore[return-value]
    page = tf.pages[0]
    if tf.is_ome and tf.ome_metadata:
        try:
            from tifffile import xml2dict

            pix = xml2dict(tf.ome_metadata)["OME"]["Image"]
            pix = (pix[0] if isinstance(pix, list) else pix)["Pixels"]
            out = []
            for ax in "ZYX":
                size = pix.get(f"PhysicalSize{ax}")
                scale = _unit_scale(pix.get(f"PhysicalSize{ax}Unit", "µm")) or 1.0
                out.append(float(size) * scale if size else None)
            if out[1] and out[2]:
                return (out[0] or out[2], out[1], out[2]), extra
        except (KeyError, TypeError, ValueError, IndexError):
            pass
    ij = tf.imagej_metadata
    if ij:
        if ij.get("electrode_ct"):
            try:
                info = json.loads(ij["electrode_ct"])
                if info.get("class_map"):
                    extra["class_map"] = {str(k): int(v) for k, v in info["class_map"].items()}
            except (ValueError, TypeError):
                pass
        scale = _unit_scale(ij.get("unit"))
        xres = page.tags.get("XResolution")
        yres = page.tags.get("YResolution")
        if scale is not None and xres is not None and yres is not None:
            sx = scale / (xres.value[0] / xres.value[1])
            sy = scale / (yres.value[0] / yres.value[1])
            sz = float(ij.get("spacing", sx)) * scale
            return (sz, sy, sx), extra
    xres = page.tags.get("XResolution")
    yres = page.tags.get("YResolution")
    unit = page.tags.get("ResolutionUnit")
    if xres is not None and yres is not None and unit is not None:
        sx = _res_to_um(xres.value, unit.value)
        sy = _res_to_um(yres.value, unit.value)
        if sx and sy:
            return (sx, sy, sx), extra
    return None, extra


def _read_single(path: Path, lazy: bool) -> Volume:
    with tifffile.TiffFile(path) as tf:
        spacing, extra = _spacing_from_tiff(tf)
        series = tf.series[0]
        shape = series.shape
        axes = series.axes
        if lazy:
            store = tf.series[0].aszarr()
            import dask.array as da
            import zarr

            data: Any = da.from_zarr(zarr.open(store, mode="r"))
            data = data.map_blocks(np.asarray)
        else:
            data = series.asarray()
    data = _squeeze_to_3d(data, axes, shape, path)
    meta = {"tiff_axes": axes, **extra}
    return Volume(data, spacing=spacing or (1.0, 1.0, 1.0), metadata=meta)


def _squeeze_to_3d(data: Any, axes: str, shape: tuple, path: Path) -> Any:
    """Drop singleton channel/time axes; refuse real 4-D data."""
    if data.ndim <= 3:
        return data
    keep = [i for i, s in enumerate(shape) if s > 1]
    if len(keep) <= 3:
        return data.reshape(tuple(shape[i] for i in keep))
    raise ShapeError(
        f"{path}: expected a 2-D image or 3-D volume, got {data.ndim}-D data "
        f"of shape {tuple(shape)} (axes {axes})"
    )


def _read_folder(path: str, lazy: bool) -> Volume:
    files = slice_files(path)
    if not files:
        raise FormatError(f"{path}: no TIFF slices found (expected *.tif or *.tiff files)")
    with tifffile.TiffFile(files[0]) as tf:
        spacing, extra = _spacing_from_tiff(tf)
        first = tf.pages[0]
        shape2d, dtype = tuple(first.shape), first.dtype
    if len(shape2d) != 2:
        raise ShapeError(f"{files[0]}: expected 2-D slices in the folder, got shape {shape2d}")
    # check every header (cheap) so a bad slice is named before any data is read
    for f in files[1:]:
        try:
            with tifffile.TiffFile(f) as tf:
                page = tf.pages[0]
                shp, dt = tuple(page.shape), page.dtype
        except (OSError, ValueError, tifffile.TiffFileError) as exc:
            raise FormatError(f"{f}: unreadable TIFF slice ({exc})") from exc
        if shp != shape2d or dt != dtype:
            raise ShapeError(
                f"{f}: slice of shape {shp} and dtype {dt} differs from the first slice "
                f"{files[0].name} ({shape2d}, {dtype})"
            )
    if lazy:
        import dask
        import dask.array as da

        blocks = [
            da.from_delayed(dask.delayed(tifffile.imread)(str(f)), shape=shape2d, dtype=dtype)
            for f in files
        ]
        data: Any = da.stack(blocks, axis=0)
    else:
        data = np.empty((len(files), *shape2d), dtype=dtype)
        for i, f in enumerate(files):
            data[i] = tifffile.imread(f)
    meta = {"n_files": len(files), **extra}
    if spacing is not None:
        spacing = (spacing[2], spacing[1], spacing[2])
    vol = Volume(data, spacing=spacing or (1.0, 1.0, 1.0), metadata=meta)
    vol.metadata["ndim"] = 3
    return vol


def read_tiff(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a TIFF file, a folder of TIFF slices or a glob pattern of slices.

    Parameters
    ----------
    path : str
        File, folder or glob (``"scan/slice_*.tif"``).
    lazy : bool
        Return a dask-backed volume (headers checked, data not read).

    Returns
    -------
    Volume
    """
    p = Path(path)
    if p.is_dir() or any(ch in path for ch in "*?["):
        return _read_folder(path, lazy)
    try:
        return _read_single(p, lazy)
    except tifffile.TiffFileError as exc:
        raise FormatError(f"{path}: not a readable TIFF file ({exc})") from exc


def write_tiff(
    volume: Volume,
    path: Path,
    *,
    compression: str | None = "zlib",
    final: Path | None = None,
    **_: Any,
) -> None:
    """Write a volume as TIFF with its spacing and class map.

    uint8/uint16/float32 volumes are written as ImageJ hyperstacks (spacing visible in
    Fiji; class map in the ``electrode_ct`` property); other dtypes as a plain TIFF whose
    JSON description holds ``spacing_um`` and ``class_map``. Files past 4 GB are BigTIFF.
    """
    data = volume.numpy()
    if volume.is_2d:
        data = data[0]
    sz, sy, sx = volume.spacing
    info = {"class_map": volume.class_map}
    big = data.nbytes >= _FOUR_GB - 2**25
    if data.dtype in _IMAGEJ_DTYPES and not big:
        meta = {
            "axes": "ZYX" if data.ndim == 3 else "YX",
            "spacing": sz,
            "unit": "micron",
            "electrode_ct": json.dumps(info),
        }
        tifffile.imwrite(
            path, data, imagej=True, resolution=(1.0 / sx, 1.0 / sy), metadata=meta,
            compression=compression,
        )
    else:
        meta = {"axes": "ZYX" if data.ndim == 3 else "YX", "spacing_um": [sz, sy, sx], **info}
        tifffile.imwrite(
            path, data, bigtiff=big, resolution=(1.0 / sx, 1.0 / sy),
            resolutionunit="MICROMETER", metadata=meta, compression=compression,
        )


def _sniff_folder(path: Path) -> bool:
    text = str(path)
    if any(ch in text for ch in "*?["):
        return any(Path(f).suffix.lower() in (".tif", ".tiff") for f in _glob.glob(text))
    return path.is_dir() and any(
        f.suffix.lower() in (".tif", ".tiff") for f in path.iterdir()
    )


TIFF = register(
    Format("tiff", TIFF_EXTENSIONS, reader=read_tiff, writer=write_tiff, sniff=_sniff_folder)
)
