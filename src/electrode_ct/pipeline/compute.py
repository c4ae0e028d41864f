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

from electrode_ct.compute.config import ComputeConfig
from electrode_ct.volume import Volume

if TYPE_CHECKING:
    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.pipeline.runner import Run

_KEY = "_pipeline_compute"


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

    def use_engine(self, nbytes: int) -> bool:
        """Whether an input of ``nbytes`` bytes runs on the engine."""
        return self.cfg.scheduler != "local" or nbytes > self.cfg.in_memory_below_mb * 1e6

    def client(self) -> Any:
        """The run's ``distributed.Client`` (opened on first use, closed with the run)."""
        if self._client is None:
            from electrode_ct.compute.cluster import open_client

            self._client = self._stack.enter_context(open_client(self.cfg, log=self.log))
        return self._client

    def block_shape(self, shape: Sequence[int], *, halo: Sequence[int] = (0, 0, 0),
                    bytes_per_voxel: float = 8.0) -> tuple[int, ...]:
        """``compute.block_shape`` clipped to the volume, else one from the memory budget."""
        from electrode_ct.compute.engine import default_block_shape

        if self.cfg.block_shape is not None:
            return tuple(min(int(b), int(n)) for b, n in zip(self.cfg.block_shape, shape,
                                                             strict=True))
        return default_block_shape(shape, halo=halo, bytes_per_voxel=bytes_per_voxel,
                                   memory_limit=self.memory_limit)

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
