"""The ``compute:`` settings: where blocks run and within what memory.

One pydantic model, read from a pipeline config's ``compute:`` section or built from the
command-line options that every volume-processing command shares (``--scheduler``,
``--workers``, ``--threads-per-worker``, ``--memory-limit``, ``--block-shape``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from electrode_ct.errors import ConfigError

JOBQUEUE_SCHEDULERS = ("slurm", "pbs", "sge", "lsf")

IN_MEMORY_FACTOR = 48.0
"""Peak bytes of a step's in-memory path per byte of its input, when the step gives no
estimate of its own: on a 24 GB machine inputs up to 256 MB stay in memory."""

IN_MEMORY_SHARE = 0.5
"""Share of the machine's memory an in-memory path may fill (the automatic threshold)."""
"""Batch systems reached through dask-jobqueue (the ``hpc`` extra)."""

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | float, *, name: str = "memory_limit") -> int:
    """Bytes of a size such as ``"4GB"``, ``"3.5 GiB"``, ``"800MB"`` or a number of bytes.

    Parameters
    ----------
    text : str or int or float
        The size; decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB) units.
    name : str
        Option name for the error message.

    Returns
    -------
    int
        Size in bytes (> 0).

    Raises
    ------
    ConfigError
        Not a positive size.

    Examples
    --------
    >>> parse_bytes("4GB"), parse_bytes("1 GiB"), parse_bytes(512)
    (4000000000, 1073741824, 512)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise ConfigError(f"{name}: expected a size such as 4GB or 800MiB, got {text!r}")
        value = float(m.group(1)) * _UNITS[unit]
    if value <= 0:
        raise ConfigError(f"{name}: expected a positive size, got {text!r}")
    return int(value)


def machine_memory() -> int:
    """Physical memory of this machine in bytes (cgroup limit when lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()  # noqa: SIM115
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def machine_cpus() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ComputeConfig(BaseModel):
    """Where and how block tasks run.

    Attributes
    ----------
    scheduler : str
        ``"local"`` (a LocalCluster on this machine), ``"tcp://HOST:PORT"`` (a running Dask
        scheduler) or one of ``slurm``, ``pbs``, ``sge``, ``lsf`` (dask-jobqueue).
    n_workers : int, optional
        Worker processes (local: default = CPUs / threads_per_worker; jobqueue: jobs).
    threads_per_worker : int, optional
        Threads per worker; BLAS/OpenMP threads are capped to it (default 1).
    memory_limit : str, optional
        Memory per worker (e.g. ``"4GB"``); local default: 80 % of the machine's memory
        divided among the workers. Block tasks are refused before starting when one block
        needs more.
    block_shape : tuple of int, optional
        Block (chunk) shape (z, y, x) in voxels; default chosen from the volume and the
        memory limit.
    in_memory_below_mb : float, optional
        Inputs up to this size (MB) keep the in-memory path on the local scheduler. Default
        (None): automatic, per step — an input stays in memory when the step's estimated
        in-memory peak (input bytes × the step's factor, :data:`IN_MEMORY_FACTOR` unless it
        knows better) fits :data:`IN_MEMORY_SHARE` of the machine's memory.
    connect_timeout_s : float
        Seconds to wait for a scheduler address before giving up.
    dashboard : bool
        Serve the Dask dashboard of a local cluster (its address is printed).
    jobqueue : dict
        Extra dask-jobqueue cluster options (``cores``, ``memory``, ``walltime``,
        ``queue``, ``account``, ``job_extra_directives``, ...); Dask's own jobqueue
        configuration fills in what is not given.
    """

    model_config = ConfigDict(extra="forbid")

    scheduler: str = "local"
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    block_shape: tuple[int, int, int] | None = None
    in_memory_below_mb: float | None = None
    connect_timeout_s: float = 10.0
    dashboard: bool = False
    jobqueue: dict[str, Any] = {}

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        v = str(v).strip()
        if v == "local" or v in JOBQUEUE_SCHEDULERS or re.fullmatch(r"(tcp|tls|inproc)://.+", v):
            return v
        raise ValueError("expected 'local', a scheduler address tcp://HOST:PORT or one of "
                         f"{', '.join(JOBQUEUE_SCHEDULERS)}, got {v!r}")

    @field_validator("n_workers", "threads_per_worker")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"expected a positive integer, got {v}")
        return v

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None:
            parse_bytes(v)
        return v

    @field_validator("block_shape")
    @classmethod
    def _block(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError(f"expected 3 positive integers (Z Y X), got {v}")
        return v

    def in_memory_limit_mb(self, factor: float = IN_MEMORY_FACTOR) -> float:
        """The largest input (MB) a step whose in-memory peak is ``factor`` × its input
        keeps in memory: ``in_memory_below_mb`` when given, else the automatic rule."""
        if self.in_memory_below_mb is not None:
            return float(self.in_memory_below_mb)
        return IN_MEMORY_SHARE * machine_memory() / factor / 1e6

    def stays_in_memory(self, nbytes: int, factor: float = IN_MEMORY_FACTOR) -> bool:
        """Whether an input of ``nbytes`` keeps the in-memory path (local scheduler only)."""
        return self.scheduler == "local" and nbytes <= self.in_memory_limit_mb(factor) * 1e6

    def threads(self) -> int:
        """Threads per worker (default 1)."""
        return int(self.threads_per_worker or 1)

    def workers(self) -> int:
        """Local worker processes: the given number, else CPUs / threads per worker."""
        return int(self.n_workers or max(1, machine_cpus() // self.threads()))

    def worker_memory(self) -> int:
        """Memory per worker in bytes (given, else 80 % of the machine's per worker)."""
        if self.memory_limit is not None:
            return parse_bytes(self.memory_limit)
        return int(0.8 * machine_memory() / self.workers())
