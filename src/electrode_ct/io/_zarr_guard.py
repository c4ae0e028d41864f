"""Guards for reading Zarr stores that may be damaged or hostile (issue 27).

- :func:`checked_store`: a local store that checks each Blosc-compressed chunk
  against its 16-byte Blosc header before the decoder sees it. numcodecs' Blosc decoder
  does not compare the chunk's length with the compressed size the header declares, so a
  chunk cut short after its header decodes silently to wrong values (reading past the
  buffer); here it is an error naming the chunk.
- :func:`check_chunk_grid`: a header can declare a grid of millions of tiny chunks for a
  small array (reading costs time per chunk, present or not); such grids are refused.
- :func:`direct_fill`: reads a lazily opened array into a preallocated array in a few
  large reads (``Volume.compute`` uses it instead of one dask task per chunk).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError
from electrode_ct.io._meta import declared_bytes

BLOSC_HEADER_BYTES = 16
_METADATA_KEYS = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")

# A chunk grid may hold up to FREE_CHUNKS chunks of any size; beyond that the chunks must
# average at least MIN_CHUNK_BYTES (32 KiB: a 32³ uint8 chunk), i.e. the number of chunks is
# at most max(FREE_CHUNKS, array bytes / MIN_CHUNK_BYTES).
FREE_CHUNKS = 4096
MIN_CHUNK_BYTES = 32 * 2**10
_DIRECT_SLAB_BYTES = 64 * 2**20


def check_blosc_chunk(blob: bytes | memoryview, *, key: str, nbytes: int | None) -> None:
    """Raise ``ValueError`` unless ``blob`` is as long as its Blosc header says.

    Parameters
    ----------
    blob : bytes-like
        One stored chunk (a Blosc frame).
    key : str
        Chunk key, for the message.
    nbytes : int or None
        Uncompressed bytes the chunk must decode to (None: not checked).
    """
    size = len(blob)
    if size < BLOSC_HEADER_BYTES:
        raise ValueError(f"chunk {key}: {size} bytes, shorter than the 16-byte Blosc header")
    raw, cbytes = struct.unpack_from("<I", blob, 4)[0], struct.unpack_from("<I", blob, 12)[0]
    if cbytes != size:
        raise ValueError(
            f"chunk {key}: the Blosc header declares {cbytes} compressed bytes, the chunk has "
            f"{size} (truncated or damaged)")
    if nbytes is not None and raw != nbytes:
        raise ValueError(
            f"chunk {key}: the Blosc header declares {raw} bytes uncompressed, the array's "
            f"chunks hold {nbytes}")


@functools.cache
def _store_class() -> type:
    """:class:`BloscCheckedStore`'s class, built on first use (zarr imports lazily)."""
    from zarr.storage import LocalStore

    class BloscCheckedStore(LocalStore):
        """A read-only local store whose chunk reads under one array's path are checked
        with :func:`check_blosc_chunk` once :meth:`guard` was called."""

        _prefix: str | None = None
        _nbytes: int | None = None

        def guard(self, prefix: str, nbytes: int | None) -> None:
            """Check the chunks under ``prefix`` (an array path, ``""`` for the root)."""
            prefix = prefix.strip("/")
            self._prefix, self._nbytes = (f"{prefix}/" if prefix else ""), nbytes

        def with_read_only(self, read_only: bool = False) -> Any:
            """This store (it is read-only and keeps its guard)."""
            return self

        async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
            """The stored bytes of ``key``, checked when it is a guarded chunk."""
            buf = await super().get(key, prototype, byte_range)
            if (buf is not None and byte_range is None and self._prefix is not None
                    and key.startswith(self._prefix)
                    and key.rsplit("/", 1)[-1] not in _METADATA_KEYS):
                check_blosc_chunk(buf.as_numpy_array(), key=key, nbytes=self._nbytes)
            return buf

    return BloscCheckedStore


def checked_store(path: str) -> Any:
    """A read-only local Zarr store for ``path`` whose Blosc chunks can be checked on read
    (:func:`guard_blosc`)."""
    return _store_class()(path, read_only=True)


def _is_blosc(codec: Any) -> bool:
    return type(codec).__name__ in ("Blosc", "BloscCodec")


def guard_blosc(arr: Any) -> None:
    """Check ``arr``'s chunks on read when the last codec is Blosc (unsharded arrays in a
    :func:`checked_store`); the decoded size is checked too when nothing but the
    plain bytes serialisation comes before Blosc."""
    store = arr.store_path.store
    compressors = tuple(getattr(arr, "compressors", ()) or ())
    if not isinstance(store, _store_class()) or getattr(arr, "shards", None) is not None:
        return
    if len(compressors) != 1 or not _is_blosc(compressors[0]):
        return
    serializer = getattr(arr, "serializer", None)
    plain = not tuple(arr.filters or ()) and (
        serializer is None or type(serializer).__name__ == "BytesCodec")
    nbytes = declared_bytes(arr.chunks, np.dtype(arr.dtype).itemsize) if plain else None
    store.guard(arr.path, nbytes)


def check_chunk_grid(shape: Sequence[int], chunks: Sequence[int], itemsize: int, *,
                     where: str) -> None:
    """Refuse a chunk grid of more than ``max(FREE_CHUNKS, array bytes / MIN_CHUNK_BYTES)``
    chunks (a damaged or hostile header declaring countless tiny chunks).

    Raises
    ------
    FormatError
        Naming the grid and the limit.
    """
    count = 1
    for s, c in zip(shape, chunks, strict=True):
        count *= math.ceil(int(s) / max(1, int(c)))
    limit = max(FREE_CHUNKS, declared_bytes(shape, itemsize) // MIN_CHUNK_BYTES)
    if count > limit:
        grid = "x".join(str(int(c)) for c in chunks)
        raise FormatError(
            f"{where}: the header declares {count:,} chunks of {grid} voxels, more than the "
            f"{limit:,} allowed for an array of this size (chunks must average at least "
            f"{MIN_CHUNK_BYTES // 1024} KiB beyond {FREE_CHUNKS} chunks); damaged header, or "
            "rewrite the store with larger chunks")


def direct_fill(source: Any, shape: Sequence[int], chunks: Sequence[int]) -> Callable:
    """A function filling a preallocated array from ``source`` (shape ``shape``) in slabs
    of whole chunk rows along the first non-singleton axis (about 64 MB each)."""
    axis = next((i for i, s in enumerate(shape) if s > 1), 0)
    row = declared_bytes([c if i == axis else s for i, (s, c) in enumerate(
        zip(shape, chunks, strict=True))], np.dtype(source.dtype).itemsize)
    step = int(chunks[axis]) * max(1, _DIRECT_SLAB_BYTES // max(1, row))

    def fill(out: np.ndarray) -> None:
        view = out.reshape(tuple(shape))
        for a in range(0, int(shape[axis]), step):
            index = tuple(slice(a, a + step) if i == axis else slice(None)
                          for i in range(len(shape)))
            view[index] = source[index]

    return fill
