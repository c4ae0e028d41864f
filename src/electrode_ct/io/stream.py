"""Streaming any readable volume into a chunked OME-Zarr image, and its viewing pyramid.

The working store of out-of-core runs is OME-Zarr (NGFF 0.4, Zarr format 2). A volume read
lazily (``read(path, lazy=True)``: TIFF folders and BigTIFF, HDF5, uncompressed raw /
NRRD / MHD and ``.npy`` through memory maps, TXM one image stream at a time) is copied into
it one slab at a time: a slab is one chunk deep in z and as wide in (y, x) as the memory
budget allows, so the memory used is bounded by a slab, never by the volume. Readers that
cannot read part of a file (gzip/bzip2-compressed NRRD or MHD) load the whole volume once;
``docs/io.md`` lists them.

The pyramid (levels ``1..N`` beside level ``0``) halves every axis per level: the 2 × 2 × 2
block mean for grey volumes (rounded back to integer types), the first voxel of each
2 × 2 × 2 block (nearest) for label volumes, so label values stay valid. Each level is
written chunk by chunk from the level below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.volume import Volume

Progress = Callable[[Iterable[Any]], Iterable[Any]]

CHUNK_EDGE = 128
"""Default chunk edge (voxels): 4 MB chunks of uint16, small enough for viewers."""

PYRAMID_ABOVE_VOXELS = 256**3
"""Volumes with more voxels get a pyramid by default (``pyramid=None``)."""

PYRAMID_TOP_EDGE = 256
"""A default pyramid stops at the first level whose largest side is at most this."""


def choose_chunks(shape: Sequence[int], itemsize: int, *, memory_limit: int | None = None,
                  edge: int = CHUNK_EDGE) -> tuple[int, int, int]:
    """A chunk shape (z, y, x) for a volume and a memory budget.

    Cubes of ``edge`` voxels clipped to the volume; the edge is halved (down to 16) while
    one streaming slab (a chunk deep, the whole (y, x) plane) would exceed a quarter of
    ``memory_limit`` bytes.

    Examples
    --------
    >>> choose_chunks((1024, 1024, 1024), 2)
    (128, 128, 128)
    >>> choose_chunks((2000, 4000, 4000), 2, memory_limit=8 * 10**9)
    (32, 32, 32)
    >>> choose_chunks((10, 300, 20), 1)
    (10, 128, 20)
    """
    plane = int(shape[-1]) * int(shape[-2]) * int(itemsize)
    while memory_limit and edge > 16 and edge * plane > memory_limit / 4:
        edge //= 2
    return tuple(max(1, min(edge, int(n))) for n in shape[-3:])  # type: ignore[return-value]


def slabs(shape: Sequence[int], chunks: Sequence[int], itemsize: int, *,
          memory_limit: int | None = None) -> list[tuple[slice, ...]]:
    """Chunk-aligned regions covering ``shape``, each at most a quarter of the budget.

    A region is one chunk deep in z; in (y, x) it spans as many chunks as fit (the whole
    plane when it fits), in C order.
    """
    cz, cy, cx = (int(c) for c in chunks)
    budget = memory_limit / 4 if memory_limit else math.inf
    rows = budget // (cz * cy * int(shape[2]) * itemsize)
    if rows >= 1:
        step_y, step_x = int(min(shape[1], rows * cy)), int(shape[2])
    else:
        cols = max(1, budget // (cz * cy * cx * itemsize))
        step_y, step_x = cy, int(min(shape[2], cols * cx))
    out = []
    for z, y, x in product(range(0, shape[0], chunks[0]), range(0, shape[1], step_y),
                           range(0, shape[2], step_x)):
        out.append((slice(z, min(z + chunks[0], shape[0])),
                    slice(y, min(y + step_y, shape[1])), slice(x, min(x + step_x, shape[2]))))
    return out


def _region(data: Any, region: tuple[slice, ...]) -> np.ndarray:
    part = data[region]
    if hasattr(part, "compute"):
        return np.asarray(part.compute(scheduler="synchronous"))
    return np.asarray(part)


def stream_to_ome_zarr(volume: Volume, path: str | Path, *, chunks: Sequence[int] | None = None,
                       memory_limit: int | None = None, pyramid: int | None = None,
                       labels: bool | None = None, progress: Progress | None = None,
                       client: Any = None) -> Path:
    """Copy a (lazy) volume into a new OME-Zarr image slab by slab, with a pyramid.

    Parameters
    ----------
    volume : Volume
        The volume; a lazy one is read one slab at a time.
    path : str or pathlib.Path
        Destination ``.ome.zarr`` folder, written under a temporary name and renamed.
    chunks : sequence of int, optional
        Chunk shape (z, y, x); default :func:`choose_chunks`.
    memory_limit : int, optional
        Bytes the copy may hold (a slab is at most a quarter of it).
    pyramid : int, optional
        Number of extra resolution levels; default: enough to bring the largest side to
        :data:`PYRAMID_TOP_EDGE` for volumes above :data:`PYRAMID_ABOVE_VOXELS`, else 0.
    labels : bool, optional
        Downsample as labels (nearest); default: when the volume has a class map.
    progress : callable, optional
        Wraps the iteration over slabs and pyramid chunks (e.g. ``tqdm``).
    client : distributed.Client, optional
        Builds the pyramid levels on the cluster (one task per few chunks).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from electrode_ct.io._atomic import atomic_path
    from electrode_ct.io.zarr import create_ome_zarr

    shape, dtype = volume.shape, volume.dtype
    chunks = tuple(int(c) for c in chunks) if chunks else choose_chunks(
        shape, dtype.itemsize, memory_limit=memory_limit)
    if len(chunks) != 3 or min(chunks) < 1:
        raise InputError(f"chunks: expected 3 positive integers (Z Y X), got {chunks}")
    if any(c > n for c, n in zip(chunks, shape, strict=True)):
        raise InputError(f"chunks {chunks} are larger than the volume {shape}: give chunks "
                         "within the volume")
    levels = default_levels(shape) if pyramid is None else int(pyramid)
    if levels < 0:
        raise InputError(f"--pyramid: expected 0 or more levels, got {pyramid}")
    is_labels = volume.class_map is not None if labels is None else labels
    with atomic_path(path) as tmp:
        ref = create_ome_zarr(tmp, volume, dtype=dtype, chunks=chunks,
                              class_map=volume.class_map)
        arr = ref.open("r+")
        regions = slabs(shape, chunks, dtype.itemsize, memory_limit=memory_limit)
        for region in progress(regions) if progress is not None else regions:
            arr[region] = _region(volume.data, region)
        write_pyramid(tmp, levels, labels=is_labels, progress=progress, client=client)
    return Path(path)


def default_levels(shape: Sequence[int]) -> int:
    """Pyramid levels by default: 0 for small volumes, else down to ~256 voxels a side.

    Examples
    --------
    >>> default_levels((100, 100, 100)), default_levels((1024, 1024, 1024))
    (0, 2)
    """
    if math.prod(int(n) for n in shape) <= PYRAMID_ABOVE_VOXELS:
        return 0
    return max(0, math.ceil(math.log2(max(shape) / PYRAMID_TOP_EDGE)))


def downsample2(region: np.ndarray, *, labels: bool) -> np.ndarray:
    """Halve every axis: 2 × 2 × 2 block mean (grey) or the first voxel (labels).

    Odd sides are padded by repeating the last voxel. Integer grey types are rounded to
    the nearest value.

    Examples
    --------
    >>> downsample2(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), labels=False).tolist()
    [[[4]]]
    >>> downsample2(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), labels=True).tolist()
    [[[0]]]
    """
    if labels:
        return np.ascontiguousarray(region[::2, ::2, ::2])
    pad = [(0, n % 2) for n in region.shape]
    full = np.pad(region, pad, mode="edge") if any(p[1] for p in pad) else region
    z, y, x = (n // 2 for n in full.shape)
    mean = full.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5), dtype=np.float64)
    if np.issubdtype(region.dtype, np.integer):
        return np.rint(mean).astype(region.dtype)
    return mean.astype(region.dtype)


def _level_block(path: str, level: int, write: tuple[slice, ...], labels: bool) -> None:
    """Write one block of pyramid level ``level`` from twice its extent in the level below
    (the task a worker runs: only the store path and the geometry travel)."""
    import zarr

    group = zarr.open_group(path, mode="r+")
    src, dst = group[str(level - 1)], group[str(level)]
    read = tuple(slice(2 * s.start, min(2 * s.stop, n)) for s, n in zip(write, src.shape,
                                                                         strict=True))
    dst[write] = downsample2(np.asarray(src[read]), labels=labels)


def write_pyramid(path: str | Path, levels: int, *, labels: bool,
                  progress: Progress | None = None, client: Any = None) -> None:
    """Add resolution levels ``1..levels`` to an OME-Zarr image holding level ``0``.

    Each level is written chunk by chunk (one task per block of chunks on ``client``
    when given) and listed in the ``multiscales`` metadata with its scale (2^k × spacing,
    µm) and, for block means, the half-voxel translation of its voxel centres.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    multiscale = attrs["multiscales"][0]
    base = multiscale["datasets"][0]["coordinateTransformations"]
    scale0 = np.asarray(base[0]["scale"], float)
    origin = np.asarray(base[1]["translation"], float) if len(base) > 1 else 0 * scale0
    datasets = [multiscale["datasets"][0]]
    for k in range(1, levels + 1):
        src = group[str(k - 1)]
        shape = tuple(-(-n // 2) for n in src.shape)
        chunks = tuple(min(c, n) for c, n in zip(src.chunks, shape, strict=True))
        group.create_array(str(k), shape=shape, chunks=chunks, dtype=src.dtype,
                           fill_value=0, compressors=src.compressors)
        step = tuple(c * 4 for c in chunks)  # a few chunks per task
        blocks = [tuple(slice(s, min(s + b, n)) for s, b, n in zip(start, step, shape,
                                                                   strict=True))
                  for start in product(*(range(0, n, b) for n, b in zip(shape, step,
                                                                        strict=True)))]
        _run_level(str(path), k, blocks, labels, progress, client)
        factor = 2.0**k
        shift = origin if labels else origin + (factor - 1) / 2 * scale0
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": (scale0 * factor).tolist()},
            {"type": "translation", "translation": shift.tolist()}]})
    multiscale["datasets"] = datasets
    group.attrs.update(attrs)


def _run_level(path: str, level: int, blocks: list[tuple[slice, ...]], labels: bool,
               progress: Progress | None, client: Any) -> None:
    if client is None:
        for write in progress(blocks) if progress is not None else blocks:
            _level_block(path, level, write, labels)
        return
    futures = [client.submit(_level_block, path, level, w, labels, pure=False) for w in blocks]
    client.gather(futures)  # re-raises the first failure


def own_store(volume: Volume) -> Any:
    """The :class:`~electrode_ct.compute.engine.ZarrRef` a lazy volume reads unchanged
    (read lazily from a Zarr store, not cropped or computed on), or None."""
    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.io.registry import split_dataset

    name = str(getattr(volume.data, "name", ""))
    inner = volume.metadata.get("zarr_path")
    if not volume.is_lazy or not name.startswith("from-zarr") or inner is None:
        return None
    ref = ZarrRef(split_dataset(volume.source)[0], str(inner))
    try:
        same = tuple(ref.open("r").shape) == volume.shape
    except Exception:  # noqa: BLE001 - an unreadable store: the caller copies instead
        return None
    return ref if same else None


def _matches(ref: Any, volume: Volume) -> bool:
    try:
        arr = ref.open("r")
    except Exception:  # noqa: BLE001 - absent or unreadable
        return False
    return tuple(arr.shape) == volume.shape and arr.dtype == volume.dtype


def zarr_source(volume: Volume, work: str | Path, *, memory_limit: int | None = None,
                progress: Progress | None = None, reuse: bool = False) -> Any:
    """A Zarr reference block tasks can read ``volume`` from.

    The volume's own store when :func:`own_store` finds one; else the volume is streamed
    to ``work`` (an OME-Zarr without pyramid). With ``reuse``, a complete copy left at
    ``work`` by an earlier call (same shape and dtype) is used as it is: only for work
    paths keyed by the input's identity.

    Returns
    -------
    electrode_ct.compute.engine.ZarrRef
    """
    from electrode_ct.compute.engine import ZarrRef

    own = own_store(volume)
    if own is not None:
        return own
    ref = ZarrRef(str(work), "0")
    if reuse and _matches(ref, volume):  # written atomically: present means complete
        return ref
    stream_to_ome_zarr(volume, work, memory_limit=memory_limit, pyramid=0, progress=progress)
    return ref
