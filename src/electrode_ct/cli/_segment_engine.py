"""The engine path of the ``ect segment`` commands: Zarr input, OME-Zarr outputs, OUT.

A segment command that runs on the block engine (``session()`` gave a client) reads its
input as a Zarr array (the input's own store when it is a 3-D Zarr array, else a copy
streamed into a work folder next to OUT), writes its outputs as OME-Zarr (directly when
OUT ends with ``.zarr``, else in the work folder), then writes OUT in its own format
from the OME-Zarr and removes the folder. No science in here.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._common import progress
from electrode_ct.compute.engine import ZarrRef
from electrode_ct.errors import InputError
from electrode_ct.pipeline.compute import plan_blocks  # noqa: F401 - the one block planner
from electrode_ct.volume import Volume


def refuse_2d(vol: Volume, what: str) -> None:
    """The engine runs on (z, y, x) volumes: a single 2-D image is refused."""
    if vol.is_2d:
        raise InputError(f"{vol.source}: {what} on the engine needs a 3-D volume; a 2-D image "
                         "fits in memory (omit the compute options)")


def bar(desc: str) -> Any:
    """A progress wrapper over blocks (one tqdm bar per pass, silenced by --quiet)."""
    return lambda items: progress(items, desc=desc)


class EngineFiles:
    """The work folder of one command run: input as Zarr, OME-Zarr outputs, final files.

    Parameters
    ----------
    volume : Volume
        The input, read lazily.
    src : str
        The input path as given.
    out : pathlib.Path
        The main output; the work folder is ``.OUT.ect-work`` beside it.
    """

    def __init__(self, volume: Volume, src: str, out: Path) -> None:
        self.volume, self.src = volume, src
        self.work = out.parent / f".{out.name}.ect-work"
        self.finals: list[tuple[Path, Path, dict[str, Any] | None]] = []

    def source(self, block_shape: Sequence[int]) -> ZarrRef:
        """The input as a Zarr array: its own store, or a streamed copy."""
        own = _own_zarr(self.src, self.volume.shape)
        if own is not None:
            return own
        from electrode_ct.io import write

        path = self.work / "input.zarr"
        if path.exists():
            shutil.rmtree(path)
        self.work.mkdir(parents=True, exist_ok=True)
        import dask

        # here, never through a Dask client (no p2p rechunk either)
        with dask.config.set({"scheduler": "threads", "array.rechunk.method": "tasks"}):
            write(self.volume, path, chunks=tuple(block_shape))
        return ZarrRef(str(path), "0")

    def target(self, out: Path, *, dtype: Any, chunks: Sequence[int],
               class_map: dict[str, int] | None = None, lead: tuple[int, ...] = (),
               lead_axes: tuple[str, ...] = (),
               class_names: Sequence[str] | None = None) -> ZarrRef:
        """An empty OME-Zarr for ``out`` (``out`` itself when it is a ``.zarr``).

        A non-Zarr ``out`` with ``lead`` axes is written as a (K·z, y, x) stack with
        ``class_names`` in its metadata, as the in-memory path writes probabilities.
        """
        from electrode_ct.io.zarr import create_ome_zarr

        direct = out.name.endswith(".zarr")
        path = out if direct else self.work / f"{out.name}.zarr"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not direct:
            self.finals.append((path, out, {"class_names": list(class_names or [])}
                                if lead else None))
        return create_ome_zarr(path, self.volume, dtype=dtype, chunks=tuple(chunks),
                               lead=lead, lead_axes=lead_axes, class_map=class_map)

    def finish(self) -> None:
        """Write every non-Zarr output from its OME-Zarr, then remove the work folder."""
        from electrode_ct.io import read, write

        for path, out, stack in self.finals:
            if stack is None:
                write(in_memory(read(str(path))), out)
                continue
            data = ZarrRef(str(path), "0").open()[...]
            write(self.volume.with_data(data.reshape(-1, *data.shape[-2:]), **stack), out)
        if self.work.exists():
            shutil.rmtree(self.work)


def _own_zarr(src: str, shape: Sequence[int]) -> ZarrRef | None:
    """The input's own Zarr array when it is a 3-D OME-Zarr level 0 or a plain array."""
    from electrode_ct.io.registry import split_dataset

    path, inner = split_dataset(src)
    if not str(path).rstrip("/").endswith(".zarr") or inner:
        return None
    import zarr

    node = zarr.open(str(path), mode="r")
    for ref in (ZarrRef(str(path), "0"), ZarrRef(str(path), "")):
        try:
            arr = node[ref.component] if ref.component else node
            if tuple(getattr(arr, "shape", ())) == tuple(shape):
                return ref
        except KeyError:
            continue
    return None


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
