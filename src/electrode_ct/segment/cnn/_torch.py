"""Lazy access to torch and the compute device (torch is the optional ``dl`` extra)."""

from __future__ import annotations

import os
from typing import Any

from electrode_ct.errors import DependencyError, InputError

DEFAULT_THREADS = 2
"""Torch intra-op threads used unless the caller sets another number."""


def require_torch() -> Any:
    """Import and return :mod:`torch`.

    Raises
    ------
    DependencyError
        When torch is not installed (hint: install the ``dl`` extra).
    """
    try:
        import torch
    except ImportError as exc:
        raise DependencyError(
            "CNN segmentation needs PyTorch, which is not installed; install the 'dl' extra: "
            "pip install 'electrode-ct[dl]'"
        ) from exc
    return torch


def resolve_device(name: str | None = "cpu") -> Any:
    """The torch device for ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    InputError
        For an unknown device name, or ``cuda`` when no CUDA device is available.
    """
    torch = require_torch()
    text = (name or "cpu").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"--device {name}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use --device cpu"
            )
        return torch.device(text)
    raise InputError(f"--device {name!r}: expected 'cpu' or 'cuda'")


def set_threads(n: int | None = DEFAULT_THREADS) -> None:
    """Set torch's intra-op thread count (``None`` leaves it unchanged)."""
    if n is not None:
        require_torch().set_num_threads(max(1, int(n)))


def default_threads(n: int | None) -> int:
    """``n``, or :data:`DEFAULT_THREADS` (looked up at call time) when ``n`` is None,
    capped by the process's ``OMP_NUM_THREADS`` when set (a Dask worker of the engine has
    it set to its threads: more torch threads than that oversubscribe the cores, and
    OpenMP's spinning threads made tri-planar prediction on 2 workers ~10× slower)."""
    if n is not None:
        return max(1, int(n))
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(DEFAULT_THREADS, int(cap)) if cap.isdigit() and int(cap) > 0 else DEFAULT_THREADS
