"""HDF5 / NeXus volumes (``scan.h5::/entry/data/data``).

Reading chooses, in order: the dataset named after ``::``; the NeXus default
(``default`` attributes from the root to an ``NXdata`` group, then its ``signal``);
the ``signal`` of the first ``NXdata`` group found inside an ``NXentry``; the single
3-D dataset in the file. Voxel size (µm) comes from the dataset attributes
``spacing_um`` (ours), ``element_size_um`` (ilastik/vigra), ``voxel_size``/``pixel_size``
(+ ``units``), ``x/y/z_pixel_size`` attributes or datasets beside the data or in
``<entry>/instrument/detector`` (NXtomo), or the NXdata axis coordinates.

Writing creates ``/entry/data/data`` by default, marked as the NeXus default signal
(``NXentry``/``NXdata``), chunked and gzip-compressed, with ``spacing_um``,
``element_size_um``, ``origin_um`` and ``class_map`` (JSON) attributes. Lazy volumes
are written block by block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError, InputError
from electrode_ct.io._meta import (
    GuardedSource,
    check_allocation,
    check_ndim,
    file_spacing,
    parse_class_map,
    slab_chunks,
    spacing_attrs,
    triple,
    unit_to_um,
)
from electrode_ct.io.registry import Format, register, split_dataset
from electrode_ct.volume import Volume

HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".he5")
DEFAULT_DATASET = "/entry/data/data"
_MAX_LISTED = 12


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.ravel()[0])
    return str(value)


def list_datasets(h5file: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """All datasets of an open HDF5 file as (path, shape, dtype), in file order."""
    import h5py

    found: list[tuple[str, tuple[int, ...], str]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + name, tuple(int(s) for s in obj.shape), str(obj.dtype)))

    h5file.visititems(visit)
    return found


def _describe(datasets: list[tuple[str, tuple[int, ...], str]]) -> str:
    if not datasets:
        return "none (the file holds no datasets)"
    items = [f"{p} {'x'.join(map(str, s)) or 'scalar'} {d}" for p, s, d in datasets[:_MAX_LISTED]]
    more = len(datasets) - _MAX_LISTED
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def _nexus_signal(group: Any) -> Any | None:
    """The signal dataset of an NXdata group (``signal`` attribute, or a dataset with
    ``signal=1`` as in old NeXus files), or None."""
    import h5py

    name = _text(group.attrs.get("signal"))
    if name and isinstance(group.get(name), h5py.Dataset):
        return group[name]
    for obj in group.values():
        if isinstance(obj, h5py.Dataset) and _text(obj.attrs.get("signal")) in ("1", "True"):
            return obj
    return None


def _nx_class(obj: Any) -> str | None:
    return _text(obj.attrs.get("NX_class"))


def nexus_default(h5file: Any) -> Any | None:
    """The NeXus default plottable dataset of an open file, or None.

    Follows ``default`` attributes from the root (root → NXentry → NXdata → signal);
    without them, the signal of the first NXdata group in the first NXentry.
    """
    import h5py

    node: Any = h5file
    for _ in range(4):
        name = _text(node.attrs.get("default"))
        if not name or not isinstance(node.get(name), h5py.Group):
            break
        node = node[name]
        if _nx_class(node) == "NXdata":
            return _nexus_signal(node)
    entries = [
        g for g in h5file.values() if isinstance(g, h5py.Group) and _nx_class(g) == "NXentry"
    ]
    for entry in entries:
        groups = [entry, *[g for g in entry.values() if isinstance(g, h5py.Group)]]
        for g in groups:
            if _nx_class(g) == "NXdata":
                sig = _nexus_signal(g)
                if sig is not None:
                    return sig
    return None


def _choose_dataset(h5file: Any, inner: str | None, path: str) -> Any:
    import h5py

    if inner:
        obj = h5file.get(inner)
        if not isinstance(obj, h5py.Dataset):
            what = "is a group, not a dataset" if isinstance(obj, h5py.Group) else "not found"
            raise InputError(
                f"{path}: dataset {inner!r} {what}; available datasets: "
                f"{_describe(list_datasets(h5file))}"
            )
        return obj
    sig = nexus_default(h5file)
    if sig is not None:
        return sig
    datasets = list_datasets(h5file)
    vols = [d for d in datasets if len([s for s in d[1] if s > 1]) == 3]
    if len(vols) == 1:
        return h5file[vols[0][0]]
    if not vols:
        images = [d for d in datasets if len([s for s in d[1] if s > 1]) == 2]
        if len(images) == 1:
            return h5file[images[0][0]]
    why = "several 3-D datasets" if vols else "no 3-D dataset"
    raise InputError(
        f"{path}: {why} and no NeXus default; name one as {path}::/path/to/dataset "
        f"(available datasets: {_describe(datasets)})"
    )


def _scaled(value: Any, unit: Any) -> tuple[float, float, float] | None:
    scale = unit_to_um(unit) if unit is not None else 1.0
    t = triple(value)
    if t is None or scale is None:
        return None
    return (t[0] * scale, t[1] * scale, t[2] * scale)


def _value_um(obj: Any, attrs: Any) -> float | None:
    """A scalar length in µm from an attribute value or dataset (with ``units``)."""
    import h5py

    if isinstance(obj, h5py.Dataset):
        unit = _text(obj.attrs.get("units"))
        obj = obj[()]
    else:
        unit = None
    unit = unit or _text(attrs.get("units"))
    try:
        val = float(np.asarray(obj, dtype=float).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    scale = unit_to_um(unit) if unit else 1.0
    if scale is None or not np.isfinite(val) or val <= 0:
        return None
    return val * scale


def _pixel_sizes(container: Any, attrs: Any) -> tuple[float, float, float] | None:
    """x/y/z_pixel_size from attributes or member datasets of ``container``."""
    vals = {}
    for ax in "xyz":
        for key in (f"{ax}_pixel_size", f"pixel_size_{ax}", f"{ax}_voxel_size"):
            src = attrs.get(key) if key in attrs else None
            if src is None and hasattr(container, "get"):
                src = container.get(key)
            if src is not None:
                v = _value_um(src, attrs)
                if v:
                    vals[ax] = v
                    break
    if "x" not in vals:
        return None
    sx = vals["x"]
    sy = vals.get("y", sx)
    return (vals.get("z", sx), sy, sx)


def _axes_spacing(dset: Any) -> tuple[float, float, float] | None:
    """Spacing from the coordinate datasets named by the NXdata ``axes`` attribute."""
    parent = dset.parent
    if _nx_class(parent) != "NXdata":
        return None
    axes = parent.attrs.get("axes")
    if axes is None:
        return None
    names = [_text(a) for a in np.atleast_1d(axes)]
    if len(names) != 3:
        return None
    out = []
    for name, n in zip(names, dset.shape, strict=True):
        coord = parent.get(name) if name and name != "." else None
        if coord is None or coord.ndim != 1 or coord.shape[0] != n or n < 2:
            return None
        step = float(np.median(np.diff(coord[()].astype(float))))
        scale = unit_to_um(_text(coord.attrs.get("units")))
        if scale is None or step <= 0:
            return None
        out.append(abs(step) * scale)
    return (out[0], out[1], out[2])


def hdf5_spacing(dset: Any) -> tuple[float, float, float] | None:
    """Voxel size (z, y, x) in µm from a dataset's attributes and NeXus neighbours, or None."""
    a = dset.attrs
    for key in ("spacing_um", "element_size_um", "voxel_size_um", "pixel_size_um"):
        if key in a and (t := triple(a[key])) is not None:
            return t
    unit = _text(a.get("units")) or _text(a.get("unit"))
    for key in ("voxel_size", "pixel_size", "spacing", "element_size"):
        if key in a and (t := _scaled(a[key], unit)) is not None:
            return t
    found = _pixel_sizes(dset.parent, a)
    if found is None:
        found = _axes_spacing(dset)
    if found is None:
        parts = dset.name.strip("/").split("/")
        entry = dset.file.get(parts[0]) if len(parts) > 1 else None
        det = entry.get("instrument/detector") if entry is not None else None
        if det is not None:
            found = _pixel_sizes(det, det.attrs)
    return found


def _check_storage(dset: Any, file_part: str, where: str, lazy: bool) -> None:
    """Refuse a dataset whose declared size its file cannot hold (before reading it)."""
    size = Path(file_part).stat().st_size
    stored = int(dset.id.get_storage_size())
    contiguous = dset.chunks is None and stored > 0
    if contiguous:
        offset = dset.id.get_offset()
        if offset is not None and offset + stored > size:
            raise FormatError(
                f"{where}: the data end at byte {offset + stored} but the file has {size} "
                "bytes; truncated file"
            )
    check_allocation(dset.shape, dset.dtype, stored_bytes=min(stored, size), where=where,
                     compressed=not contiguous, in_memory=not lazy)


def read_hdf5(path: str, *, lazy: bool = False, dataset: str | None = None, **_: Any) -> Volume:
    """Read a dataset of an HDF5/NeXus file.

    Parameters
    ----------
    path : str
        ``file.h5`` or ``file.h5::/inner/dataset``.
    lazy : bool
        Return a dask-backed volume; the file stays open until the volume is dropped.
    dataset : str, optional
        Inner dataset path (same as the ``::`` suffix).

    Returns
    -------
    Volume
        With ``metadata["dataset"]`` (the inner path) and, when found, spacing in µm
        and ``class_map``.

    Raises
    ------
    InputError
        When the named dataset does not exist or no dataset can be chosen (the message
        lists the available datasets).
    FormatError
        When the file is not HDF5 or is damaged.
    ShapeError
        For data that is not 2-D or 3-D.
    """
    import h5py

    file_part, inner = split_dataset(path)
    inner = dataset or inner
    try:
        h5 = h5py.File(file_part, "r")
    except OSError as exc:
        raise FormatError(f"{file_part}: not a readable HDF5 file ({exc})") from exc
    keep_open = False
    try:
        dset = _choose_dataset(h5, inner, file_part)
        where = f"{file_part}::{dset.name}"
        check_ndim(dset.shape, where=where)
        _check_storage(dset, file_part, where, lazy)
        spacing = hdf5_spacing(dset)
        meta: dict[str, Any] = {"dataset": dset.name}
        cm = parse_class_map(dset.attrs.get("class_map"))
        if cm:
            meta["class_map"] = cm
        origin = triple(dset.attrs.get("origin_um"), positive=False)
        shape = tuple(s for s in dset.shape if s > 1) if dset.ndim > 3 else tuple(dset.shape)
        if lazy:
            import dask.array as da

            chunks: Any = "auto" if dset.chunks else slab_chunks(dset.shape, dset.dtype.itemsize)
            source = GuardedSource(dset, where=where, token=False)
            data: Any = da.from_array(source, chunks=chunks, name=False)
            keep_open = True
        else:
            data = dset[()]
        if data.ndim > 3 or (data.ndim == 3 and shape != tuple(data.shape)):
            data = data.reshape(shape)
    finally:
        if not keep_open:
            h5.close()
    return Volume(
        data, spacing=file_spacing(spacing, meta), origin=origin or (0.0, 0.0, 0.0), metadata=meta
    )


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    pref = (64, 256, 256)[-len(shape):]
    return tuple(max(1, min(s, c)) for s, c in zip(shape, pref, strict=True))


def write_hdf5(
    volume: Volume,
    path: Path,
    *,
    final: Path | None = None,
    dataset: str = DEFAULT_DATASET,
    chunks: tuple[int, ...] | None = None,
    compression: str | None = "gzip",
    compression_level: int = 1,
    **_: Any,
) -> None:
    """Write a volume to a new HDF5 file (NeXus layout by default).

    Parameters
    ----------
    volume : Volume
        Numpy or dask volume; a dask volume is written block by block.
    path : pathlib.Path
        Destination (the registry's temporary name).
    final : pathlib.Path, optional
        Final name (unused; the file has no sidecars).
    dataset : str
        Inner dataset path. With the default ``/entry/data/data`` the groups are marked
        ``NXentry``/``NXdata`` and the dataset is the NeXus default signal.
    chunks : tuple of int, optional
        Chunk shape (z, y, x) in voxels; default up to 64 × 256 × 256.
    compression : str or None
        ``"gzip"`` (default, readable everywhere), ``"lzf"`` or None.
    compression_level : int
        gzip level 1–9.
    """
    import h5py

    data = volume.data
    if volume.is_2d:
        data = data[0]
    shape = tuple(int(s) for s in data.shape)
    if chunks is not None:
        chunks = tuple(int(c) for c in chunks)[-len(shape):]
        if len(chunks) != len(shape) or min(chunks) < 1:
            raise InputError(f"chunks: expected {len(shape)} positive integers, got {chunks}")
        chunks = tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))
    else:
        chunks = _default_chunks(shape)
    opts: dict[str, Any] = {}
    if compression:
        opts = {"compression": compression, "shuffle": data.dtype.itemsize > 1}
        if compression == "gzip":
            opts["compression_opts"] = int(compression_level)
    name = "/" + dataset.strip("/")
    with h5py.File(path, "w") as h5:
        dset = h5.create_dataset(name, shape=shape, dtype=data.dtype, chunks=chunks, **opts)
        if isinstance(data, np.ndarray):
            dset[...] = data
        else:
            import dask.array as da

            da.store(data, dset, lock=True)
        attrs = spacing_attrs(volume)
        dset.attrs["spacing_um"] = np.asarray(attrs["spacing_um"], float)
        dset.attrs["element_size_um"] = np.asarray(attrs["spacing_um"], float)
        dset.attrs["origin_um"] = np.asarray(attrs["origin_um"], float)
        dset.attrs["axes"] = "zyx"[-len(shape):]
        if volume.class_map:
            dset.attrs["class_map"] = json.dumps(volume.class_map)
        if name == DEFAULT_DATASET:
            h5.attrs["default"] = "entry"
            h5["entry"].attrs["NX_class"] = "NXentry"
            h5["entry"].attrs["default"] = "data"
            h5["entry/data"].attrs["NX_class"] = "NXdata"
            h5["entry/data"].attrs["signal"] = "data"


def _sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


HDF5 = register(Format("hdf5", HDF5_EXTENSIONS, reader=read_hdf5, writer=write_hdf5, sniff=_sniff))
