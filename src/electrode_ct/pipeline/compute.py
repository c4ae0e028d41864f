"""One Dask client per pipeline run, shared by every step that runs on the block engine.

A step asks the run's :class:`PipelineCompute` (``engine(run)``, created on first use and
closed with the run) whether its input goes to the engine, and if so for the client, the
block shape, the memory budget, a Zarr reference to its input and a progress bar::

    from electrode_ct.pipeline.compute import engine

    eng = engine(run)
    if eng.use_engine(vol.nbytes):
        src = eng.zarr_input(vol, "grey_0")        # the OME-Zarr itself, or streamed to work/
        blocks = eng.block_shape(vol.shape, halo=h, bytes_per_voxel=12)
        dst = create_ome_zarr(run.path(rel), vol, dtype=np.float32, chunks=blocks)
        run_blocks(func, src, dst, block_shape=blocks, halo=h, client=eng.client(),
                   progress=eng.progress("filter"), bytes_per_voxel=12,
                   memory_limit=eng.memory_limit)

The engine is used when the scheduler is not ``local``, or the input is larger than
``compute.in_memory_below_mb`` (``ect run`` with any compute option sets that threshold
to 0, so asking for the engine uses it). The client (a LocalCluster, a scheduler address
or a dask-jobqueue cluster, :func:`electrode_ct.compute.open_client`) is opened on the
first :meth:`PipelineCompute.client` call only, so runs that stay in memory start none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electrode_ct.compute.config import IN_MEMORY_FACTOR, ComputeConfig
from electrode_ct.compute.engine import check_blocks, default_block_shape
from electrode_ct.volume import Volume

if TYPE_CHECKING:
    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.pipeline.runner import Run

_KEY = "_pipeline_compute"


def plan_blocks(cfg: ComputeConfig, shape: Sequence[int], halo: Sequence[int],
                bytes_per_voxel: float, *, slab: bool = False) -> tuple[int, ...]:
    """Block shape of a step or command: ``block_shape`` or one from the memory limit.

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


def codec_for(dtype: Any) -> str:
    """Blosc codec of a block output: ``lz4`` for floats (noisy float data compress to
    ~80 % either way, and zstd costs as much time as a Gaussian pass), ``zstd`` else."""
    import numpy as np

    return "lz4" if np.dtype(dtype).kind == "f" else "zstd"


class PipelineCompute:
    """The compute settings and the (lazily opened) Dask client of one run.

    Parameters
    ----------
    cfg : ComputeConfig
        The run's ``compute:`` section.
    work : pathlib.Path
        Folder for working Zarr copies of inputs (``<output>/work``).
    log : callable, optional
        Receives status lines (the dashboard address).
    quiet : bool
        Silence progress bars.
    """

    def __init__(self, cfg: ComputeConfig, *, work: Path, log: Any = None,
                 quiet: bool = False) -> None:
        self.cfg = cfg
        self.work = Path(work)
        self.log = log
        self.quiet = quiet
        self._stack = ExitStack()
        self._client: Any = None

    @property
    def memory_limit(self) -> int:
        """Bytes one block task may use (the per-worker memory limit)."""
        return self.cfg.worker_memory()

    def use_engine(self, nbytes: int, factor: float = IN_MEMORY_FACTOR) -> bool:
        """Whether an input of ``nbytes`` bytes runs on the engine
        (:meth:`ComputeConfig.stays_in_memory`; ``factor``: the step's in-memory peak per
        input byte)."""
        return not self.cfg.stays_in_memory(nbytes, factor)

    def client(self) -> Any:
        """The run's ``distributed.Client`` (opened on first use, closed with the run).

        Block tasks are submitted to it explicitly; while it is open, dask collections
        computed elsewhere in the run use local threads (a Client would otherwise become
        dask's default scheduler and receive, e.g., a TIFF reader it cannot pickle).
        """
        if self._client is None:
            import dask

            from electrode_ct.compute.cluster import open_client

            self._client = self._stack.enter_context(open_client(self.cfg, log=self.log))
            # block tasks go to the client explicitly; lazy reads elsewhere stay local
            self._stack.enter_context(dask.config.set(scheduler="threads"))
        return self._client

    def block_shape(self, shape: Sequence[int], *, halo: Sequence[int] = (0, 0, 0),
                    bytes_per_voxel: float = 8.0, slab: bool = False) -> tuple[int, ...]:
        """The blocks of a step (:func:`plan_blocks`): ``compute.block_shape`` or one from
        the memory budget, refused before any work when they cannot work."""
        return plan_blocks(self.cfg, shape, halo, bytes_per_voxel, slab=slab)

    def zarr_input(self, volume: Volume, name: str) -> ZarrRef:
        """A Zarr reference to ``volume``: its own store when it is a lazy, unchanged
        Zarr array, else a copy streamed slab by slab to ``work/NAME.ome.zarr``
        (:func:`electrode_ct.io.stream.zarr_source`)."""
        from electrode_ct.io.stream import zarr_source

        return zarr_source(volume, self.work / f"{name}.ome.zarr",
                           memory_limit=self.memory_limit, progress=self.progress(f"copy {name}"))

    def progress(self, desc: str) -> Any:
        """A function wrapping an iteration in a tqdm bar on stderr (none when quiet)."""
        import sys

        from tqdm.auto import tqdm

        def wrap(items: Iterable[Any]) -> Iterator[Any]:
            yield from tqdm(items, desc=desc, disable=self.quiet, file=sys.stderr, leave=False)

        return wrap

    def close(self) -> None:
        """Close the client and its cluster (if one was opened)."""
        self._stack.close()
        self._client = None


def publish(ref: ZarrRef, out: Path) -> Path:
    """Make a finished block output the file ``out``: the store is renamed into place
    when ``out`` is a ``.zarr`` (its block markers dropped), else written into ``out``'s
    format from a lazy read (block by block where the format allows) and removed."""
    import os
    import shutil

    from electrode_ct.compute.engine import DONE_FOLDER
    from electrode_ct.io import atomic_path, read, write

    store = Path(ref.path)
    shutil.rmtree(store / DONE_FOLDER, ignore_errors=True)
    if Path(out).name.lower().endswith((".zarr", ".zr")):
        with atomic_path(out) as tmp:
            os.replace(store, tmp)
    else:
        import dask

        with dask.config.set(scheduler="threads"):  # local reads, not the run's cluster
            write(read(str(store), lazy=True), out)
        shutil.rmtree(store, ignore_errors=True)
    return Path(out)


def engine(run: Run) -> PipelineCompute:
    """The run's :class:`PipelineCompute`, created on first use (one per run)."""
    eng = run.cache.get(_KEY)
    if eng is None:
        eng = PipelineCompute(run.cfg.compute, work=run.path("work"), log=run.log.info,
                              quiet=run.quiet)
        run.cache[_KEY] = eng
    return eng


def close_engine(run: Run) -> None:
    """Close the run's client, if a step opened one (called by ``Run.close``)."""
    eng = run.cache.pop(_KEY, None)
    if eng is not None:
        eng.close()
