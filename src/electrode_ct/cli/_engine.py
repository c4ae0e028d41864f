"""The engine path of a volume command: input as Zarr, a resumable output, the final file.

A command that runs on the block engine (``session()`` gave a client) works in a folder
next to OUT, ``.OUT.<key>.ect-work``, whose name is a hash of the input's identity (path,
size, modification time) and of the command's parameters:

- ``input.ome.zarr``: the input streamed slab by slab (skipped when the input is itself a
  Zarr array, which blocks then read directly);
- ``output.ome.zarr``: the blocks' output, with a marker per finished block.

An interrupted run leaves the folder, and the same command resumes where it stopped (a
changed parameter gives another folder). On success the output becomes OUT (renamed when
OUT is a ``.zarr``; else written block by block, or read back, into OUT's format) and the
folder is removed. No science in here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electrode_ct.cli._common import info, progress
from electrode_ct.compute.config import ComputeConfig
from electrode_ct.compute.engine import DONE_FOLDER, ZarrRef
from electrode_ct.io.tables import dumps
from electrode_ct.pipeline.compute import codec_for, plan_blocks

__all__ = ["EngineJob", "plan_blocks"]
from electrode_ct.volume import Volume


def _identity(src: str) -> list[Any]:
    from electrode_ct.io.registry import split_dataset

    path = split_dataset(src)[0]
    try:
        st = os.stat(path)
    except OSError:  # a glob of slices: the pattern names the input
        return [os.path.abspath(path), src]
    return [os.path.abspath(path), src, st.st_size, st.st_mtime_ns]


@dataclass
class EngineJob:
    """One command's run on the engine.

    Attributes
    ----------
    volume : Volume
        The input, read lazily.
    out : pathlib.Path
        Final output path.
    cfg : ComputeConfig
        Compute settings (memory limit, block shape).
    client : distributed.Client
    work : pathlib.Path
        The resumable work folder.
    """

    volume: Volume
    out: Path
    cfg: ComputeConfig
    client: Any
    work: Path

    @classmethod
    def start(cls, volume: Volume, src: str, out: Path, cfg: ComputeConfig, client: Any,
              params: dict[str, Any]) -> EngineJob:
        """A job whose work folder is keyed by the input's identity and ``params``."""
        key = dumps({"input": _identity(src), "params": params}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        work = out.parent / f".{out.name}.{digest}.ect-work"
        if work.exists():
            info(f"resuming from {work}")
        work.mkdir(parents=True, exist_ok=True)
        return cls(volume, out, cfg, client, work)

    @property
    def memory_limit(self) -> int:
        """Bytes per block task."""
        return self.cfg.worker_memory()

    def source(self) -> ZarrRef:
        """The input as a Zarr array (its own store, or a streamed copy in the folder)."""
        from electrode_ct.io.stream import zarr_source

        return zarr_source(self.volume, self.work / "input.ome.zarr",
                           memory_limit=self.memory_limit, reuse=True,
                           progress=lambda it: progress(it, desc="copy input"))

    def target(self, like: Volume, dtype: Any, chunks: Sequence[int],
               class_map: dict[str, int] | None = None) -> ZarrRef:
        """The output store (kept from an interrupted run with the same key)."""
        from electrode_ct.io.zarr import create_ome_zarr

        path = self.work / "output.ome.zarr"
        if (path / DONE_FOLDER).is_dir():
            return ZarrRef(str(path), "0")
        return create_ome_zarr(path, like, dtype=dtype, chunks=tuple(chunks),
                               class_map=class_map, compression=codec_for(dtype))

    def finish(self, ref: ZarrRef) -> Path:
        """Move or write the output to OUT and remove the work folder."""
        from electrode_ct.pipeline.compute import publish

        if not self.out.name.lower().endswith((".zarr", ".zr")):
            info(f"writing {self.out}")
        publish(ref, self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.out
