"""NumPy ``.npy`` volumes (memory-mapped reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError
from electrode_ct.io._meta import (
    check_allocation,
    file_spacing,
    lazy_blocks,
    slab_chunks,
    squeeze_to_3d,
)
from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _check_size(p: Path) -> None:
    """Refuse a header whose shape needs more bytes than the file holds (before mapping)."""
    from numpy.lib import format as npf

    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) < 10 or not head.startswith(b"\x93NUMPY"):
            raise FormatError(f"{p}: not a .npy file (no NUMPY magic)")
        if (head[6], head[7]) not in ((1, 0), (2, 0), (3, 0)):  # numpy sizes its read by it
            raise FormatError(f"{p}: unknown .npy format version {head[6]}.{head[7]} "
                              "(expected 1.0, 2.0 or 3.0); damaged file")
        width = 2 if head[6] == 1 else 4  # header length: 2 bytes in format 1.0, else 4
        end = 8 + width + int.from_bytes(head[8:8 + width], "little")
        if end > size:  # numpy would first allocate the declared header length
            raise FormatError(f"{p}: the header claims {end} bytes but the file has {size}; "
                              "damaged or truncated .npy file")
        fh.seek(0)
        version = npf.read_magic(fh)
        header = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
        shape, _, dtype = header(fh)
        if dtype.hasobject:
            raise FormatError(f"{p}: holds Python objects (dtype {dtype}); expected numbers")
        stored = size - fh.tell()
    check_allocation(shape, dtype, stored_bytes=stored, where=str(p), compressed=False,
                     in_memory=False)


def read_npy(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a ``.npy`` file memory-mapped; spacing from a ``<file>.npy.json`` sidecar if present."""
    p = Path(path)
    _check_size(p)
    arr = np.load(p, mmap_mode="r", allow_pickle=False)
    meta: dict[str, Any] = {}
    spacing: Any = None
    side = _sidecar(p)
    if side.exists():
        info = json.loads(side.read_text())
        spacing = info.get("spacing_um", spacing)
        if info.get("class_map"):
            meta["class_map"] = info["class_map"]
    if lazy:  # blocks read from a fresh memory map when computed (from_array may copy it)
        from dask.base import tokenize

        def read_block(index: tuple[slice, ...]) -> np.ndarray:
            return np.array(np.load(p, mmap_mode="r", allow_pickle=False)[index])

        token = tokenize(str(p.resolve()), p.stat().st_mtime_ns, arr.shape, arr.dtype.str)
        chunks = slab_chunks(arr.shape, arr.dtype.itemsize) if arr.ndim else arr.shape
        data: Any = lazy_blocks(read_block, arr.shape, arr.dtype, chunks, name=f"npy-{token}",
                                 where=str(p))
    else:
        data = arr
    data = squeeze_to_3d(data, where=str(p))  # singleton axes dropped, real 4-D refused
    return Volume(data, spacing=file_spacing(spacing, meta), metadata=meta)


def write_npy(volume: Volume, path: Path, *, final: Path | None = None, **_: Any) -> None:
    """Write a ``.npy`` file plus a ``<final>.json`` sidecar holding spacing and class map."""
    from electrode_ct.io._atomic import atomic_path

    data = volume.numpy()
    if volume.is_2d:
        data = data[0]
    with open(path, "wb") as fh:
        np.save(fh, data, allow_pickle=False)
    info = {"spacing_um": list(volume.spacing), "class_map": volume.class_map}
    with atomic_path(_sidecar(Path(final or path))) as tmp:
        tmp.write_text(json.dumps(info))


NPY = register(Format("npy", (".npy",), reader=read_npy, writer=write_npy))
