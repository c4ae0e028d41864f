"""Keep freed memory in the C heap while a block computes (glibc only; a no-op elsewhere).

A Dask worker process starts with ``MALLOC_TRIM_THRESHOLD_=65536`` (Dask's
``distributed.nanny.pre-spawn-environ``): glibc then returns every freed block larger than
128 KiB to the system at once, and the next allocation of the same size takes fresh pages
from the kernel, one page fault per 4 KiB. Model prediction allocates and frees arrays of
megabytes thousands of times per block (a network's activations, a forest's per-tree
outputs), so a worker spent about as much time in the kernel as in the computation
(``docs/scale.md``, "With a model instead of multi-Otsu"); an ordinary process does the
same for arrays above glibc's largest dynamic threshold (32 MiB: the activations of a
512-pixel tile).

:func:`kept_heap` lets glibc serve every allocation from its heap and keep freed memory
there while the block runs, then restores the thresholds the process had (the worker's
``MALLOC_TRIM_THRESHOLD_``, else glibc's default trim threshold, which glibc then keeps
fixed instead of adapting it) and hands the free memory back (``malloc_trim``). The
peak is the block's own working memory, as before; only the page faults go. Results do
not change: the same arithmetic runs on other addresses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""

DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
"""glibc's defaults (bytes; number of mmapped chunks)."""

KEPT_TRIM_THRESHOLD = 1 << 30
"""Trim threshold while a block runs (bytes): freed memory stays in the heap."""

_lock = threading.Lock()
_depth = 0


def _glibc() -> Any:
    """The C library when it is glibc (has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    ok = lib is not None and all(hasattr(lib, f) for f in ("mallopt", "malloc_trim",
                                                          "gnu_get_libc_version"))
    return lib if ok else None


_LIBC = _glibc()


def available() -> bool:
    """Whether this process's C library lets :func:`kept_heap` act (glibc)."""
    return _LIBC is not None


def _restored_trim() -> int:
    """The trim threshold (bytes) the process started with."""
    value = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
    return int(value) if value.isdigit() else DEFAULT_TRIM_THRESHOLD


@contextmanager
def kept_heap() -> Iterator[None]:
    """Serve allocations from the heap and keep freed memory there inside the block.

    Nested and concurrent uses (threads of one worker) are counted: the thresholds are
    restored, and free memory handed back, when the last one leaves.
    """
    global _depth
    if _LIBC is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD)
            _LIBC.mallopt(M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                _LIBC.mallopt(M_TRIM_THRESHOLD, _restored_trim())
                _LIBC.malloc_trim(0)
