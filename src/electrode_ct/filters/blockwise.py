"""Every filter, crop and resample block by block (out of core, on Dask when given a client).

Each ``<operation>_blockwise(src, dst, *, ..., block_shape, client=None, progress=None,
resume=True, memory_limit=None)`` takes the in-memory function's options and writes the
same array into ``dst`` (a :class:`~electrode_ct.compute.engine.ZarrRef` made by the
caller, e.g. with :func:`electrode_ct.io.zarr.create_ome_zarr` and chunks dividing
``block_shape``; or a numpy array with ``client=None``), bit for bit:

- gaussian, unsharp: halo = ``int(4 σ + 0.5)`` voxels per axis (scipy's truncation);
- median: halo = ``size // 2`` per axis;
- nlm: slabs of whole (y, x) planes, halo ``patch_distance + patch_size // 2 + 1`` slices
  in z (the in-memory slab rule; blocks are ``block_shape[0]`` slices deep, so equal to
  ``nlm(slab=block_shape[0])``); the noise σ is a reduction over 8³ tiles;
- rings: per slice: blocks span whole slices, halo 0 (a block is ``block_shape[0]``
  slices of the whole (y, x) plane);
- normalise: percentile / min–max limits from exact reductions (min/max, a fixed-bin
  histogram, then the values of the bins holding the wanted ranks), then an elementwise
  rescale; ``zscore`` merges per-block mean and variance (equal within 1e-6 relative,
  the one filter not bitwise);
- crop: each output block reads its window of the input;
- resample: each output block reads the input region its sample coordinates fall in
  (linear or nearest for labels; cubic splines need whole lines and are refused).

:data:`BYTES_PER_VOXEL` gives each operation's working memory per voxel of a block's read
region (``docs/scale.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import ZarrRef, reduce_blocks, run_blocks
from electrode_ct.errors import InputError
from electrode_ct.filters._checks import to_voxels
from electrode_ct.filters.denoise import _odd_sizes, gaussian, median, nlm, unsharp
from electrode_ct.filters.intensity import _RANGES, rescale, work_dtype
from electrode_ct.filters.rings import suppress_rings

Progress = Callable[[Iterable[Any]], Iterable[Any]]
Source = ZarrRef | np.ndarray

BYTES_PER_VOXEL = {"gaussian": 16.0, "median": 8.0, "unsharp": 24.0, "nlm": 72.0,
                   "rings": 16.0, "normalise": 40.0, "crop": 4.0, "resample": 40.0}
"""Working memory per voxel of a block's read region (bytes): numpy allocations measured
with tracemalloc on a 64 × 96 × 96 uint16 block (gaussian 8, median 2, unsharp 16, rings
11.7, nlm 65.8, normalise 36.7 with float64 arithmetic) plus the block read from Zarr and
its output, rounded up; crop copies, resample holds three float64 sample coordinates."""

HIST_BINS = 65536
"""Bins of the fixed-range histogram used to locate percentile ranks."""


def _open(src: Any) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def _shape(src: Any) -> tuple[int, int, int]:
    return tuple(int(n) for n in _open(src).shape)  # type: ignore[return-value]


def _run(func: Callable[[np.ndarray, Block], np.ndarray], src: Any, dst: Any, *, halo: Any,
         block_shape: Sequence[int], client: Any, progress: Progress | None, resume: bool,
         memory_limit: int | None, op: str) -> int:
    return run_blocks(func, src, dst, block_shape=block_shape, halo=halo, client=client,
                      resume=resume, progress=progress, bytes_per_voxel=BYTES_PER_VOXEL[op],
                      memory_limit=memory_limit)


def gaussian_halo(sigma: Sequence[float]) -> tuple[int, ...]:
    """Halo (voxels) of a Gaussian of σ (voxels) truncated at 4 σ, as scipy does."""
    return tuple(int(4.0 * float(s) + 0.5) for s in sigma)


def _apply(region: np.ndarray, block: Block, *, func: Callable[..., np.ndarray],
           options: dict[str, Any]) -> np.ndarray:
    return block.crop(func(region, **options))


def gaussian_blockwise(src: Source, dst: Any, *, sigma: Any = 1.0, spacing: Any = None,
                       in_um: bool = False, block_shape: Sequence[int], client: Any = None,
                       progress: Progress | None = None, resume: bool = True,
                       memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.gaussian` block by block (halo ``int(4 σ + 0.5)``).

    Parameters
    ----------
    src, dst : ZarrRef or numpy.ndarray
        Input volume and float32 (or float64) output of the same shape.
    sigma, spacing, in_um
        As :func:`~electrode_ct.filters.gaussian` (σ in voxels, or µm with ``in_um``).
    block_shape : sequence of int
        Block shape (z, y, x) in voxels.
    client, progress, resume, memory_limit
        As :func:`electrode_ct.compute.run_blocks`.

    Returns
    -------
    int
        Blocks computed.
    """
    s = to_voxels(sigma, 3, spacing=spacing, in_um=in_um, name="sigma")
    return _run(partial(_apply, func=gaussian, options={"sigma": s}), src, dst,
                halo=gaussian_halo(s), block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="gaussian")


def median_blockwise(src: Source, dst: Any, *, size: Any = 3, spacing: Any = None,
                     in_um: bool = False, block_shape: Sequence[int], client: Any = None,
                     progress: Progress | None = None, resume: bool = True,
                     memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.median` block by block (halo ``size // 2``)."""
    sizes = _odd_sizes(size, 3, spacing=spacing, in_um=in_um)
    return _run(partial(_apply, func=median, options={"size": sizes}), src, dst,
                halo=tuple(k // 2 for k in sizes), block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="median")


def unsharp_blockwise(src: Source, dst: Any, *, radius: Any = 1.0, amount: float = 1.0,
                      spacing: Any = None, in_um: bool = False, block_shape: Sequence[int],
                      client: Any = None, progress: Progress | None = None,
                      resume: bool = True, memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.unsharp` block by block (the halo of its Gaussian)."""
    r = to_voxels(radius, 3, spacing=spacing, in_um=in_um, name="radius")
    return _run(partial(_apply, func=unsharp, options={"radius": r, "amount": amount}), src,
                dst, halo=gaussian_halo(r), block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="unsharp")


def _slab_blocks(shape: Sequence[int], block_shape: Sequence[int]) -> tuple[int, int, int]:
    return (min(int(block_shape[0]), int(shape[0])), int(shape[1]), int(shape[2]))


def rings_blockwise(src: Source, dst: Any, *, center: Any = None, width: int = 15,
                    n_angles: int | None = None, block_shape: Sequence[int],
                    client: Any = None, progress: Progress | None = None,
                    resume: bool = True, memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.suppress_rings` slab by slab.

    Each slice is filtered on its own, so a block is ``block_shape[0]`` whole slices
    (the (y, x) sides of ``block_shape`` are ignored) with no halo.
    """
    opts = {"center": center, "width": width, "n_angles": n_angles}
    return _run(partial(_apply, func=suppress_rings, options=opts), src, dst, halo=0,
                block_shape=_slab_blocks(_shape(src), block_shape), client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="rings")


def _tile_sigmas(region: np.ndarray, block: Block, *, shape: Sequence[int],
                 tile: int) -> np.ndarray:
    """σ (ddof 1) of the 8³ tiles of the whole-volume grid inside this block."""
    from electrode_ct.filters._checks import as_float

    stop = [min(s.stop, (n // tile) * tile) for s, n in zip(block.write, shape, strict=True)]
    if any(st <= s.start for st, s in zip(stop, block.write, strict=True)):
        return np.empty(0)
    part = np.asarray(as_float(region), np.float64)[tuple(
        slice(0, st - s.start) for st, s in zip(stop, block.write, strict=True))]
    dims: list[int] = []
    for n in part.shape:
        dims.extend([n // tile, tile])
    return part.reshape(dims).std(axis=(1, 3, 5), ddof=1).ravel()


def noise_sigma_blockwise(src: Source, *, block_shape: Sequence[int], client: Any = None,
                          progress: Progress | None = None, tile: int = 8,
                          quantile: float = 0.05) -> float:
    """:func:`electrode_ct.inspect.noise_sigma` of a volume as a reduction over slabs.

    Raises
    ------
    InputError
        A side shorter than one tile (give ``sigma`` or ``h`` instead).
    """
    shape = _shape(src)
    if min(shape) < tile:
        raise InputError(f"nlm: the volume {shape} is smaller than one {tile}³ noise tile; "
                         "give h and sigma")
    depth = max(tile, int(block_shape[0]) // tile * tile)
    parts = reduce_blocks(partial(_tile_sigmas, shape=shape, tile=tile), src,
                          block_shape=(min(depth, shape[0]), *shape[1:]), client=client,
                          progress=progress)
    return float(np.quantile(np.concatenate(parts), quantile))


def nlm_blockwise(src: Source, dst: Any, *, h: float | None = None,
                  sigma: float | None = None, patch_size: int = 5, patch_distance: int = 6,
                  block_shape: Sequence[int], client: Any = None,
                  progress: Progress | None = None, resume: bool = True,
                  memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.nlm` in slabs of ``block_shape[0]`` whole slices.

    Equals ``nlm(image, slab=block_shape[0], ...)``; σ (when not given) is estimated
    over the whole volume by :func:`noise_sigma_blockwise`.
    """
    if sigma is None:
        sigma = noise_sigma_blockwise(src, block_shape=block_shape, client=client)
    opts = {"h": h, "sigma": sigma, "patch_size": patch_size,
            "patch_distance": patch_distance, "slab": None}
    halo = int(patch_distance) + int(patch_size) // 2 + 1
    return _run(partial(_apply, func=nlm, options=opts), src, dst, halo=(halo, 0, 0),
                block_shape=_slab_blocks(_shape(src), block_shape), client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="nlm")


# -- normalise: exact global limits from reductions, then an elementwise rescale ----------
def _extremes(region: np.ndarray, block: Block, *, work: np.dtype) -> tuple[Any, Any, int]:
    data = block.crop(region).astype(work, copy=False)
    return data.min(), data.max(), int(data.size)


def _bins(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fixed-range histogram bin of each value (monotone in the value)."""
    scale = HIST_BINS / (hi - lo) if hi > lo else 0.0
    idx = ((data.astype(np.float64) - lo) * scale).astype(np.int64)
    return np.clip(idx, 0, HIST_BINS - 1)


def _histogram(region: np.ndarray, block: Block, *, work: np.dtype, lo: float,
               hi: float) -> np.ndarray:
    data = block.crop(region).astype(work, copy=False)
    return np.bincount(_bins(data, lo, hi).ravel(), minlength=HIST_BINS)


def _bin_values(region: np.ndarray, block: Block, *, work: np.dtype, lo: float, hi: float,
                wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = block.crop(region).astype(work, copy=False).ravel()
    return np.unique(data[np.isin(_bins(data, lo, hi), wanted)], return_counts=True)


@dataclass(frozen=True)
class _Reduce:
    """Block geometry and engine shared by the passes of one reduction."""

    src: Any
    block_shape: Sequence[int]
    client: Any
    progress: Progress | None

    def __call__(self, func: Callable[[np.ndarray, Block], Any]) -> list[Any]:
        return reduce_blocks(func, self.src, block_shape=self.block_shape, client=self.client,
                             progress=self.progress)


def order_statistics(src: Source, ranks: Sequence[int], *, work: np.dtype,
                     block_shape: Sequence[int], client: Any = None,
                     progress: Progress | None = None) -> np.ndarray:
    """The values of rank ``ranks`` (0 = smallest) of ``src`` cast to ``work``, exactly.

    Three reductions: min/max; a histogram of :data:`HIST_BINS` fixed bins over that
    range (merged by summing); the distinct values (with counts) of the bins holding the
    ranks, from which each rank is read off.
    """
    run = _Reduce(src, block_shape, client, progress)
    ext = run(partial(_extremes, work=work))
    lo, hi = float(min(e[0] for e in ext)), float(max(e[1] for e in ext))
    counts = np.sum(run(partial(_histogram, work=work, lo=lo, hi=hi)), axis=0)
    cum = np.cumsum(counts)
    which = np.searchsorted(cum, np.asarray(ranks), side="right")
    parts = run(partial(_bin_values, work=work, lo=lo, hi=hi, wanted=np.unique(which)))
    values = np.concatenate([p[0] for p in parts])
    order = np.argsort(values, kind="stable")
    values, repeats = values[order], np.concatenate([p[1] for p in parts])[order]
    out = []
    for r, b in zip(ranks, which, strict=True):
        first = int(cum[b - 1]) if b > 0 else 0
        in_bin = _bins(values, lo, hi) == b
        position = np.searchsorted(np.cumsum(repeats[in_bin]), r - first, side="right")
        out.append(values[in_bin][position])
    return np.asarray(out, dtype=work)


def percentile_limits(src: Source, low: float, high: float, *, block_shape: Sequence[int],
                      client: Any = None, progress: Progress | None = None
                      ) -> tuple[float, float]:
    """``numpy.percentile(volume, [low, high])`` of the whole volume, from reductions.

    Numpy's linear rule (``(n − 1) q`` virtual index, interpolation between the two
    neighbouring order statistics) is applied to the exact order statistics, so the
    limits are bit-identical to the in-memory ones.
    """
    shape = _shape(src)
    n = math.prod(shape)
    work = work_dtype(n)
    virtual = (n - 1) * np.true_divide(np.asarray([low, high], np.float64), 100)
    below = np.floor(virtual).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    stats = order_statistics(src, [*below, *above], work=work, block_shape=block_shape,
                             client=client, progress=progress)
    gamma = virtual - below
    return tuple(float(np.quantile(np.asarray([stats[i], stats[i + 2]], work), gamma[i]))
                 for i in range(2))  # type: ignore[return-value]


def _moments(region: np.ndarray, block: Block, *, work: np.dtype) -> tuple[int, float, float]:
    data = block.crop(region).astype(work, copy=False)
    mean = float(data.mean(dtype=np.float64))
    return int(data.size), mean, float(((data - mean) ** 2).sum(dtype=np.float64))


def _zscore_limits(parts: list[tuple[int, float, float]]) -> tuple[float, float]:
    """Mean and σ (ddof 0) merged from per-block (n, mean, Σ squared deviations)."""
    n_all, mean, m2 = 0, 0.0, 0.0
    for n, m, s in parts:  # Chan et al.'s pairwise update
        delta = m - mean
        total = n_all + n
        mean += delta * n / total
        m2 += s + delta * delta * n_all * n / total
        n_all = total
    return mean, math.sqrt(m2 / n_all)


def _rescale_block(region: np.ndarray, block: Block, *, work: np.dtype, lo: float, hi: float,
                   dtype: str) -> np.ndarray:
    return rescale(block.crop(region).astype(work, copy=False), lo, hi, dtype)


def _zscore_block(region: np.ndarray, block: Block, *, work: np.dtype, mean: float,
                  sd: float) -> np.ndarray:
    return ((block.crop(region).astype(work, copy=False) - mean) / sd).astype(np.float32)


def normalise_blockwise(src: Source, dst: Any, *, method: str = "percentile",
                        low: float = 0.5, high: float = 99.5, dtype: str = "float32",
                        block_shape: Sequence[int], client: Any = None,
                        progress: Progress | None = None, resume: bool = True,
                        memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.normalise` with its limits from global reductions.

    ``percentile`` and ``minmax`` equal the in-memory result bit for bit (exact order
    statistics, :func:`percentile_limits`); ``zscore`` merges per-block means and
    variances in float64 (within 1e-6 of the in-memory result).
    """
    if dtype not in _RANGES:
        raise InputError(f"dtype: expected one of {', '.join(_RANGES)}, got {dtype!r}")
    work = work_dtype(math.prod(_shape(src)))
    run = _Reduce(src, block_shape, client, progress)
    if method == "zscore":
        if dtype != "float32":
            raise InputError(f"dtype: z-score output must be float32, got {dtype!r}")
        mean, sd = _zscore_limits(run(partial(_moments, work=work)))
        if sd == 0:
            raise InputError("image: constant grey level; cannot z-score")
        func: Any = partial(_zscore_block, work=work, mean=mean, sd=sd)
    else:
        if method == "percentile":
            if not 0 <= low < high <= 100:
                raise InputError(f"low/high: need 0 <= low < high <= 100 percent, got "
                                 f"{low}, {high}")
            lo, hi = percentile_limits(src, low, high, block_shape=block_shape,
                                       client=client, progress=progress)
        elif method == "minmax":
            ext = run(partial(_extremes, work=work))
            lo, hi = float(min(e[0] for e in ext)), float(max(e[1] for e in ext))
        else:
            raise InputError(f"method: expected percentile, minmax or zscore, got {method!r}")
        if hi <= lo:
            raise InputError(f"image: grey levels {lo:g}..{hi:g} have no spread to rescale")
        func = partial(_rescale_block, work=work, lo=lo, hi=hi, dtype=dtype)
    return _run(func, src, dst, halo=0, block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="normalise")


# -- crop and resample: an output block reads the input region it maps to ----------------
@dataclass(frozen=True)
class MappedSource(ZarrRef):
    """A Zarr input seen through an output grid: ``open()`` gives an array of the
    output's shape whose ``[read]`` returns the input region that output block needs.

    ``kind`` is ``"crop"`` (``offset``: first input voxel) or ``"resample"``
    (``shape``: output shape; the region is the input box around the sample points).
    """

    kind: str = "crop"
    offset: tuple[int, ...] = (0, 0, 0)
    shape: tuple[int, ...] = (0, 0, 0)

    def open(self, mode: str = "r") -> Any:
        """A view of the input indexed in output coordinates."""
        return _MappedArray(self, ZarrRef(self.path, self.component).open("r"))

    def input_box(self, write: Sequence[slice], in_shape: Sequence[int]
                  ) -> tuple[tuple[slice, ...], list[np.ndarray]]:
        """Input region read for output slices ``write`` and, for resample, the sample
        coordinates of the output voxels relative to that region."""
        if self.kind == "crop":
            return tuple(slice(s.start + o, s.stop + o) for s, o in
                         zip(write, self.offset, strict=True)), []
        box, coords = [], []
        for s, n_in, n_out in zip(write, in_shape, self.shape, strict=True):
            zoom = np.divide(float(n_in), float(n_out))  # scipy's grid-mode factor
            c = (np.arange(s.start, s.stop, dtype=np.float64) + 0.5) * zoom - 0.5
            lo = max(0, int(np.floor(c.min())) - 1)
            box.append(slice(lo, min(int(n_in), int(np.floor(c.max())) + 3)))
            coords.append(c - lo)  # exact: lo is an integer <= c
        return tuple(box), coords


class _MappedArray:
    """Output-indexed view over an input array (see :class:`MappedSource`)."""

    def __init__(self, ref: MappedSource, array: Any) -> None:
        self.ref, self.array = ref, array
        self.shape = ref.shape

    def __getitem__(self, write: tuple[slice, ...]) -> np.ndarray:
        box, _ = self.ref.input_box(write, self.array.shape)
        return np.asarray(self.array[box])


def _resample_block(region: np.ndarray, block: Block, *, ref: MappedSource,
                    in_shape: tuple[int, ...], labels: bool) -> np.ndarray:
    from scipy import ndimage as ndi

    _, coords = ref.input_box(block.write, in_shape)
    grid = np.meshgrid(*coords, indexing="ij")
    data = region if labels else region.astype(np.float32, copy=False)
    return ndi.map_coordinates(data, grid, order=0 if labels else 1, mode="nearest")


def _copy_block(region: np.ndarray, block: Block) -> np.ndarray:
    return region


def crop_blockwise(src: ZarrRef | np.ndarray, dst: Any, *, offset: Sequence[int],
                   block_shape: Sequence[int], client: Any = None,
                   progress: Progress | None = None, resume: bool = True,
                   memory_limit: int | None = None) -> int:
    """Copy the window of ``src`` starting at ``offset`` (z, y, x) into ``dst`` (whose
    shape is the window's), block by block."""
    shape = tuple(int(n) for n in dst.shape) if isinstance(dst, np.ndarray) else \
        tuple(int(n) for n in dst.open("r").shape)
    if isinstance(src, np.ndarray):
        window = tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))
        return _run(_copy_block, src[window], dst, halo=0, block_shape=block_shape,
                    client=None, progress=progress, resume=resume,
                    memory_limit=memory_limit, op="crop")
    mapped = MappedSource(src.path, src.component, "crop", tuple(int(o) for o in offset),
                          shape)
    return _run(_copy_block, mapped, dst, halo=0, block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="crop")


def resample_blockwise(src: ZarrRef, dst: Any, *, order: int = 1, labels: bool = False,
                       block_shape: Sequence[int], client: Any = None,
                       progress: Progress | None = None, resume: bool = True,
                       memory_limit: int | None = None) -> int:
    """:func:`~electrode_ct.filters.resample` onto ``dst``'s shape, block by block.

    ``dst`` has the output shape of the in-memory function (``rint(shape × spacing /
    voxel_size)``, see :func:`electrode_ct.filters.geometry.resample`). Each output block
    reads the input box around its sample points (grid mode, ``mode="nearest"``) and
    interpolates linearly (grey, float32) or takes the nearest voxel (labels): equal to
    the in-memory result bit for bit.

    Raises
    ------
    InputError
        ``order=3``: cubic splines are prefiltered along whole lines, so they do not run
        blockwise.
    """
    if order not in (0, 1) and not labels:
        raise InputError(f"resample: order {order} (cubic) needs whole lines and does not "
                         "run block by block; use linear or the in-memory path")
    out_shape = tuple(int(n) for n in dst.open("r").shape) if isinstance(dst, ZarrRef) \
        else tuple(int(n) for n in dst.shape)
    in_ref = src if isinstance(src, ZarrRef) else None
    if in_ref is None:
        raise InputError("resample_blockwise: the input must be a Zarr array (ZarrRef)")
    in_shape = _shape(in_ref)
    mapped = MappedSource(in_ref.path, in_ref.component, "resample", (0, 0, 0), out_shape)
    func = partial(_resample_block, ref=mapped, in_shape=in_shape, labels=labels or order == 0)
    return _run(func, mapped, dst, halo=0, block_shape=block_shape, client=client,
                progress=progress, resume=resume, memory_limit=memory_limit, op="resample")


# -- dispatch (``ect filter`` and the pipeline's filter step) -------------------------------
_FUNCS: dict[str, Callable[..., int]] = {
    "gaussian": gaussian_blockwise, "median": median_blockwise, "unsharp": unsharp_blockwise,
    "nlm": nlm_blockwise, "rings": rings_blockwise, "normalise": normalise_blockwise}


def filter_halo(method: str, shape: Sequence[int], *, spacing: Any = None, in_um: bool = False,
                **options: Any) -> tuple[int, int, int]:
    """Halo (voxels, z y x) a named filter reads around a block, from its parameters.

    Per-slice and slab filters (rings, nlm) report their z halo and the whole plane in
    (y, x) (their blocks span whole slices).
    """
    m = method.lower()
    if m in ("gaussian", "unsharp"):
        key = "sigma" if m == "gaussian" else "radius"
        return gaussian_halo(to_voxels(options.get(key, 1.0), 3, spacing=spacing,
                                       in_um=in_um, name=key))  # type: ignore[return-value]
    if m == "median":
        sizes = _odd_sizes(options.get("size", 3), 3, spacing=spacing, in_um=in_um)
        return tuple(k // 2 for k in sizes)  # type: ignore[return-value]
    if m == "nlm":
        z = int(options.get("patch_distance", 6)) + int(options.get("patch_size", 5)) // 2 + 1
        return (z, 0, 0)
    return (0, 0, 0)


def filter_blockwise(src: Source, dst: Any, method: str, *, spacing: Any = None,
                     in_um: bool = False, block_shape: Sequence[int], client: Any = None,
                     progress: Progress | None = None, resume: bool = True,
                     memory_limit: int | None = None, **options: Any) -> int:
    """One named filter block by block: the blockwise twin of
    :func:`electrode_ct.filters.apply_filter` (same options; ``scale`` is normalise's
    method).

    Returns
    -------
    int
        Blocks computed.
    """
    m = method.lower()
    if m not in _FUNCS:
        raise InputError(f"--method: expected one of {', '.join(_FUNCS)}, got {method!r}")
    if m in ("gaussian", "median", "unsharp"):
        options.update(spacing=spacing, in_um=in_um)
    if m == "normalise" and "scale" in options:
        options["method"] = options.pop("scale")
    if m == "nlm":
        options.pop("slab", None)
        options.pop("workers", None)
    return _FUNCS[m](src, dst, block_shape=block_shape, client=client, progress=progress,
                     resume=resume, memory_limit=memory_limit, **options)


def output_dtype(method: str, image_dtype: Any, **options: Any) -> np.dtype:
    """Voxel type a named filter writes (as the in-memory functions)."""
    m = method.lower()
    if m == "median":
        return np.dtype(image_dtype)
    if m == "normalise":
        return np.dtype(options.get("dtype", "float32"))
    return np.dtype(np.float64 if np.dtype(image_dtype) == np.float64 else np.float32)
