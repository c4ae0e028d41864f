"""Blocks with a halo: the one way a local operator runs on part of a volume.

A local operator (an output voxel depends on the input within a radius r of it: a
Gaussian of σ truncated at t σ has r = int(t σ + 0.5), a box filter of size k has
r = k // 2) gives, on a block, the whole-volume result when it reads the block plus a
halo ≥ r on every side and keeps only the block's interior. At the volume's faces the
read region is clipped, so the operator's own boundary rule (reflect, nearest, ...)
applies exactly as on the whole volume. The caller derives the halo from the operator's
parameters; this module owns the geometry and the iteration.

The geometry is pure (:func:`block_grid`, :func:`expand`) so that any engine can run the
same block functions: :func:`map_blocks` here (serially, or on threads), or an
out-of-core engine submitting one task per :class:`Block`. A *block function* has the
signature ``func(region, block) -> interior``: it sees only ``region`` (the numpy array
``array[block.read]``) and the block's geometry, and returns the result for the block's
interior only: an array of shape ``(*lead, *block.shape)`` (``lead`` are leading output
axes such as feature channels, the same for every block).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, product
from typing import Any

import numpy as np

from electrode_ct.errors import InputError

BlockFunction = Callable[[np.ndarray, "Block"], np.ndarray]
"""``func(region, block) -> interior`` (see the module docstring)."""

Progress = Callable[[Iterable[Any]], Iterable[Any]]
"""Wraps an iteration over blocks (e.g. ``tqdm``)."""


@dataclass(frozen=True)
class Block:
    """One block of a grid: where it writes, what it reads, and where one is in the other.

    Attributes
    ----------
    index : tuple of int
        Position in the block grid (empty for a block made by :func:`expand`).
    write : tuple of slice
        The block (its interior) in volume coordinates: what it writes.
    read : tuple of slice
        The block plus the halo, clipped to the volume, in volume coordinates.
    interior : tuple of slice
        ``write`` in the coordinates of the ``read`` region.
    """

    index: tuple[int, ...]
    write: tuple[slice, ...]
    read: tuple[slice, ...]
    interior: tuple[slice, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the interior (voxels)."""
        return tuple(s.stop - s.start for s in self.write)

    @property
    def offset(self) -> tuple[int, ...]:
        """Volume coordinates of the read region's first voxel."""
        return tuple(s.start for s in self.read)

    @property
    def margins(self) -> tuple[tuple[int, int], ...]:
        """Halo actually read before and after the interior, per axis (voxels).

        Smaller than the requested halo where the read region meets a face of the volume.
        """
        return tuple((i.start, (r.stop - r.start) - i.stop)
                     for i, r in zip(self.interior, self.read, strict=True))

    def crop(self, result: np.ndarray) -> np.ndarray:
        """The interior of a result computed on the read region (trailing axes)."""
        return result[(..., *self.interior)]


def as_halo(halo: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """A halo as one non-negative int per axis.

    Raises
    ------
    InputError
        A negative or non-integer value, or a count that is neither 1 nor ``ndim``.
    """
    vals = [halo] * ndim if np.isscalar(halo) else list(halo)  # type: ignore[arg-type]
    if len(vals) != ndim or not all(float(v) == int(v) and int(v) >= 0 for v in vals):
        raise InputError(f"halo: expected 1 or {ndim} integers >= 0 voxels, got {halo!r}")
    return tuple(int(v) for v in vals)


def expand(write: Sequence[slice], halo: int | Sequence[int],
           shape: Sequence[int]) -> Block:
    """The block ``write`` grown by ``halo`` voxels on each side, clipped to ``shape``.

    Parameters
    ----------
    write : sequence of slice
        The block in volume coordinates (explicit starts and stops).
    halo : int or sequence of int
        Halo in voxels, one value or one per axis.
    shape : sequence of int
        Volume shape.

    Examples
    --------
    >>> b = expand((slice(0, 4), slice(4, 8)), 2, (10, 10))
    >>> b.read, b.interior
    ((slice(0, 6, None), slice(2, 10, None)), (slice(0, 4, None), slice(2, 6, None)))
    """
    h = as_halo(halo, len(shape))
    read, interior = [], []
    for sl, m, n in zip(write, h, shape, strict=True):
        lo, hi = max(0, int(sl.start) - m), min(int(n), int(sl.stop) + m)
        read.append(slice(lo, hi))
        interior.append(slice(int(sl.start) - lo, int(sl.stop) - lo))
    return Block((), tuple(slice(int(s.start), int(s.stop)) for s in write), tuple(read),
                 tuple(interior))


def block_grid(shape: Sequence[int], block_shape: Sequence[int],
               halo: int | Sequence[int] = 0) -> list[Block]:
    """Regular non-overlapping blocks covering ``shape``, each with its halo.

    Blocks are ``block_shape`` (clipped to the volume; the last along an axis may be
    smaller), in C order of their grid index. The halo may exceed the block: the read
    region is then clipped to the volume.

    Parameters
    ----------
    shape : sequence of int
        Volume shape (voxels).
    block_shape : sequence of int
        Block (interior) shape, >= 1 voxel per axis.
    halo : int or sequence of int
        Halo in voxels, one value or one per axis.

    Returns
    -------
    list of Block
        Empty when the volume has no voxels.

    Raises
    ------
    InputError
        Block and volume dimensions differ, a block side < 1 or a bad halo.

    Examples
    --------
    >>> [b.write for b in block_grid((5,), (2,), halo=1)]
    [(slice(0, 2, None),), (slice(2, 4, None),), (slice(4, 5, None),)]
    """
    shape = tuple(int(n) for n in shape)
    if len(block_shape) != len(shape) or not all(int(b) >= 1 for b in block_shape):
        raise InputError(f"block shape: expected {len(shape)} sides >= 1 voxel for a volume "
                         f"of shape {shape}, got {tuple(block_shape)}")
    h = as_halo(halo, len(shape))
    step = [min(int(b), n) for b, n in zip(block_shape, shape, strict=True)]
    ranges = [range(0, n, max(b, 1)) for n, b in zip(shape, step, strict=True)]
    out = []
    for index, starts in zip(product(*(range(len(r)) for r in ranges)), product(*ranges),
                             strict=True):
        write = tuple(slice(s, min(s + b, n)) for s, b, n in zip(starts, step, shape,
                                                                  strict=True))
        block = expand(write, h, shape)
        out.append(Block(tuple(index), block.write, block.read, block.interior))
    return out


def _last_readers(blocks: list[Block], halo: tuple[int, ...]) -> list[int]:
    """For each block of a :func:`block_grid`, the position of the last block reading
    its interior (the grid's neighbours within ceil(halo / block) steps)."""
    if not blocks:
        return []
    dims = tuple(i + 1 for i in blocks[-1].index)
    step = [max(1, s.stop - s.start) for s in blocks[0].write]
    reach = [-(-h // b) for h, b in zip(halo, step, strict=True)]
    return [int(np.ravel_multi_index(tuple(min(i + k, n - 1) for i, k, n in
                                           zip(b.index, reach, dims, strict=True)), dims))
            for b in blocks]


def map_blocks(func: BlockFunction, array: Any, *, block_shape: Sequence[int],
               halo: int | Sequence[int] = 0, out: np.ndarray | None = None,
               dtype: Any = None, progress: Progress | None = None,
               workers: int = 1) -> np.ndarray:
    """Run a block function over every block of ``array`` and assemble the interiors.

    Parameters
    ----------
    func : callable
        ``func(region, block) -> interior`` (see the module docstring); ``region`` is
        ``numpy.asarray(array[block.read])``.
    array : array-like
        Input volume (numpy, memmap, dask, zarr: only each block plus halo is read).
    block_shape : sequence of int
        Block (interior) shape in voxels.
    halo : int or sequence of int
        Halo in voxels, one value or one per axis (from the operator's radius).
    out : numpy.ndarray, optional
        Output of shape ``(*lead, *array.shape)``; may be ``array`` itself (in place:
        a block's result is then held until no later block reads its interior, and the
        blocks run serially). Default: allocated from the first block's result.
    dtype : dtype, optional
        Output dtype when ``out`` is not given (default: the block results' dtype).
    progress : callable, optional
        Wraps the iteration over blocks (e.g. ``tqdm``).
    workers : int
        Threads running blocks concurrently (results do not depend on it).

    Returns
    -------
    numpy.ndarray
        ``out``, every interior written.

    Examples
    --------
    >>> from scipy import ndimage as ndi
    >>> a = np.random.default_rng(0).random((9, 7, 8))
    >>> f = lambda region, block: block.crop(ndi.median_filter(region, 3))
    >>> np.array_equal(map_blocks(f, a, block_shape=(4, 4, 4), halo=1), ndi.median_filter(a, 3))
    True
    """
    shape = tuple(int(n) for n in array.shape)
    h = as_halo(halo, len(shape))
    blocks = block_grid(shape, block_shape, h)
    in_place = out is not None and np.shares_memory(out, array)

    def write(block: Block, interior: np.ndarray) -> None:
        nonlocal out
        if out is None:
            lead = interior.shape[:interior.ndim - len(shape)]
            out = np.empty((*lead, *shape), dtype or interior.dtype)
        out[(..., *block.write)] = interior

    def run(block: Block) -> tuple[Block, np.ndarray]:
        return block, func(np.asarray(array[block.read]), block)

    if in_place:
        _in_place(lambda b: (b, run(b)[1].astype(out.dtype, copy=False)), write, blocks, h,
                  progress)
    elif workers > 1 and len(blocks) > 1:
        write(*run(blocks[0]))  # allocates the output before threads write into it
        with ThreadPoolExecutor(max_workers=int(workers)) as pool:
            done = chain([None], pool.map(lambda b: write(*run(b)), blocks[1:]))
            for _ in progress(done) if progress is not None else done:
                pass
    else:
        for block in progress(blocks) if progress is not None else blocks:
            write(*run(block))
    return out if out is not None else np.empty(shape, dtype or np.float64)


def _in_place(run: Callable[[Block], tuple[Block, np.ndarray]],
              write: Callable[[Block, np.ndarray], None], blocks: list[Block],
              halo: tuple[int, ...], progress: Progress | None) -> None:
    """Serial run writing into the input: results (cast to the output's dtype) wait
    until the last block reading their voxels ran."""
    last = _last_readers(blocks, halo)
    pending: list[tuple[int, Block, np.ndarray]] = []
    positions = range(len(blocks))
    for pos in progress(positions) if progress is not None else positions:
        pending.append((last[pos], *run(blocks[pos])))
        keep = []
        for entry in pending:
            if entry[0] <= pos:
                write(entry[1], entry[2])
            else:
                keep.append(entry)
        pending = keep
