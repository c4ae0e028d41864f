"""Small helpers shared by the one-process benchmarks: wall time of a call and the peak
resident memory of this process and its finished children (MB)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall time in seconds."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def peak_rss_mb() -> float:
    """Largest resident set (MB) of this process or of any child it waited for
    (``ru_maxrss``, kB on Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)
