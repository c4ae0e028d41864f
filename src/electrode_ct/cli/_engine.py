"""The engine path of a volume command: input as Zarr, a resumable output, the final file.

A command that runs on the block engine (``session()`` gave a client) works in a folder
next to OUT, ``.OUT.<key>.ect-work``, whose name is a hash of the input's identity (path,
size, modification time) and of the command's parameters:

- ``input.ome.zarr``: the input streamed slab by slab (skipped when the input is itself a
  Zarr array, which blocks then read directly);
- ``output.ome.zarr``: the blocks' output, with a marker per finished block;
- ``<name>.ome.zarr``: further outputs of the command (e.g. the probabilities and the
  uncertainty map of ``ect segment predict``), each with its markers.

An interrupted run leaves the folder, and the same command resumes where it stopped (a
changed parameter gives another folder). On success each output becomes its file (renamed
when it is a ``.zarr``; else written into its format) and the folder is removed. Also the
small reductions the commands report (class fractions, a mean). No science in here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._common import info, progress
from electrode_ct.compute.config import ComputeConfig
from electrode_ct.compute.engine import DONE_FOLDER, ZarrRef
from electrode_ct.errors import InputError
from electrode_ct.io.tables import dumps
from electrode_ct.pipeline.compute import codec_for, plan_blocks
from electrode_ct.volume import Volume

__all__ = ["EngineJob", "bar", "in_memory", "label_fractions", "mean_value", "plan_blocks",
           "refuse_2d"]


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
    extra : list
        Further outputs (store, final path, stack metadata) written by :meth:`finish`.
    """

    volume: Volume
    out: Path
    cfg: ComputeConfig
    client: Any
    work: Path
    extra: list[tuple[ZarrRef, Path, dict[str, Any] | None]] = field(default_factory=list)

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
        return self._store(self.work / "output.ome.zarr", like, dtype, chunks,
                           class_map=class_map)

    def output(self, out: Path, *, dtype: Any, chunks: Sequence[int],
               class_map: dict[str, int] | None = None, lead: tuple[int, ...] = (),
               lead_axes: tuple[str, ...] = (),
               class_names: Sequence[str] | None = None) -> ZarrRef:
        """A further output shaped like the input (with ``lead`` axes before z), written
        to ``out`` by :meth:`finish`; a non-Zarr ``out`` with ``lead`` axes is written as a
        (K·z, y, x) stack with ``class_names`` in its metadata, as the in-memory path does.
        """
        ref = self._store(self.work / f"{out.name}.ome.zarr", self.volume, dtype, chunks,
                          class_map=class_map, lead=lead, lead_axes=lead_axes)
        stack = {"class_names": list(class_names or [])} if lead else None
        self.extra.append((ref, out, stack))
        return ref

    def _store(self, path: Path, like: Volume, dtype: Any, chunks: Sequence[int],
               **kw: Any) -> ZarrRef:
        from electrode_ct.io.zarr import create_ome_zarr

        if (path / DONE_FOLDER).is_dir():  # kept from an interrupted run with the same key
            return ZarrRef(str(path), "0")
        return create_ome_zarr(path, like, dtype=dtype, chunks=tuple(chunks),
                               compression=codec_for(dtype), **kw)

    def finish(self, ref: ZarrRef | None = None) -> Path:
        """Move or write every output to its file and remove the work folder."""
        outputs = [(ref, self.out, None)] if ref is not None else []
        for store, out, stack in [*outputs, *self.extra]:
            _publish(store, out, stack, self.volume)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.out


def _publish(ref: ZarrRef, out: Path, stack: dict[str, Any] | None, like: Volume) -> None:
    """One output to its file: renamed or written (a stack as (K·z, y, x))."""
    from electrode_ct.pipeline.compute import publish

    if not out.name.lower().endswith((".zarr", ".zr")):
        info(f"writing {out}")
    if stack is None or out.name.lower().endswith((".zarr", ".zr")):
        publish(ref, out)
        return
    from electrode_ct.io import write

    data = ref.open("r")[...]
    write(like.with_data(data.reshape(-1, *data.shape[-2:]), **stack), out)


def refuse_2d(vol: Volume, what: str) -> None:
    """The engine runs on (z, y, x) volumes: a single 2-D image is refused."""
    if vol.is_2d:
        raise InputError(f"{vol.source}: {what} on the engine needs a 3-D volume; a 2-D image "
                         "fits in memory (omit the compute options)")


def bar(desc: str) -> Any:
    """A progress wrapper over blocks (one tqdm bar per pass, silenced by --quiet)."""
    return lambda items: progress(items, desc=desc)


def label_fractions(labels: ZarrRef, class_map: dict[str, int], *, block_shape: Sequence[int],
                    client: Any) -> dict[str, float]:
    """Volume fraction of every class of a label volume, a reduction over blocks."""
    from electrode_ct.segment.blockwise import label_counts

    counts = label_counts(labels, block_shape=block_shape, client=client)
    total = float(counts.sum())
    return {k: float(counts[v]) / total for k, v in class_map.items()}


def mean_value(ref: ZarrRef, *, block_shape: Sequence[int], client: Any) -> float:
    """Mean of a (z, y, x) array, a reduction over blocks (float64 sums)."""
    from electrode_ct.compute.engine import reduce_blocks

    parts = reduce_blocks(_sum_part, ref, block_shape=block_shape, client=client)
    return float(sum(p[0] for p in parts) / sum(p[1] for p in parts))


def _sum_part(region: np.ndarray, block: Any) -> tuple[float, int]:
    return float(region.sum(dtype=np.float64)), int(region.size)


def in_memory(vol: Volume) -> Volume:
    """A lazily read volume loaded here (local threads, never through a Dask client)."""
    import dask

    with dask.config.set({"scheduler": "threads", "array.rechunk.method": "tasks"}):
        return vol.compute()
