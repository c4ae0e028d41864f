"""Block tasks on Dask: one task per block, read from and written to chunked Zarr.

The same block functions as :mod:`electrode_ct.blocks` (``func(region, block) ->
interior``) run here as one ``distributed`` task each: a task opens the source Zarr array,
reads the block plus its halo, runs the function and writes the interior into the
destination array, whose chunks never straddle two blocks (so no two tasks write one
chunk). Nothing but the block geometry and small results travel through the scheduler:
no per-voxel or per-label Dask graph is built.

- :func:`run_blocks` writes a volume (resumable: a finished block leaves a marker file,
  and a rerun skips marked blocks; Ctrl-C or a lost worker costs only the blocks in
  flight).
- :func:`reduce_blocks` returns one small partial result per block (histograms, sums per
  label, face equivalences) for the caller to merge exactly.

With ``client=None`` both run the blocks serially in this process (the same code path a
worker runs), which the in-memory path and the tests use as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.blocks import Block, BlockFunction, as_halo, block_grid
from electrode_ct.compute.heap import kept_heap
from electrode_ct.errors import ConfigError, ElectrodeCTError, InputError, ShapeError

DONE_FOLDER = ".ect_done"
"""Folder (inside the destination store) holding one marker file per finished block."""

RETRIES = 2
"""Times a block task is retried on another worker when its worker is lost."""


class BlockFailed(ElectrodeCTError):
    """A block task failed (after retries); finished blocks are kept."""


@dataclass(frozen=True)
class ZarrRef:
    """Where a Zarr array lives, in a form every worker can open.

    Attributes
    ----------
    path : str
        The store folder (on a file system every worker sees).
    component : str
        The array inside the store (``"0"`` for level 0 of an OME-Zarr image; ``""`` for
        a store that is one array).
    """

    path: str
    component: str = ""

    def open(self, mode: str = "r") -> Any:
        """The ``zarr.Array`` (``mode="r+"`` to write)."""
        import zarr

        store = zarr.open(self.path, mode=mode)
        return store[self.component] if self.component else store

    def done_folder(self) -> Path:
        """The folder of finished-block markers."""
        return Path(self.path) / DONE_FOLDER / (self.component or "_")


Source = ZarrRef | np.ndarray
"""A block task's input: a Zarr reference (any engine) or an in-memory array (serial)."""

Progress = Callable[[Iterable[Any]], Iterable[Any]]


def _open_source(src: Source) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def _marker(done: Path, block: Block) -> Path:
    return done / "_".join(str(i) for i in block.index)


def check_blocks(shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int],
                 *, bytes_per_voxel: float = 0.0, memory_limit: int | None = None) -> None:
    """Refuse a block geometry or memory budget that cannot work, before anything runs.

    Parameters
    ----------
    shape, block_shape, halo : sequence of int
        Volume shape, block shape and halo (voxels, per axis).
    bytes_per_voxel : float
        Working memory of the operator per voxel of a block's read region.
    memory_limit : int, optional
        Bytes one task may use.

    Raises
    ------
    ShapeError
        A block larger than the volume, or a halo larger than the block (one line naming
        both); a halo counts up to what it can reach (the volume's extent minus the
        block's).
    ConfigError
        One block (with its halo) needs more than ``memory_limit``; the message gives the
        minimum.
    """
    if len(block_shape) != len(shape):
        raise ShapeError(f"block shape {tuple(block_shape)}: expected {len(shape)} values")
    if any(b > n for b, n in zip(block_shape, shape, strict=True)):
        raise ShapeError(f"block shape {tuple(block_shape)} is larger than the volume "
                         f"{tuple(shape)}: give blocks within the volume")
    for b, h, n in zip(block_shape, halo, shape, strict=True):
        # a halo reaches at most n - b voxels past a block (one block spanning an axis
        # needs none there): only what it can read counts
        if min(h, n - b) > b:
            raise ShapeError(f"halo {tuple(halo)} voxels is larger than the block "
                             f"{tuple(block_shape)}: use blocks of at least the halo")
    if memory_limit and bytes_per_voxel:
        read = math.prod(min(b + 2 * h, n) for b, h, n in zip(block_shape, halo, shape,
                                                              strict=True))
        need = int(read * bytes_per_voxel)
        if need > memory_limit:
            raise ConfigError(f"compute.memory_limit {memory_limit / 1e9:.2f} GB is below what "
                              f"one block {tuple(block_shape)} with halo {tuple(halo)} needs: "
                              f"{need / 1e9:.2f} GB; give at least that or smaller blocks")


def default_block_shape(shape: Sequence[int], *, halo: Sequence[int] = (0, 0, 0),
                        bytes_per_voxel: float = 8.0, memory_limit: int | None = None,
                        max_edge: int = 256, multiple: int = 32) -> tuple[int, ...]:
    """A block shape for ``shape``: cubes of edge a multiple of ``multiple`` voxels, at
    most ``max_edge``, whose read region (block + halo) needs at most a quarter of
    ``memory_limit`` at ``bytes_per_voxel``, clipped to the volume.

    Examples
    --------
    >>> default_block_shape((1000, 1000, 1000))
    (256, 256, 256)
    >>> default_block_shape((40, 1000, 1000), memory_limit=10**9, bytes_per_voxel=100)
    (40, 224, 224)
    """
    edge = max_edge
    budget = memory_limit / 4 if memory_limit else math.inf
    h = tuple(halo) if len(tuple(halo)) == len(shape) else (0,) * len(shape)

    def need(e: int) -> float:
        return math.prod(min(e, n) + 2 * hh for n, hh in zip(shape, h, strict=True)
                         ) * bytes_per_voxel

    while edge > multiple and need(edge) > budget:
        edge -= multiple
    return tuple(min(edge, int(n)) for n in shape)


def _check_chunks(dst: Any, block_shape: Sequence[int]) -> None:
    chunks = tuple(dst.chunks[-len(block_shape):])
    shape = tuple(dst.shape[-len(block_shape):])
    # one block spanning an axis (whole slices for per-slice filters) writes whole chunks
    if any(b % c and b < n for b, c, n in zip(block_shape, chunks, shape, strict=True)):
        raise ShapeError(f"block shape {tuple(block_shape)} is not a multiple of the output's "
                         f"chunks {chunks}: two blocks would write one chunk")


def run_block(func: BlockFunction, src: Source, dst: ZarrRef | np.ndarray, block: Block,
              done: Path | None = None) -> tuple[int, ...]:
    """Run one block: read region, compute, write the interior, mark it done.

    This is the task a worker runs (and the serial path): only ``block``'s geometry and
    the references travel to it.
    """
    region = np.asarray(_open_source(src)[block.read])
    with kept_heap():  # a worker would hand freed arrays back to the kernel (compute.heap)
        interior = func(region, block)
    out = dst.open("r+") if isinstance(dst, ZarrRef) else dst
    out[(..., *block.write)] = interior
    if done is not None:
        _marker(done, block).touch()
    return block.index


def run_blocks(func: BlockFunction, src: Source, dst: ZarrRef | np.ndarray, *,
               block_shape: Sequence[int], halo: int | Sequence[int] = 0,
               client: Any = None, resume: bool = True, progress: Progress | None = None,
               bytes_per_voxel: float = 0.0, memory_limit: int | None = None) -> int:
    """Run a block function over every block of ``src`` into ``dst``.

    Parameters
    ----------
    func : callable
        Block function ``func(region, block) -> interior`` (picklable: module-level or a
        closure cloudpickle can ship).
    src : ZarrRef or numpy.ndarray
        Input volume (a numpy array only with ``client=None``).
    dst : ZarrRef or numpy.ndarray
        Output of shape ``(*lead, *src.shape)``, created by the caller; a Zarr output's
        chunks must divide ``block_shape``.
    block_shape : sequence of int
        Block (interior) shape in voxels.
    halo : int or sequence of int
        Halo in voxels, derived from the operator's parameters.
    client : distributed.Client, optional
        Runs one task per block on the cluster; ``None`` runs serially here.
    resume : bool
        Skip blocks marked finished by an earlier run into the same Zarr output.
    progress : callable, optional
        Wraps the iteration over finished blocks (e.g. ``tqdm``).
    bytes_per_voxel, memory_limit : float, int
        Refuse to start when one block needs more than ``memory_limit`` bytes.

    Returns
    -------
    int
        Blocks computed in this call (skipped ones not counted).

    Raises
    ------
    BlockFailed
        A block failed on every try; the message names it. Finished blocks stay marked.
    """
    source = _open_source(src)
    shape = tuple(int(n) for n in source.shape)
    h = as_halo(halo, len(shape))
    check_blocks(shape, block_shape, h, bytes_per_voxel=bytes_per_voxel,
                 memory_limit=memory_limit)
    done = None
    if isinstance(dst, ZarrRef):
        _check_chunks(dst.open("r"), block_shape)
        done = dst.done_folder()
        done.mkdir(parents=True, exist_ok=True)
    elif client is not None:
        raise InputError("an in-memory output runs only without a cluster: give a Zarr output")
    blocks = block_grid(shape, block_shape, h)
    if done is not None and resume:
        blocks = [b for b in blocks if not _marker(done, b).exists()]
    elif done is not None:
        for old in done.iterdir():
            old.unlink()
    if client is None:
        for block in progress(blocks) if progress is not None else blocks:
            run_block(func, src, dst, block, done)
        return len(blocks)
    _gather(client, [client.submit(run_block, func, src, dst, b, done, pure=False,
                                   retries=RETRIES, key=_key("block", b)) for b in blocks],
            blocks, progress)
    return len(blocks)


def reduce_blocks(func: BlockFunction, src: Source, *, block_shape: Sequence[int],
                  halo: int | Sequence[int] = 0, client: Any = None,
                  progress: Progress | None = None) -> list[Any]:
    """One partial result per block, in block (C) order, for the caller to merge.

    Parameters
    ----------
    func : callable
        ``func(region, block) -> partial``: a small, picklable result (counts, sums per
        label, face pairs) of the block's interior (the halo only informs it).
    src : ZarrRef or numpy.ndarray
        Input volume (numpy only with ``client=None``).
    block_shape, halo, client, progress
        As in :func:`run_blocks`.

    Returns
    -------
    list
        Partials in the order of :func:`blocks.block_grid`.
    """
    source = _open_source(src)
    shape = tuple(int(n) for n in source.shape)
    h = as_halo(halo, len(shape))
    check_blocks(shape, block_shape, h)
    blocks = block_grid(shape, block_shape, h)
    if client is None:
        it = progress(blocks) if progress is not None else blocks
        return [func(np.asarray(source[b.read]), b) for b in it]
    if not isinstance(src, ZarrRef):
        raise InputError("a cluster reads its input from Zarr: give a ZarrRef source")
    futures = [client.submit(_reduce_one, func, src, b, pure=False, retries=RETRIES,
                             key=_key("reduce", b)) for b in blocks]
    return _gather(client, futures, blocks, progress)


def _reduce_one(func: BlockFunction, src: ZarrRef, block: Block) -> Any:
    region = np.asarray(src.open("r")[block.read])
    with kept_heap():
        return func(region, block)


def _key(kind: str, block: Block) -> str:
    import uuid

    return f"ect-{kind}-{'-'.join(map(str, block.index))}-{uuid.uuid4().hex[:8]}"


def _gather(client: Any, futures: list[Any], blocks: list[Block],
            progress: Progress | None) -> list[Any]:
    """Results in submission order; the first failure cancels the rest and names its block."""
    from distributed import as_completed

    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    finished = as_completed(futures, loop=client.loop, with_results=False)
    try:
        for fut in progress(finished) if progress is not None else finished:
            i = position[fut.key]
            if fut.status == "error":
                raise _failure(fut, blocks[i])
            results[i] = fut.result()
    except BaseException:
        client.cancel(futures)
        raise
    return results


def _failure(fut: Any, block: Block) -> ElectrodeCTError:
    exc = fut.exception()
    if isinstance(exc, ElectrodeCTError):
        return exc
    where = ", ".join(f"{s.start}:{s.stop}" for s in block.write)
    return BlockFailed(f"block {block.index} (voxels {where}) failed after {RETRIES} "
                       f"retries: {type(exc).__name__}: {exc}")
