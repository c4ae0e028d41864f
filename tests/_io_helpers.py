"""Helpers for the I/O tests: measure how much a block of code reads from disk and allocates."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROC_IO = Path("/proc/self/io")


def _rchar() -> int | None:
    if not _PROC_IO.exists():
        return None
    for line in _PROC_IO.read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return None


@contextmanager
def io_meter() -> Iterator[dict[str, int | None]]:
    """Record bytes read by this process (Linux ``rchar``, None elsewhere) and the peak
    Python/numpy allocation (tracemalloc) inside the block."""
    result: dict[str, int | None] = {}
    tracemalloc.start()
    before = _rchar()
    try:
        yield result
    finally:
        after = _rchar()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["bytes_read"] = None if before is None or after is None else after - before
        result["peak_alloc"] = peak


def assert_lazy(meter: dict[str, int | None], data_bytes: int) -> None:
    """The block read and allocated well under a tenth of the data."""
    assert meter["peak_alloc"] < data_bytes / 10, meter
    if meter["bytes_read"] is not None:
        assert meter["bytes_read"] < data_bytes / 10, meter
