"""Provenance: package versions, input hashes, parameters and timings beside every output."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from importlib import metadata as _md
from pathlib import Path
from typing import Any

_PACKAGES = (
    "electrode-ct", "numpy", "scipy", "scikit-image", "edt", "connected-components-3d",
    "fastremap", "tifffile", "zarr", "dask", "h5py", "pandas", "pyarrow", "scikit-learn",
    "SimpleITK", "torch",
)


def versions() -> dict[str, str]:
    """Installed versions of Python and the packages electrode-ct relies on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


def file_hash(path: str | os.PathLike[str], *, max_bytes: int = 1 << 26) -> str:
    """SHA-256 of a file (of a folder: of its sorted file names, sizes and first bytes).

    For files larger than ``max_bytes`` the hash covers the size, the first and the
    last ``max_bytes // 2`` bytes (prefix ``partial-``), which is fast on 30 GB scans
    and still changes when the scan is rewritten.
    """
    p = Path(str(path).split("::", 1)[0])
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(f"{f.relative_to(p)}:{f.stat().st_size}".encode())
        return "dir-" + h.hexdigest()
    size = p.stat().st_size
    with open(p, "rb") as fh:
        if size <= max_bytes:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
            return h.hexdigest()
        h.update(str(size).encode())
        h.update(fh.read(max_bytes // 2))
        fh.seek(size - max_bytes // 2)
        h.update(fh.read())
    return "partial-" + h.hexdigest()


def record(
    *,
    command: str,
    inputs: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    seed: int | None = None,
    timings_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A provenance record: command, inputs with hashes, parameters, seed, versions, time."""
    ins: dict[str, Any] = {}
    for key, path in (inputs or {}).items():
        if path is None:
            continue
        entry: dict[str, Any] = {"path": os.fspath(path)}
        try:
            entry["sha256"] = file_hash(path)
        except OSError:
            entry["sha256"] = None
        ins[key] = entry
    return {
        "command": command,
        "inputs": ins,
        "parameters": parameters or {},
        "seed": seed,
        "versions": versions(),
        "timings_s": timings_s or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
