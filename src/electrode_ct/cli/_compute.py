"""The compute options every volume-processing command shares (no science in here).

A command declares the five options with these defaults::

    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS,
    threads_per_worker: int = THREADS, memory_limit: str = MEMORY, block_shape: str = BLOCKS

and turns them into settings with :func:`compute_config`. :func:`session` then yields a
Dask client when the engine is to be used (an option was given, or the input is larger
than ``in_memory_below_mb``) and ``None`` for the in-memory path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError

from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import info
from electrode_ct.compute.config import IN_MEMORY_FACTOR, ComputeConfig
from electrode_ct.errors import ConfigError

SCHEDULER = typer.Option(
    None, "--scheduler",
    help="Run blocks on Dask: local (a LocalCluster here), tcp://HOST:PORT (a running "
         "scheduler) or slurm|pbs|sge|lsf (dask-jobqueue). Default: in memory when the "
         "volume is small, else local.")
N_WORKERS = typer.Option(None, "--n-workers", help="Dask worker processes (local default: "
                                                    "CPUs / threads per worker).")
THREADS = typer.Option(None, "--threads-per-worker",
                       help="Threads per Dask worker; BLAS/OpenMP capped to it (default 1).")
MEMORY = typer.Option(None, "--memory-limit",
                      help="Memory per Dask worker, e.g. 4GB (default: 80 % of the machine "
                           "shared by the workers).")
BLOCKS = typer.Option(None, "--block-shape",
                      help="Block (chunk) shape Z Y X in voxels (default: from the volume "
                           "and the memory limit).")


def compute_config(scheduler: str | None = None, n_workers: int | None = None,
                   threads_per_worker: int | None = None, memory_limit: str | None = None,
                   block_shape: str | None = None,
                   base: ComputeConfig | None = None) -> tuple[ComputeConfig, bool]:
    """Settings from the command-line options over ``base`` (e.g. a config's section).

    Returns
    -------
    (ComputeConfig, bool)
        The settings, and whether any option asked for the engine explicitly.
    """
    given = {"scheduler": scheduler, "n_workers": n_workers,
             "threads_per_worker": threads_per_worker, "memory_limit": memory_limit}
    if block_shape is not None:
        shape = parse_floats(block_shape, name="--block-shape", count=(3,))
        given["block_shape"] = tuple(int(v) for v in shape)
    given = {k: v for k, v in given.items() if v is not None}
    data = (base or ComputeConfig()).model_dump()
    data.update(given)
    try:
        return ComputeConfig(**data), bool(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "compute"
        raise ConfigError(f"{name}: {err['msg']}") from None


def use_engine(cfg: ComputeConfig, nbytes: int, *, explicit: bool,
               factor: float = IN_MEMORY_FACTOR) -> bool:
    """Whether blocks go to Dask: asked for, or the input too large for the in-memory path
    (:meth:`ComputeConfig.stays_in_memory`; ``factor``: the step's in-memory peak per input
    byte)."""
    return explicit or not cfg.stays_in_memory(nbytes, factor)


@contextmanager
def session(cfg: ComputeConfig, nbytes: int, *, explicit: bool,
            factor: float = IN_MEMORY_FACTOR) -> Iterator[Any]:
    """A Dask client for the engine path, or ``None`` for the in-memory path
    (:func:`use_engine`)."""
    if not use_engine(cfg, nbytes, explicit=explicit, factor=factor):
        yield None
        return
    from electrode_ct.compute.cluster import open_client

    with open_client(cfg, log=info) as client:
        yield client
