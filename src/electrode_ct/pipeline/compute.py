"""The compute engine of a pipeline run: one Dask client per run, Zarr inputs, blocks.

Steps that run on the block engine ask :func:`use_engine` (the input is above
``compute.in_memory_below_mb``, or the scheduler is not local), then share the one
client :func:`open_run_client` opens on first use and the run closes at its end.
No science in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from electrode_ct.compute.engine import ZarrRef, check_blocks, default_block_shape
from electrode_ct.volume import Volume

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run

_CLIENT = "compute:client"


def use_engine(run: Run, nbytes: int) -> bool:
    """Whether a step's blocks go to Dask for an input of ``nbytes`` bytes."""
    cfg = run.cfg.compute
    return cfg.scheduler != "local" or nbytes > cfg.in_memory_below_mb * 1e6


def open_run_client(run: Run) -> Any:
    """The run's Dask client, opened on first use (one per run, closed with the run)."""
    if _CLIENT not in run.cache:
        from electrode_ct.compute.cluster import open_client

        run.cache[_CLIENT] = run.resources.enter_context(open_client(run.cfg.compute))
    return run.cache[_CLIENT]


def block_shape(run: Run, shape: Sequence[int], *, halo: Sequence[int],
                bytes_per_voxel: float) -> tuple[int, ...]:
    """``compute.block_shape`` or one fitting the memory limit; checked before any work."""
    cfg = run.cfg.compute
    limit = cfg.worker_memory()
    blocks = (tuple(int(b) for b in cfg.block_shape) if cfg.block_shape is not None else
              default_block_shape(shape, halo=halo, bytes_per_voxel=bytes_per_voxel,
                                  memory_limit=limit))
    check_blocks(shape, blocks, halo, bytes_per_voxel=bytes_per_voxel, memory_limit=limit)
    return blocks


def zarr_input(run: Run, volume: Volume, name: str, chunks: Sequence[int]) -> ZarrRef:
    """A volume as a Zarr array in the run's ``work/`` folder, for block tasks to read."""
    import dask

    from electrode_ct.io import write

    path = run.path(f"work/{name}.ome.zarr")
    path.parent.mkdir(parents=True, exist_ok=True)
    # here, never through the run's client (no p2p rechunk either)
    with dask.config.set({"scheduler": "threads", "array.rechunk.method": "tasks"}):
        write(volume, path, chunks=tuple(chunks))
    return ZarrRef(str(path), "0")
