"""The particle table of an existing global label volume, on the block engine.

``ect measure`` of a label volume too large for memory (every operando state of a
10⁹-voxel scan) gives the same tables as :func:`electrode_ct.measure.table.particle_table`
row for row: integer columns identical, float columns within rounding (1e-9 relative).
Two reductions over the blocks of :func:`electrode_ct.compute.reduce_blocks` (serially or
one Dask task per block); only block geometry and per-label partials travel:

1. **Extents.** Each block returns the ids it holds with their bounding boxes (global
   voxel coordinates), its grey minimum and maximum, and (with a background mask) the
   count, mean and centred sum of squares of the masked grey values. The driver merges
   them exactly (min / max of boxes; the mask's variance by the pairwise formula of Chan
   et al., so it equals ``numpy.std`` of the whole mask to rounding), fixes the global
   grey histogram layout of the in-memory path, and derives the *reach*: the largest
   particle extent per axis.
2. **Rows by the owning block.** A particle is owned by the block holding the corner
   (z0, y0, x0) of its bounding box. A block reads the hull of its particles' boxes plus
   one voxel (clipped to the volume), i.e. at most its interior plus the reach, and runs
   today's code on it unchanged: :func:`~electrode_ct.measure.morphology.morphology_table`
   and :func:`~electrode_ct.measure.radial.layer_sums` (after a renumbering that makes
   the region's ids compact). It keeps only its own rows. The ``+1`` margin makes every
   row exact: every 2×2×2 cube and face contact of a particle lies within its box ± 1, and
   the nearest voxel of another label (the distance transform's answer) is never farther
   than the margin shell, while the volume's own faces are the same faces in both. The
   block also histograms its interior's background (label 0) grey values. Per-particle
   sums per layer, extreme values and grey histograms (in the global layout) go back to
   the driver, which concatenates them (each particle comes from one block: no sum is
   re-ordered) and builds the tables with today's
   :func:`~electrode_ct.measure.intensity.grey_table`,
   :func:`~electrode_ct.measure.radial.radial_table` and
   :func:`~electrode_ct.measure.table.join_grey`.

What may differ from the in-memory path, to rounding only: centroids and ellipsoid axes
are computed from moments in region coordinates (closer to the particle, so if anything
more precise), surface areas are summed in another order, and float grey sums too.
Integer grey sums (up to 2⁵³) are exact in float64, so their means, standard deviations
and percentiles are bitwise equal.

Memory: one task holds its read region, at most (block + reach)³ voxels, at about
:data:`MEASURE_BYTES_PER_VOXEL` bytes per voxel (measured 35 with float32 grey: labels,
grey, two compact copies, distance map, per-voxel indices; +8 for 16/32-bit integer grey,
handed to ``layer_sums`` as float64 so that its unused histograms keep 1 024 bins), plus
about 24 bytes per (owned particle × 1 024 bins), plus the bounding-box table of every
particle shipped to each task (56 bytes per particle).
A particle whose extent exceeds the block shape (or a given ``halo``) is refused before
the second pass, naming the particle and the halo it needs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import Progress, Source, ZarrRef, check_blocks, reduce_blocks
from electrode_ct.errors import ConfigError, InputError, ShapeError
from electrode_ct.labels import check_labels, label_boxes, merge_boxes
from electrode_ct.measure.intensity import grey_table
from electrode_ct.measure.morphology import morphology_table
from electrode_ct.measure.radial import (
    FINE_BINS,
    LayerSums,
    bin_index,
    hist_layout,
    layer_sums,
    radial_table,
)
from electrode_ct.measure.table import join_grey
from electrode_ct.volume import as_spacing

__all__ = ["MEASURE_BYTES_PER_VOXEL", "UINT32_MAX", "check_label_ids", "measure_blockwise"]

MEASURE_BYTES_PER_VOXEL = 48.0
"""Working bytes per voxel of a block's read region (measured: ``docs/scale.md``)."""

UINT32_MAX = (1 << 32) - 1
"""Largest particle id a table's ``label`` column (uint32) holds."""

_DENSE_IDS = 1 << 20  # as layer_sums: ids below this index its tables directly


def check_label_ids(max_id: int, *, name: str = "labels") -> None:
    """Refuse a label volume whose ids do not fit the tables' uint32 ``label`` column.

    Raises
    ------
    InputError
        ``max_id`` > 2³² − 1; the message names ``name``.
    """
    if int(max_id) > UINT32_MAX:
        raise InputError(f"{name}: particle id {int(max_id)} does not fit uint32 (max "
                         f"{UINT32_MAX}); relabel the particles sequentially first")


def _open(src: Source | None) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def _shape(src: Source) -> tuple[int, ...]:
    return tuple(int(n) for n in _open(src).shape)


# -- pass 1: extents -------------------------------------------------------------------------
def _mask_moments(values: np.ndarray) -> tuple[int, float, float]:
    """Count, mean and centred sum of squares of float64 values (two passes)."""
    n = int(values.size)
    if n == 0:
        return 0, 0.0, 0.0
    mean = float(values.mean())
    return n, mean, float(np.sum((values - mean) ** 2))


def _extent_partial(grey: Source | None, mask: Source | None, name: str) -> Any:
    def partial(region: np.ndarray, block: Block) -> dict[str, Any]:
        lab = check_labels(block.crop(region), name=name, ndim=(3,))
        check_label_ids(int(lab.max(initial=0)), name=name)
        boxes = label_boxes(lab, offset=tuple(s.start for s in block.write))
        out: dict[str, Any] = {"boxes": boxes, "grey": None, "mask": (0, 0.0, 0.0)}
        if grey is not None:
            g = np.asarray(_open(grey)[block.write])
            out["grey"] = (np.min(g), np.max(g))  # NaN propagates: refused in _specs
            if mask is not None:
                m = np.asarray(_open(mask)[block.write]) != 0
                out["mask"] = _mask_moments(g[m].astype(np.float64))
        return out

    return partial


def merge_moments(parts: Sequence[tuple[int, float, float]]) -> tuple[int, float, float]:
    """Merge (count, mean, centred sum of squares) partials by the pairwise formula.

    Chan, Golub & LeVeque (1979): M2 = M2_a + M2_b + δ² n_a n_b / n with δ the difference
    of the means, free of the cancellation of a naive sum of squares.
    """
    n, mean, m2 = 0, 0.0, 0.0
    for nb, mb, m2b in parts:
        if nb == 0:
            continue
        tot = n + nb
        delta = mb - mean
        mean += delta * nb / tot
        m2 += m2b + delta * delta * n * nb / tot
        n = tot
    return n, mean, m2


@dataclasses.dataclass
class _Extents:
    """Merged pass-1 result: every particle's box, the grey range, σ of the mask."""

    ids: np.ndarray
    boxes: np.ndarray
    grey_range: tuple[Any, Any] | None
    mask: tuple[int, float, float]


def _merge_extents(parts: list[dict[str, Any]]) -> _Extents:
    boxes = merge_boxes([p["boxes"] for p in parts])  # columns: id, box start, box stop, ...
    greys = [p["grey"] for p in parts if p["grey"] is not None]
    rng = (np.min([g[0] for g in greys]), np.max([g[1] for g in greys])) if greys else None
    return _Extents(boxes[:, 0], boxes[:, 1:7], rng,
                    merge_moments([p["mask"] for p in parts]))


# -- reach -----------------------------------------------------------------------------------
def _reach(ext: _Extents, shape: Sequence[int], block_shape: Sequence[int],
           halo: int | Sequence[int] | None) -> tuple[int, ...]:
    """Largest particle extent per axis (the halo a block's region reaches), checked
    against the blocks and a given halo; the error names the particle and the halo."""
    size = ext.boxes[:, 3:] - ext.boxes[:, :3]
    reach = tuple(int(v) for v in size.max(axis=0)) if len(size) else (0, 0, 0)
    limit = [b if b < n else n for b, n in zip(block_shape, shape, strict=True)]
    what = "the blocks " + str(tuple(int(b) for b in block_shape))
    if halo is not None:
        h = (int(halo),) * 3 if np.isscalar(halo) else tuple(int(v) for v in halo)  # type: ignore[arg-type]
        limit = [min(a, b) for a, b in zip(limit, h, strict=True)]
        what = f"the halo {h}"
    over = size > np.asarray(limit)
    if over.any():
        i = int(np.argmax((size - np.asarray(limit)).max(axis=1)))
        b = ext.boxes[i]
        where = ", ".join(f"{a} {b[k]}:{b[k + 3]}" for k, a in enumerate("zyx"))
        need = tuple(int(v) for v in np.maximum(size.max(axis=0), 1))
        raise ShapeError(f"particle {int(ext.ids[i])} (voxels {where}) spans "
                         f"{tuple(int(v) for v in size[i])} voxels, more than {what} reach: "
                         f"it needs a halo of {need} voxels; give --block-shape of at least "
                         f"{' '.join(map(str, need))}")
    return reach


# -- pass 2: rows by the owning block --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every block task needs (shipped with the task)."""

    labels: Source
    grey: Source | None
    ids: np.ndarray
    boxes: np.ndarray
    block_shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    properties: str
    spec: Any  # radial.HistLayout: the global particle-histogram layout
    fine: Any  # radial.HistLayout: the background histogram layout


def _owned(plan: _Plan, block: Block) -> np.ndarray:
    """Rows of ``plan.ids`` owned by ``block`` (box corner inside it)."""
    corner = plan.boxes[:, :3] // np.asarray(plan.block_shape)
    return np.flatnonzero(np.all(corner == np.asarray(block.index), axis=1))


def _morphology_rows(compact: np.ndarray, own_new: np.ndarray, own_ids: np.ndarray,
                     offset: np.ndarray, boxes: np.ndarray, plan: _Plan,
                     shape: Sequence[int]) -> pd.DataFrame:
    """Today's morphology rows of the owned particles, in global ids and coordinates."""
    table = morphology_table(compact, spacing=plan.spacing, properties=plan.properties)
    pos = np.searchsorted(table["label"].to_numpy().astype(np.int64), own_new)
    table = table.iloc[pos].reset_index(drop=True)
    table["label"] = own_ids.astype(np.uint32)
    for k, axis in enumerate("zyx"):
        cen = table[f"centroid_{axis}"].to_numpy() + offset[k]
        table[f"centroid_{axis}"] = cen
        table[f"centroid_{axis}_um"] = cen * plan.spacing[k]
    for k, key in enumerate(("bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1")):
        table[key] = boxes[:, k]
    table["touches_border"] = ((boxes[:, :3] == 0) | (boxes[:, 3:] == np.asarray(shape))
                               ).any(axis=1)
    return table


def _grey_rows(compact: np.ndarray, g: np.ndarray, own_new: np.ndarray,
               plan: _Plan) -> dict[str, Any]:
    """Layer sums, extremes and global-layout histograms of the owned particles.

    The owned particles become ids 1..k and every other particle one id k + 1: each
    particle's distance transform sees the same boundaries (another label is another
    label), while ``layer_sums`` keeps tables for k + 1 ids, not for the whole region.
    """
    k = own_new.size
    lut = np.full(int(compact.max()) + 1, k + 1, np.uint32)
    lut[0] = 0
    lut[own_new] = np.arange(1, k + 1, dtype=np.uint32)
    sub = lut[compact]
    # 16/32-bit integer grey as float64: the same sums and extremes, but layer_sums keeps
    # 1 024-bin histograms (unused here) instead of k × levels exact ones (up to 512 MB)
    wide = g.dtype.kind in "iu" and g.dtype.itemsize >= 2
    sums = layer_sums(sub, g.astype(np.float64) if wide else g, spacing=plan.spacing,
                      parallel=1)
    rows = np.searchsorted(sums.ids, np.arange(1, k + 1))
    idx = np.flatnonzero((sub.reshape(-1) > 0) & (sub.reshape(-1) <= k))
    key = (sub.reshape(-1)[idx].astype(np.int64) - 1) * plan.spec.bins
    key += bin_index(g.reshape(-1)[idx], plan.spec)
    nz, counts = np.unique(key, return_counts=True)  # sparse: k × bins may be 2²⁶ cells
    return {"count": sums.count[rows], "total": sums.total[rows],
            "total_sq": sums.total_sq[rows], "gmin": sums.grey_min[rows],
            "gmax": sums.grey_max[rows], "hist_key": nz, "hist_n": counts}


def _rows_partial(plan: _Plan) -> Any:
    def partial(region: np.ndarray, block: Block) -> dict[str, Any]:
        import fastremap

        shape = _shape(plan.labels)
        out: dict[str, Any] = {"rows": np.zeros(0, np.int64), "bg": None}
        if plan.grey is not None:
            g = np.asarray(_open(plan.grey)[block.write])
            out["bg"] = np.bincount(bin_index(g[block.crop(region) == 0], plan.fine),
                                    minlength=plan.fine.bins)[:plan.fine.bins]
        own = _owned(plan, block)
        if own.size == 0:
            return out
        boxes = plan.boxes[own]
        lo = np.maximum(boxes[:, :3].min(axis=0) - 1, 0)
        hi = np.minimum(boxes[:, 3:].max(axis=0) + 1, shape)
        read = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        compact, remap = fastremap.renumber(np.asarray(_open(plan.labels)[read]),
                                            preserve_zero=True, in_place=False)
        own_ids = plan.ids[own]
        own_new = np.array([remap[int(i)] for i in own_ids], np.int64)
        out["rows"] = own
        out["morph"] = _morphology_rows(compact, own_new, own_ids, lo, boxes, plan, shape)
        if plan.grey is not None:
            out.update(_grey_rows(compact, np.asarray(_open(plan.grey)[read]), own_new, plan))
        return out

    return partial


# -- merge -----------------------------------------------------------------------------------
def _stack(parts: list[dict[str, Any]], key: str, n: int, width: int, fill: float) -> np.ndarray:
    """Per-particle rows of every block into one (n, width) array (row = particle)."""
    first = next(p[key] for p in parts if p["rows"].size)
    out = np.full((n, width), fill, dtype=first.dtype)
    for p in parts:
        if p["rows"].size:
            out[p["rows"], :p[key].shape[1]] = p[key]
    return out


def _layer_sums(parts: list[dict[str, Any]], plan: _Plan, shape: Sequence[int]) -> LayerSums:
    """The whole volume's :class:`LayerSums`, as ``layer_sums`` would give in memory."""
    n = plan.ids.size
    width = max(p["count"].shape[1] for p in parts if p["rows"].size)
    hist = np.zeros(n * plan.spec.bins, np.int64)
    gmin, gmax = np.empty(n), np.empty(n)
    for p in parts:
        if p["rows"].size:
            r, b = np.divmod(p["hist_key"], plan.spec.bins)
            hist[p["rows"][r] * plan.spec.bins + b] = p["hist_n"]
            gmin[p["rows"]], gmax[p["rows"]] = p["gmin"], p["gmax"]
    bg_fine = np.sum([p["bg"] for p in parts], axis=0).astype(np.int64)
    bg = bg_fine if plan.spec.exact else bg_fine.reshape(plan.spec.bins, FINE_BINS).sum(axis=1)
    border = ((plan.boxes[:, :3] == 0) | (plan.boxes[:, 3:] == np.asarray(shape))).any(axis=1)
    return LayerSums(
        ids=plan.ids, count=_stack(parts, "count", n, width, 0),
        total=_stack(parts, "total", n, width, 0.0),
        total_sq=_stack(parts, "total_sq", n, width, 0.0),
        hist=hist.reshape(n, plan.spec.bins), background_hist=bg, background_fine=bg_fine,
        background_width=plan.fine.width, hist_low=plan.spec.low, hist_width=plan.spec.width,
        hist_exact=plan.spec.exact, grey_min=gmin, grey_max=gmax, border=border,
        spacing=plan.spacing, unit_um=min(plan.spacing))


def _specs(ext: _Extents, dtype: np.dtype) -> tuple[Any, Any]:
    """The in-memory path's histogram layouts for the whole grey volume."""
    top = int(ext.ids[-1]) if ext.ids.size else 0
    rows = top + 1 if top < _DENSE_IDS else ext.ids.size + 1
    lo, hi = ext.grey_range  # type: ignore[misc]
    spec = hist_layout(np.array([lo, hi], dtype=dtype), rows)
    fine = spec if spec.exact else dataclasses.replace(
        spec, width=spec.width / FINE_BINS, bins=spec.bins * FINE_BINS)
    return spec, fine


def _background_sigma(ext: _Extents) -> float:
    n, _, m2 = ext.mask
    if n < 2:
        raise InputError("background: the mask selects fewer than 2 voxels")
    return math.sqrt(m2 / (n - 1))


def _check_inputs(labels: Source, grey: Source | None, background: Source | None,
                  names: tuple[str, str], client: Any) -> tuple[int, ...]:
    shape = _shape(labels)
    if len(shape) != 3:
        raise ShapeError(f"{names[0]}: the block engine measures 3-D label volumes, got "
                         f"shape {shape}")
    if not np.issubdtype(_open(labels).dtype, np.integer):
        raise InputError(f"{names[0]}: a label volume must have an integer dtype, got "
                         f"{_open(labels).dtype}")
    for src, what in ((grey, names[1]), (background, "background")):
        if src is not None and client is not None and not isinstance(src, ZarrRef):
            raise InputError(f"{what}: a cluster reads its inputs from Zarr: give a ZarrRef")
        if src is not None and _shape(src) != shape:
            raise ShapeError(f"{what}: shape {_shape(src)} differs from the labels' shape "
                             f"{shape} ({names[0]})")
    return shape


def measure_blockwise(
    labels: Source,
    grey: Source | None = None,
    *,
    spacing: float | Sequence[float] = (1.0, 1.0, 1.0),
    properties: str = "all",
    exclude_layers: int = 5,
    background: Source | None = None,
    background_sigma: float | None = None,
    normalise: str = "radial_max",
    block_shape: Sequence[int],
    halo: int | Sequence[int] | None = None,
    client: Any = None,
    progress: Progress | None = None,
    memory_limit: int | None = None,
    names: tuple[str, str] = ("labels", "grey"),
    timings: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`~electrode_ct.measure.table.particle_table` of a 3-D volume, block by block.

    Parameters
    ----------
    labels : ZarrRef or numpy.ndarray
        Global particle label volume (integer ids up to 2³² − 1, 0 = background); a numpy
        array only with ``client=None``.
    grey : ZarrRef or numpy.ndarray, optional
        Grey volume of the same shape (integer or float).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    properties, exclude_layers, background_sigma, normalise
        As for :func:`~electrode_ct.measure.table.particle_table`.
    background : ZarrRef or numpy.ndarray, optional
        Background mask for σ_bg (std, ddof 1, of the masked grey values).
    block_shape : sequence of int
        Block shape (voxels); a particle may not span more than a block along any axis.
    halo : int or 3 ints, optional
        Largest reach (voxels) a block may read beyond its interior; default: the block.
    client : distributed.Client, optional
        One task per block on the cluster (inputs as ``ZarrRef``); None runs serially.
    progress : callable, optional
        Wraps the iteration over finished blocks.
    memory_limit : int, optional
        Bytes per task: refused before the second pass when a region cannot fit.
    names : (str, str)
        How errors name the label and grey inputs.
    timings : dict, optional
        Filled with ``extents`` and ``rows`` wall times (s).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame or None)
        The particle table and the radial table (None without grey), as in memory.

    Raises
    ------
    ShapeError
        Inputs of different shapes, a label volume not 3-D, or a particle wider than the
        reach (the message names it and the halo needed).
    InputError
        Labels not integer, negative, or ids beyond uint32.
    """
    clock = timings if timings is not None else {}
    shape = _check_inputs(labels, grey, background, names, client)
    sp = as_spacing(spacing, name="spacing")
    if properties not in ("all", "basic"):
        raise InputError(f"properties: expected 'all' or 'basic', got {properties!r}")
    if background_sigma is None and background is not None and grey is None:
        raise InputError("background: a background mask needs the grey volume")
    bs = tuple(int(b) for b in block_shape)
    t0 = time.perf_counter()
    ext = _merge_extents(reduce_blocks(
        _extent_partial(grey, background if background_sigma is None else None, names[0]),
        labels, block_shape=bs, client=client, progress=progress))
    clock["extents"] = time.perf_counter() - t0
    if ext.ids.size == 0:
        raise InputError(f"{names[0]}: no particles (every voxel is 0)")
    reach = _reach(ext, shape, bs, halo)
    try:
        check_blocks(shape, bs, reach, bytes_per_voxel=MEASURE_BYTES_PER_VOXEL,
                     memory_limit=memory_limit)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the largest particle spans {reach} voxels)") from None
    spec = fine = None
    if grey is not None:
        spec, fine = _specs(ext, _open(grey).dtype)
        if background_sigma is None and background is not None:
            background_sigma = _background_sigma(ext)
    plan = _Plan(labels, grey, ext.ids, ext.boxes, bs, sp, properties, spec, fine)
    t1 = time.perf_counter()
    parts = reduce_blocks(_rows_partial(plan), labels, block_shape=bs, client=client,
                          progress=progress)
    clock["rows"] = time.perf_counter() - t1
    table = pd.concat([p["morph"] for p in parts if p["rows"].size], ignore_index=True)
    table = table.sort_values("label", kind="stable").reset_index(drop=True)
    if grey is None:
        return table, None
    sums = _layer_sums(parts, plan, shape)
    grey_cols = grey_table(sums, exclude_layers=exclude_layers,
                           background_sigma=background_sigma)
    return join_grey(table, grey_cols), radial_table(sums, normalise=normalise)
