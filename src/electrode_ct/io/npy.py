"""NumPy ``.npy`` volumes (memory-mapped reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_npy(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a ``.npy`` file memory-mapped; spacing from a ``<file>.npy.json`` sidecar if present."""
    p = Path(path)
    arr = np.load(p, mmap_mode="r", allow_pickle=False)
    meta: dict[str, Any] = {}
    spacing: Any = (1.0, 1.0, 1.0)
    side = _sidecar(p)
    if side.exists():
        info = json.loads(side.read_text())
        spacing = info.get("spacing_um", spacing)
        if info.get("class_map"):
            meta["class_map"] = info["class_map"]
    if lazy:
        import dask.array as da

        data: Any = da.from_array(arr, chunks="auto")
    else:
        data = arr
    return Volume(data, spacing=spacing, metadata=meta)


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
