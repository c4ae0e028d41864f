"""Dask clusters from a :class:`~electrode_ct.compute.config.ComputeConfig`.

``local`` starts a LocalCluster of worker processes sized to the machine, with BLAS and
OpenMP threads capped to the threads of each worker; an address connects to a running
scheduler; ``slurm``/``pbs``/``sge``/``lsf`` start a dask-jobqueue cluster (the ``hpc``
extra) whose job script :func:`cluster_script` shows without submitting anything.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from electrode_ct.compute.config import JOBQUEUE_SCHEDULERS, ComputeConfig
from electrode_ct.errors import ConfigError, DependencyError, InputError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables capping native thread pools in each worker."""


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a worker process: every native thread pool capped to ``threads``."""
    return {name: str(int(threads)) for name in THREAD_VARIABLES}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise DependencyError("dask.distributed is not installed: pip install distributed"
                              ) from exc
    return distributed


def _jobqueue_class(name: str) -> Any:
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise DependencyError(f"scheduler {name}: needs dask-jobqueue "
                              "(pip install 'electrode-ct[hpc]')") from exc
    return getattr(dask_jobqueue, f"{name.upper()}Cluster")


def jobqueue_cluster(cfg: ComputeConfig) -> Any:
    """The dask-jobqueue cluster object of ``cfg`` (no job is submitted until scaled).

    Resources come from ``cfg.jobqueue`` and, for what is not given there, from Dask's
    jobqueue configuration (``~/.config/dask/jobqueue.yaml``); ``cores`` defaults to
    ``threads_per_worker`` and ``memory`` to ``memory_limit`` when those are set.
    """
    if cfg.scheduler not in JOBQUEUE_SCHEDULERS:
        raise ConfigError(f"compute.scheduler: {cfg.scheduler!r} is not a batch system "
                          f"({', '.join(JOBQUEUE_SCHEDULERS)})")
    options = dict(cfg.jobqueue)
    if cfg.threads_per_worker is not None:
        options.setdefault("cores", cfg.threads_per_worker)
    if cfg.memory_limit is not None:
        options.setdefault("memory", cfg.memory_limit)
    options.setdefault("job_script_prologue",
                       [f"export {k}={v}" for k, v in worker_env(cfg.threads()).items()])
    options.setdefault("python", sys.executable)
    try:
        return _jobqueue_class(cfg.scheduler)(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"compute.jobqueue: {exc}") from exc


def cluster_script(cfg: ComputeConfig) -> str:
    """The job script a batch-system cluster would submit (nothing is submitted)."""
    cluster = jobqueue_cluster(cfg)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def _local_cluster(cfg: ComputeConfig) -> Any:
    distributed = _distributed()
    return distributed.LocalCluster(
        n_workers=cfg.workers(), threads_per_worker=cfg.threads(), processes=True,
        memory_limit=cfg.worker_memory(), dashboard_address=":0" if cfg.dashboard else None,
        env=worker_env(cfg.threads()), silence_logs=40)


def _connect(address: str, timeout_s: float) -> Any:
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"compute.scheduler {address}: no Dask scheduler answered within "
                         f"{timeout_s:g} s") from exc


@contextmanager
def open_client(cfg: ComputeConfig, *, log: Any = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cfg``, closed (with its cluster) on exit.

    Parameters
    ----------
    cfg : ComputeConfig
    log : callable, optional
        Receives one line with the dashboard address when there is one.

    Yields
    ------
    distributed.Client
    """
    if cfg.scheduler.startswith(("tcp://", "tls://", "inproc://")):
        client = _connect(cfg.scheduler, cfg.connect_timeout_s)
        cluster = None
    else:
        cluster = (_local_cluster(cfg) if cfg.scheduler == "local"
                   else jobqueue_cluster(cfg))
        if cfg.scheduler != "local":
            cluster.scale(jobs=cfg.n_workers or 1)
        client = _distributed().Client(cluster)
    try:
        link = getattr(client, "dashboard_link", None)
        if log is not None and link and (cfg.dashboard or cluster is None):
            log(f"Dask dashboard: {link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
