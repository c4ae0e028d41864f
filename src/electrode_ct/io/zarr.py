"""Zarr arrays and OME-Zarr multiscale images.

Reading: a ``.zarr`` folder holding an OME-Zarr image (v0.4 ``multiscales`` attributes, or
v0.5 ``ome.multiscales``), a plain Zarr array, or a group with ``::inner/path``. Level 0
(or ``level=N``) of the multiscale image is read; the voxel size comes from its
``coordinateTransformations`` (``scale``, converted to µm with the axis units) and the
origin from its ``translation``. Singleton ``t``/``c`` axes are dropped.

Writing: an OME-Zarr v0.4 image (Zarr format 2; ``zarr_format=3`` gives OME-Zarr v0.5)
with one resolution level ``0``, chunked and Blosc-zstd compressed, axes ``z, y, x`` in
micrometres, ``scale`` = spacing (µm), ``translation`` = origin (µm), the class map both
in ``electrode_ct`` attributes and as OME ``image-label`` properties. Lazy volumes are
written block by block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError, InputError, ShapeError
from electrode_ct.io._meta import (
    GuardedSource,
    check_allocation,
    check_ndim,
    file_spacing,
    parse_class_map,
    spacing_attrs,
    squeeze_to_3d,
    triple,
    unit_to_um,
)
from electrode_ct.io._zarr_guard import (
    check_chunk_grid,
    checked_store,
    direct_fill,
    guard_blosc,
)
from electrode_ct.io.registry import Format, register, split_dataset
from electrode_ct.volume import Volume, register_direct_reader

ZARR_EXTENSIONS = (".zarr", ".ome.zarr", ".zr")
OME_VERSION = "0.4"
DEFAULT_CHUNKS = (64, 256, 256)


def _ome_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """OME attributes of a group (v0.5 nests them under ``ome``)."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def _axis_names(axes: Any, ndim: int) -> list[dict[str, Any]]:
    if not axes:
        names = "tczyx"[-ndim:] if ndim <= 5 else None
        if names is None:
            return [{"name": f"dim{i}"} for i in range(ndim)]
        return [{"name": n, "type": "space" if n in "zyx" else None} for n in names]
    return [a if isinstance(a, dict) else {"name": str(a)} for a in axes]


def _scale_of(transforms: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Product of ``scale`` and sum of ``translation`` entries of a transformation list."""
    scale = np.ones(ndim)
    trans = np.zeros(ndim)
    for t in transforms or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = scale * np.asarray(t["scale"], float)
        elif t.get("type") == "translation" and "translation" in t:
            trans = trans + np.asarray(t["translation"], float)
    return scale, trans


def ome_geometry(
    multiscale: dict[str, Any], level: int, ndim: int, where: str
) -> tuple[str, tuple[float, float, float] | None, tuple[float, float, float] | None, list[str]]:
    """Dataset path, spacing (µm), origin (µm) and axis names of one multiscale level.

    Parameters
    ----------
    multiscale : dict
        One entry of the ``multiscales`` list.
    level : int
        Resolution level (0 = full resolution).
    ndim : int
        Number of dimensions of the level's array.
    where : str
        Store path, for messages.
    """
    datasets = multiscale.get("datasets") or []
    if not 0 <= level < len(datasets):
        raise InputError(
            f"{where}: resolution level {level} not found; the image has {len(datasets)} level(s)"
        )
    ds = datasets[level]
    axes = _axis_names(multiscale.get("axes"), ndim)
    if len(axes) != ndim:
        raise FormatError(
            f"{where}: multiscales axes {[a.get('name') for a in axes]} do not match the "
            f"{ndim}-D array"
        )
    scale, trans = _scale_of(ds.get("coordinateTransformations"), ndim)
    gscale, gtrans = _scale_of(multiscale.get("coordinateTransformations"), ndim)
    scale, trans = scale * gscale, trans * gscale + gtrans
    names = [str(a.get("name", "")).lower() for a in axes]
    spacing: list[float | None] = []
    origin: list[float] = []
    for ax in "zyx":
        if ax not in names:
            spacing.append(None)
            origin.append(0.0)
            continue
        i = names.index(ax)
        unit = axes[i].get("unit")
        factor = unit_to_um(unit) if unit else 1.0
        spacing.append(float(scale[i]) * factor if factor else None)
        origin.append(float(trans[i]) * (factor or 1.0))
    sp = None
    if spacing[1] and spacing[2]:
        sp = (spacing[0] or spacing[2], spacing[1], spacing[2])
    return str(ds["path"]), sp, (origin[0], origin[1], origin[2]), names


def _class_map_from_labels(attrs: dict[str, Any]) -> dict[str, int] | None:
    props = (_ome_attrs(attrs).get("image-label") or {}).get("properties") or []
    out = {}
    for p in props:
        if isinstance(p, dict) and "label-value" in p and ("class" in p or "name" in p):
            out[str(p.get("class", p.get("name")))] = int(p["label-value"])
    return out or None


def _open(path: str) -> Any:
    import zarr

    store: Any = checked_store(path) if Path(path).is_dir() else path
    try:
        return zarr.open(store, mode="r")
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable Zarr store ({exc})") from exc
    except Exception as exc:  # zarr raises its own error types for bad metadata
        if type(exc).__module__.startswith("zarr"):
            raise FormatError(f"{path}: not a readable Zarr store ({exc})") from exc
        raise


def _mtime_ns(path: Path) -> int:
    """Latest modification time (ns) of a store's files, for deterministic dask names."""
    return max((p.stat().st_mtime_ns for p in [path, *path.rglob("*")]), default=0)


def _stored_bytes(arr: Any) -> int | None:
    """Bytes the store holds for an array (chunks and metadata), None when unknown."""
    try:
        return int(arr.nbytes_stored())
    except (AttributeError, NotImplementedError, TypeError, ValueError, OSError):
        return None


def read_zarr(
    path: str, *, lazy: bool = False, level: int = 0, dataset: str | None = None, **_: Any
) -> Volume:
    """Read a Zarr array or OME-Zarr image.

    Parameters
    ----------
    path : str
        ``image.zarr`` or ``store.zarr::inner/group_or_array``.
    lazy : bool
        Return a dask-backed volume (no chunk is read).
    level : int
        Multiscale resolution level (0 = full resolution).
    dataset : str, optional
        Inner path, same as the ``::`` suffix.

    Returns
    -------
    Volume
        Spacing and origin in µm from the OME coordinate transformations (or our
        ``electrode_ct`` attributes); ``class_map`` when stored.

    Raises
    ------
    FormatError, InputError, ShapeError
        Not a Zarr store; missing inner path or level; data with more than 3
        non-singleton axes.
    """
    import zarr

    file_part, inner = split_dataset(path)
    inner = dataset or inner
    node = _open(file_part)
    where = file_part
    if inner:
        if not isinstance(node, zarr.Group) or inner.strip("/") not in node:
            raise InputError(f"{file_part}: no array or group {inner!r} in the Zarr store")
        node = node[inner.strip("/")]
        where = f"{file_part}::{inner}"
    group_attrs: dict[str, Any] = {}
    spacing = origin = None
    axes: list[str] = []
    if isinstance(node, zarr.Group):
        group_attrs = dict(node.attrs)
        ms = _ome_attrs(group_attrs).get("multiscales")
        if ms:
            first = node[str(ms[0]["datasets"][min(level, len(ms[0]["datasets"]) - 1)]["path"])]
            sub, spacing, origin, axes = ome_geometry(ms[0], level, first.ndim, where)
            arr = node[sub]
        else:
            arrays = [a for _, a in node.arrays()]
            if len(arrays) != 1:
                names = ", ".join(sorted(k for k, _ in node.members())) or "none"
                raise InputError(
                    f"{where}: a Zarr group without OME multiscales metadata; name the array "
                    f"as {file_part}::NAME (members: {names})"
                )
            arr = arrays[0]
    else:
        arr = node
    own = dict(group_attrs.get("electrode_ct") or {})
    arr_attrs = dict(arr.attrs)
    own.update(arr_attrs.get("electrode_ct") or {})
    for key in ("spacing_um", "origin_um", "class_map"):
        if key in arr_attrs and key not in own:
            own[key] = arr_attrs[key]
    if spacing is None:
        spacing = triple(own.get("spacing_um"))
    if origin is None:
        origin = triple(own.get("origin_um"), positive=False)
    for name, size in zip(axes, arr.shape, strict=False):
        if name in ("t", "c") and size > 1:
            raise ShapeError(
                f"{where}: expected one 3-D volume, got {size} along axis {name!r} "
                f"(shape {tuple(arr.shape)}, axes {''.join(axes)})"
            )
    check_ndim(arr.shape, where=where)
    check_allocation(arr.shape, arr.dtype, stored_bytes=_stored_bytes(arr), where=where,
                     in_memory=not lazy)
    check_chunk_grid(arr.shape, arr.chunks, np.dtype(arr.dtype).itemsize, where=where)
    guard_blosc(arr)
    source = GuardedSource(arr, where=where,
                           token=(str(Path(file_part).resolve()), arr.path,
                                  _mtime_ns(Path(file_part))) if lazy else None)
    if lazy:
        import dask.array as da

        data: Any = da.from_array(source, chunks=arr.chunks)
    else:
        data = source[...]
    data = squeeze_to_3d(data, where=where, axes=axes)
    if lazy:
        register_direct_reader(data.name, direct_fill(source, arr.shape, arr.chunks))
    meta: dict[str, Any] = {"zarr_path": arr.path, "ome": bool(axes)}
    cm = parse_class_map(own.get("class_map")) or _class_map_from_labels(group_attrs)
    if cm:
        meta["class_map"] = cm
    return Volume(
        data,
        spacing=file_spacing(spacing, meta),
        origin=origin or (0.0, 0.0, 0.0),
        metadata=meta,
    )


def _chunks_for(shape: tuple[int, ...], chunks: Any) -> tuple[int, ...]:
    if chunks is None:
        chunks = DEFAULT_CHUNKS[-len(shape):]
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) == 3 and len(shape) == 2:
        chunks = chunks[1:]
    if len(chunks) != len(shape) or min(chunks) < 1:
        raise InputError(f"chunks: expected {len(shape)} positive integers (Z Y X), got {chunks}")
    return tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))


def write_zarr(
    volume: Volume,
    path: Path,
    *,
    final: Path | None = None,
    chunks: tuple[int, ...] | None = None,
    compression: str | None = "zstd",
    compression_level: int = 3,
    zarr_format: int = 2,
    name: str | None = None,
    **_: Any,
) -> None:
    """Write a volume as an OME-Zarr image (one resolution level, path ``0``).

    Parameters
    ----------
    volume : Volume
        Numpy or dask volume; a dask volume is written block by block (rechunked to the
        Zarr chunk grid, so each chunk is written once, without loading the volume).
    path : pathlib.Path
        Destination folder (the registry's temporary name).
    final : pathlib.Path, optional
        Final name; its stem names the image.
    chunks : tuple of int, optional
        Chunk shape (z, y, x) in voxels; default up to 64 × 256 × 256.
    compression : str or None
        Blosc codec name (``zstd``, ``lz4``, ``zlib``) or None for no compression.
    compression_level : int
        Blosc level 0–9.
    zarr_format : int
        2 (OME-Zarr v0.4, default) or 3 (OME-Zarr v0.5).
    name : str, optional
        Image name stored in the metadata.
    """
    data = volume.data
    if volume.is_2d:
        data = data[0]
    group, arr = _create(path, tuple(int(s) for s in data.shape), data.dtype, chunks=chunks,
                         compression=compression, compression_level=compression_level,
                         zarr_format=zarr_format)
    if isinstance(data, np.ndarray):
        arr[...] = data
    else:
        import dask.array as da

        da.store(data.rechunk(arr.chunks), arr, lock=False)
    group.attrs.update(_group_attrs(volume, len(arr.shape), zarr_format,
                                    name or Path(final or path).name.split(".")[0]))


def _compressors(compression: str | None, level: int, itemsize: int, zarr_format: int) -> Any:
    if not compression:
        return None
    if zarr_format == 2:
        import numcodecs

        return numcodecs.Blosc(
            cname=compression, clevel=int(level),
            shuffle=numcodecs.Blosc.SHUFFLE if itemsize > 1 else numcodecs.Blosc.BITSHUFFLE)
    from zarr.codecs import BloscCodec

    return BloscCodec(cname=compression, clevel=int(level))


def _create(path: Path, shape: tuple[int, ...], dtype: Any, *, chunks: Any,
            compression: str | None, compression_level: int, zarr_format: int,
            lead: tuple[int, ...] = ()) -> tuple[Any, Any]:
    """A new group at ``path`` with an empty array ``0`` of ``(*lead, *shape)``."""
    import zarr

    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format: expected 2 or 3, got {zarr_format}")
    chunk_shape = (*lead, *_chunks_for(shape, chunks))
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    arr = group.create_array(
        "0", shape=(*lead, *shape), chunks=chunk_shape, dtype=dtype, fill_value=0,
        compressors=_compressors(compression, compression_level, np.dtype(dtype).itemsize,
                                 zarr_format))
    return group, arr


def _group_attrs(volume: Volume, ndim: int, zarr_format: int, name: str,
                 lead_axes: tuple[str, ...] = ()) -> dict[str, Any]:
    """OME-Zarr ``multiscales`` (+ ``image-label``) and electrode-ct attributes."""
    own = spacing_attrs(volume)
    axes_names = "zyx"[-ndim:]
    scale = [1.0] * len(lead_axes) + own["spacing_um"][-ndim:]
    transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
    if any(own["origin_um"]):
        transforms.append({"type": "translation",
                           "translation": [0.0] * len(lead_axes) + own["origin_um"][-ndim:]})
    version = OME_VERSION if zarr_format == 2 else "0.5"
    axes = [{"name": a, "type": "channel"} for a in lead_axes]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in axes_names]
    multiscale = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations":
                                              transforms}],
                  "name": name, "type": "none", "metadata": {"written_by": "electrode-ct"}}
    ome: dict[str, Any] = {"multiscales": [multiscale]}
    if volume.class_map:
        ome["image-label"] = {"properties": [
            {"label-value": int(v), "class": k}
            for k, v in sorted(volume.class_map.items(), key=lambda kv: kv[1])]}
    if zarr_format == 2:
        multiscale["version"] = version
        if "image-label" in ome:
            ome["image-label"]["version"] = version
        return {**ome, "electrode_ct": own}
    return {"ome": {"version": version, **ome}, "electrode_ct": own}


def create_ome_zarr(path: str | Path, like: Volume, *, dtype: Any, chunks: Any = None,
                    lead: tuple[int, ...] = (), lead_axes: tuple[str, ...] = (),
                    class_map: dict[str, int] | None = None,
                    compression: str | None = "zstd") -> Any:
    """An empty OME-Zarr image (v0.4, Zarr format 2) for blocks to write into.

    Parameters
    ----------
    path : str or pathlib.Path
        Destination folder (replaced if it exists).
    like : Volume
        Gives the shape (z, y, x), spacing and origin (µm); its data is not read.
    dtype : dtype
        Voxel type.
    chunks : tuple of int, optional
        Chunk shape (z, y, x); block tasks writing into it use blocks that are multiples
        of it.
    lead, lead_axes : tuple
        Leading axes (e.g. ``(3,)`` and ``("c",)`` for 3 class probabilities), one chunk
        each.
    class_map : dict, optional
        Class names of a label volume.
    compression : str or None
        Blosc codec.

    Returns
    -------
    electrode_ct.compute.engine.ZarrRef
        Reference to the array ``0``, for :func:`electrode_ct.compute.run_blocks`.
    """
    from electrode_ct.compute.engine import ZarrRef

    shape = tuple(int(s) for s in like.shape)
    group, _ = _create(Path(path), shape, dtype, chunks=chunks, compression=compression,
                       compression_level=3, zarr_format=2, lead=tuple(lead))
    meta = like.with_class_map(class_map) if class_map else like.with_class_map(None)
    group.attrs.update(_group_attrs(meta, len(shape), 2, Path(path).name.split(".")[0],
                                    tuple(lead_axes)))
    return ZarrRef(str(path), "0")


def _sniff(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).exists() for f in (".zgroup", ".zarray", "zarr.json")
    )


ZARR = register(Format("zarr", ZARR_EXTENSIONS, reader=read_zarr, writer=write_zarr, sniff=_sniff))
