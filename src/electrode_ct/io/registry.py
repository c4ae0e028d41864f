"""Format registry: choose a reader/writer by extension (or content) and dispatch."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electrode_ct.errors import FormatError, InputError
from electrode_ct.io._meta import READ_ERRORS
from electrode_ct.volume import Volume


@dataclass(frozen=True)
class Format:
    """One volume format.

    Attributes
    ----------
    name : str
        Short name (``tiff``, ``npy``, ...), stored as ``metadata["format"]``.
    extensions : tuple of str
        Lower-case suffixes, e.g. ``(".tif", ".tiff")`` (compound ones like ``".ome.tif"`` allowed).
    reader : callable or None
        ``reader(path, **options) -> Volume``.
    writer : callable or None
        ``writer(volume, path, *, final, **options) -> None``; writes to ``path`` (a temporary
        name; the registry renames it to ``final`` when complete). Sidecar files, if any, are
        written beside ``final``.
    sniff : callable or None
        ``sniff(path) -> bool`` for paths whose extension does not decide (folders, globs).
    """

    name: str
    extensions: tuple[str, ...]
    reader: Callable[..., Volume] | None = None
    writer: Callable[..., None] | None = None
    sniff: Callable[[Path], bool] | None = None


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add (or replace) a format in the registry."""
    _FORMATS[fmt.name] = fmt
    return fmt


def formats() -> dict[str, Format]:
    """All registered formats by name."""
    return dict(_FORMATS)


def split_dataset(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """Split ``file.h5::/entry/data`` into the file path and the inner dataset path."""
    text = os.fspath(path)
    if "::" in text:
        file_part, inner = text.split("::", 1)
        return file_part, inner or None
    return text, None


def _by_extension(path: str) -> Format | None:
    low = path.lower().rstrip("/\\")
    best: tuple[int, Format] | None = None
    for fmt in _FORMATS.values():
        for ext in fmt.extensions:
            if low.endswith(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), fmt)
    return best[1] if best else None


def find_format(path: str | os.PathLike[str], *, format: str | None = None) -> Format:
    """Choose the format for ``path`` (explicit name, extension, then content sniffing).

    Raises
    ------
    FormatError
        When no registered format matches.
    """
    if format is not None:
        if format not in _FORMATS:
            raise FormatError(
                f"unknown format {format!r}; known formats: {', '.join(sorted(_FORMATS))}"
            )
        return _FORMATS[format]
    file_part, _ = split_dataset(path)
    fmt = _by_extension(file_part)
    if fmt is not None:
        return fmt
    p = Path(file_part)
    for cand in _FORMATS.values():
        if cand.sniff is not None and cand.sniff(p):
            return cand
    exts = sorted({e for f in _FORMATS.values() for e in f.extensions})
    raise FormatError(
        f"{file_part}: unknown file type; expected one of {', '.join(exts)}, "
        "a folder of TIFF slices or a glob pattern"
    )


def _check_exists(file_part: str) -> None:
    if any(ch in file_part for ch in "*?["):
        return
    if not Path(file_part).exists():
        raise InputError(f"{file_part}: no such file or folder")


def _check_voxels(vol: Volume, where: str) -> None:
    """Refuse volumes no command can use: no voxel at all, or non-real voxel types."""
    if vol.dtype.kind not in "biuf":
        raise FormatError(f"{where}: expected real numeric voxels (bool, integer or float), "
                          f"got dtype {vol.dtype}")
    if 0 in tuple(vol.shape):
        raise FormatError(f"{where}: the volume is empty (shape {tuple(vol.shape)}); expected "
                          "at least one voxel")


def read(
    path: str | os.PathLike[str],
    *,
    lazy: bool = False,
    format: str | None = None,
    voxel_size: Any = None,
    **options: Any,
) -> Volume:
    """Read a volume or image from any supported format.

    Parameters
    ----------
    path : path-like
        File, folder of slices, glob pattern, or ``file.h5::/inner/dataset``.
    lazy : bool
        Return a dask-backed volume without loading the data (where the format allows).
    format : str, optional
        Force a format by name instead of detecting it.
    voxel_size : float or 3 floats, optional
        Override the voxel size read from the file metadata (µm; one value or Z Y X).
    **options
        Format-specific options (e.g. ``shape``, ``dtype``, ``byte_order`` for raw).

    Returns
    -------
    Volume
        With ``metadata["format"]`` and ``metadata["source"]`` set.

    Raises
    ------
    InputError, FormatError, ShapeError
        Missing path, unknown type, unreadable/truncated file, wrong dimensionality.
    """
    from electrode_ct.volume import as_spacing

    file_part, _ = split_dataset(path)
    _check_exists(file_part)
    fmt = find_format(path, format=format)
    if fmt.reader is None:
        raise FormatError(f"{file_part}: format {fmt.name!r} cannot be read")
    try:
        vol = fmt.reader(os.fspath(path), lazy=lazy, **options)
    except InputError as exc:
        if file_part in str(exc):
            raise
        raise type(exc)(f"{file_part}: {exc}") from exc  # every read error names the file
    except KeyboardInterrupt:
        raise
    except (EOFError, struct.error) as exc:
        raise FormatError(
            f"{file_part}: cannot read as {fmt.name}: the file ends early (truncated or damaged)"
        ) from exc
    except READ_ERRORS as exc:
        raise FormatError(
            f"{file_part}: cannot read as {fmt.name} ({type(exc).__name__}: {exc})"
        ) from exc
    _check_voxels(vol, file_part)
    vol.metadata.setdefault("source", os.fspath(path))
    vol.metadata.setdefault("format", fmt.name)
    vol.metadata.setdefault("original_dtype", str(vol.dtype))
    if voxel_size is not None:
        vol.spacing = as_spacing(voxel_size)
        vol.metadata["spacing_source"] = "user"
    return vol


def write(
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    **options: Any,
) -> Path:
    """Write a volume, atomically (temporary name, then rename).

    Parameters
    ----------
    volume : Volume
        The volume (a lazy volume is written block by block where the format allows).
    path : path-like
        Destination; its extension chooses the format unless ``format`` is given.
        ``file.h5::/inner/path`` names the dataset inside an HDF5 file (or Zarr group).
    format : str, optional
        Format name.
    **options
        Format-specific options (e.g. ``chunks`` for Zarr/HDF5, ``compression``).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    from electrode_ct.io._atomic import atomic_path

    fmt = find_format(path, format=format)
    file_part, inner = split_dataset(path)
    if inner:  # ``out.h5::/entry/data`` names the inner dataset of container formats
        options.setdefault("dataset", inner)
        path = file_part
    if fmt.writer is None:
        raise FormatError(f"{path}: format {fmt.name!r} cannot be written")
    with atomic_path(path) as tmp:
        fmt.writer(volume, tmp, final=Path(path), **options)
    return Path(path)
