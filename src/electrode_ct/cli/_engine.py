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
from electrode_ct.compute.engine import DONE_FOLDER, ZarrRef, check_blocks, default_block_shape
from electrode_ct.io.tables import dumps
from electrode_ct.volume import Volume


def _identity(src: str) -> list[Any]:
    from electrode_ct.io.registry import split_dataset

    path = split_dataset(src)[0]
    st = os.stat(path)
    return [os.path.abspath(path), src, st.st_size, st.st_mtime_ns]


def plan_blocks(cfg: ComputeConfig, shape: Sequence[int], halo: Sequence[int],
                bytes_per_voxel: float, *, slab: bool = False) -> tuple[int, ...]:
    """Block shape of a command: ``--block-shape`` or one from the memory limit.

    With ``slab`` (per-slice filters) a block is whole (y, x) planes, as many as the
    budget allows. Refused before any work (one line naming both) when a block is larger
    than the volume, smaller than the halo, or needs more than the memory limit.
    """
    limit = cfg.worker_memory()
    if cfg.block_shape is not None:
        blocks = tuple(int(b) for b in cfg.block_shape)
        check_blocks(shape, blocks, halo)  # the given shape, before slabs widen it
    else:
        blocks = default_block_shape(shape, halo=halo, bytes_per_voxel=bytes_per_voxel,
                                     memory_limit=limit)
    if slab:
        plane = int(shape[1]) * int(shape[2]) * bytes_per_voxel
        fit = max(1, int(limit / 4 // plane) - 2 * int(halo[0]))
        depth = blocks[0] if cfg.block_shape is not None else min(blocks[0], fit)
        blocks = (min(int(depth), int(shape[0])), int(shape[1]), int(shape[2]))
    check_blocks(shape, blocks, halo, bytes_per_voxel=bytes_per_voxel, memory_limit=limit)
    return blocks


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
                               class_map=class_map)

    def finish(self, ref: ZarrRef) -> Path:
        """Move or write the output to OUT and remove the work folder."""
        from electrode_ct.io import atomic_path, read, write

        store = Path(ref.path)
        shutil.rmtree(store / DONE_FOLDER, ignore_errors=True)
        if self.out.name.lower().endswith((".zarr", ".zr")):
            with atomic_path(self.out) as tmp:
                os.replace(store, tmp)
        else:
            info(f"writing {self.out}")
            write(read(str(store), lazy=True), self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.out
