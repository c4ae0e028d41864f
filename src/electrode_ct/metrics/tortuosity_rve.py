"""Representative-volume curve of the tortuosity factor: τ over sub-volumes of chosen sizes.

The volume is cut into non-overlapping cubes of edge ``s`` voxels (⌊N/s⌋ along every
axis, from the volume's origin; the remainder at the far faces is left out) and τ of the
phase is solved in each cube, along each direction asked, by
:func:`~electrode_ct.metrics.tortuosity.tortuosity` with the cube's own faces as inlet
and outlet. Per size and direction: the number of cubes, how many percolate, and the
mean and sample standard deviation (ddof = 1) of the finite τ values — τ(s) converging
with a shrinking spread as s grows marks a representative volume.

Each cube is one task: on a Dask client (:func:`electrode_ct.compute.open_client` or the
pipeline's) the tasks run in parallel, each worker reading its cube from the Zarr store;
without a client they run one after the other here. Both give the same numbers (the same
function on the same voxels, one BLAS thread).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError

OPTION = "--subvolumes"


def parse_sizes(text: str | Iterable[int], *, name: str = OPTION) -> list[int]:
    """Sub-volume edges in voxels from ``"64,128,256"`` or a sequence of integers."""
    items = text.replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    try:
        sizes = [int(str(t).strip()) for t in items if str(t).strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 2 or len(set(sizes)) != len(sizes):
        raise InputError(f"{name}: expected distinct sub-volume edges in voxels (≥ 2), "
                         f"e.g. 64,128,256, got {text!r}")
    return sorted(sizes)


def check_sizes(sizes: Sequence[int], shape: Sequence[int], *, name: str = OPTION) -> None:
    """Refuse a sub-volume edge larger than the volume's smallest side."""
    too_big = [s for s in sizes if s > min(shape)]
    if too_big:
        raise InputError(f"{name}: sub-volume edge {too_big[0]} voxels is larger than the "
                         f"volume ({' x '.join(map(str, shape))} voxels); expected edges "
                         f"≤ {min(shape)}")


def cubes(shape: Sequence[int], size: int) -> list[tuple[slice, slice, slice]]:
    """The non-overlapping cubes of edge ``size`` tiling the volume from its origin."""
    counts = [n // size for n in shape]
    return [tuple(slice(i * size, (i + 1) * size) for i in idx)  # type: ignore[misc]
            for idx in itertools.product(*(range(c) for c in counts))]


def cube_tortuosity(src: Any, value: int | None, region: tuple[slice, ...],
                    axes: Sequence[str], spacing: tuple[float, float, float],
                    rtol: float) -> dict[str, float]:
    """τ of one cube along each axis (``inf`` when it does not percolate).

    ``src`` is a label array, a boolean mask (``value`` None) or a
    :class:`~electrode_ct.compute.engine.ZarrRef` read here (on the worker).
    """
    from threadpoolctl import threadpool_limits

    from electrode_ct.metrics.tortuosity import tortuosity

    arr = src.open("r") if hasattr(src, "open") else src
    part = np.asarray(arr[region])
    mask = part if value is None else part == value
    if not mask.any():
        return {ax: math.inf for ax in axes}
    with threadpool_limits(limits=1, user_api="blas"):
        return {ax: tortuosity(mask, axis=ax, spacing=spacing, rtol=rtol).tortuosity
                for ax in axes}


def _summary(taus: list[float]) -> dict[str, Any]:
    finite = np.array([t for t in taus if math.isfinite(t)])
    return {"n": len(taus), "n_percolating": int(finite.size),
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size
                                                                       else None)}


def tortuosity_rve(
    src: Any,
    sizes: Sequence[int],
    *,
    value: int | None = None,
    axes: Sequence[str] = ("x", "y", "z"),
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    rtol: float = 1e-6,
    client: Any = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """τ mean ± std per sub-volume size: the representative-volume curve.

    Parameters
    ----------
    src : numpy.ndarray or ZarrRef
        Label volume (z, y, x) — or a boolean phase mask with ``value`` None. A Dask
        client needs a ZarrRef (every worker reads its cube) or a small array.
    sizes : sequence of int
        Cube edges in voxels (each ≤ the smallest side of the volume).
    value : int, optional
        Label value of the conducting phase.
    axes : sequence of {"x", "y", "z"}
        Directions of the imposed gradient.
    spacing : tuple of 3 float
        Voxel size (z, y, x) in µm.
    rtol : float
        Relative residual of each solve.
    client : distributed.Client, optional
        One task per cube on it; None solves the cubes here.
    progress : callable, optional
        Wraps the iteration over finished cubes.

    Returns
    -------
    dict
        ``{"sizes_voxels": [...], "sizes_um": [[z, y, x], ...], "x": [{"size_voxels",
        "n", "n_percolating", "mean", "std"}, ...], ...}`` (one entry per size and axis;
        mean/std over the percolating cubes, None when none percolates).

    Raises
    ------
    InputError
        For a size larger than the volume's smallest side.
    """
    arr = src.open("r") if hasattr(src, "open") else src
    sizes = parse_sizes(sizes)
    check_sizes(sizes, arr.shape)
    jobs = [(s, r) for s in sizes for r in cubes(arr.shape, s)]
    args = (value, tuple(axes), tuple(float(v) for v in spacing), float(rtol))
    if client is None:
        it = progress(jobs) if progress is not None else jobs
        results = [cube_tortuosity(src, args[0], r, *args[1:]) for _, r in it]
    else:
        results = _on_client(client, src, jobs, args, progress)
    out: dict[str, Any] = {"sizes_voxels": sizes,
                           "sizes_um": [[s * d for d in spacing] for s in sizes]}
    pairs = list(zip(jobs, results, strict=True))
    for ax in axes:
        out[ax] = [{"size_voxels": s, **_summary([res[ax] for (size, _), res in pairs
                                                   if size == s])} for s in sizes]
    return out


def _on_client(client: Any, src: Any, jobs: list[tuple[int, tuple[slice, ...]]],
               args: tuple[Any, ...], progress: Any) -> list[dict[str, float]]:
    """The cube tasks on a Dask client, results in submission order."""
    from distributed import as_completed

    whole = (slice(None),) * 3
    if isinstance(src, np.ndarray):  # each task carries its own cube only
        futures = [client.submit(cube_tortuosity, np.ascontiguousarray(src[r]), args[0],
                                 whole, *args[1:], pure=False) for _, r in jobs]
    else:
        futures = [client.submit(cube_tortuosity, src, args[0], r, *args[1:], pure=False)
                   for _, r in jobs]
    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    done = as_completed(futures)
    try:
        for fut in progress(done) if progress is not None else done:
            results[position[fut.key]] = fut.result()
    except BaseException:
        client.cancel(futures)
        raise
    return results
