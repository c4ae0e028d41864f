"""Radial grey-level layers of every particle in one pass (GREAT2).

One multi-label anisotropic Euclidean distance transform (``edt``) gives every particle
voxel its distance to the particle surface (the nearest voxel of another label or of the
background; the volume border is *not* a surface). The distance in units of the
smallest voxel edge, rounded half up, is the voxel's *layer*: layer 1 is the surface
shell whatever the spacing. Grey-level count, sum and sum of squares per
(particle, layer), plus a per-particle grey histogram, are then reduced with
``numpy.bincount`` over chunks of foreground voxels, so memory stays bounded by the
label and grey volumes plus one slab of the distance map. Each chunk's tables cover only
the band of particle ids it holds; chunks are reduced on parallel threads and added in
raster order, so the sums do not depend on the number of threads.

Large volumes are transformed in slabs along axis 0 with a halo. A slab's result is
exact when its largest core distance does not exceed the halo; otherwise the slab is
redone with a larger halo, so the result always equals the whole-volume transform.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from electrode_ct.blocks import block_grid, expand
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.labels import border_labels, check_labels
from electrode_ct.volume import as_spacing

NORMALISATIONS = ("radial_max", "surface")
"""Ways to normalise a radial profile (see :func:`radial_table`)."""

RADIAL_COLUMNS = (
    "label", "layer", "distance_um", "relative_radius", "n_voxels",
    "grey_mean", "grey_std", "grey_norm", "border",
)
"""Columns of the long radial table (in this order)."""

_CHUNK = 1 << 22  # voxels per reduction chunk (bounds temporaries to ~100 MB)
_SLAB_VOXELS = 1 << 28  # voxels per distance-transform slab (1 GB of float32)
_DENSE_IDS = 1 << 20  # label ids below this index the tables directly
_EXACT_BINS = 1 << 26  # (particles x grey levels) cells of an exact histogram
_APPROX_BINS = 1024  # histogram bins per particle when exact is too large
FINE_BINS = 64
"""Background-histogram bins per particle-histogram bin when the layout is not exact."""


@dataclass
class LayerSums:
    """Per-(particle, layer) grey sums and per-particle grey histograms.

    Attributes
    ----------
    ids : numpy.ndarray
        Particle ids (sorted, non-zero), length n.
    count, total, total_sq : numpy.ndarray
        Shape (n, L + 1): voxel count, grey sum and grey sum of squares of each layer
        (column 0, the background layer, is empty for particles).
    hist : numpy.ndarray
        Shape (n, B): per-particle grey histogram.
    background_hist : numpy.ndarray
        Shape (B,): histogram of the label-0 voxels.
    hist_low, hist_width : float
        Grey value of bin 0 and bin width (1 for an exact integer histogram).
    hist_exact : bool
        True when every bin holds one integer grey value (quantiles are then exact).
    grey_min, grey_max : numpy.ndarray
        Per-particle extreme grey values.
    border : numpy.ndarray
        Per-particle flag: a voxel lies on a face (edge in 2-D) of the volume.
    spacing : tuple of float
        Voxel size per array axis in µm (2 or 3 values).
    unit_um : float
        Layer thickness, the smallest voxel edge in µm.
    edt_halo_voxels : list of int
        Halo used for each distance-transform slab (empty: one whole-volume transform).
    background_fine : numpy.ndarray, optional
        Histogram of the label-0 voxels in bins of ``background_width`` from
        ``hist_low``: ``background_hist`` itself when exact, else 64 bins per bin of it
        (the resolution the noise σ estimate needs on float or wide-range data); None:
        use ``background_hist``.
    background_width : float, optional
        Bin width of ``background_fine`` (grey levels).
    """

    ids: np.ndarray
    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    hist: np.ndarray
    background_hist: np.ndarray
    hist_low: float
    hist_width: float
    hist_exact: bool
    grey_min: np.ndarray
    grey_max: np.ndarray
    border: np.ndarray
    spacing: tuple[float, ...]
    unit_um: float
    edt_halo_voxels: list[int] = field(default_factory=list)
    background_fine: np.ndarray | None = None
    background_width: float | None = None

    @property
    def max_layer(self) -> np.ndarray:
        """Deepest non-empty layer of each particle (0 for none)."""
        if self.count.shape[1] == 0:
            return np.zeros(len(self.ids), dtype=np.int64)
        filled = self.count > 0
        last = filled.shape[1] - 1 - np.argmax(filled[:, ::-1], axis=1)
        return np.where(filled.any(axis=1), last, 0).astype(np.int64)


# -- input checks ---------------------------------------------------------------------
def check_pair(
    labels: np.ndarray, grey: np.ndarray, spacing: float | Iterable[float] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Check and squeeze a label/grey pair; return arrays and per-axis spacing (µm).

    A (1, y, x) volume is treated as the 2-D image (y, x). ``spacing`` may be one value,
    one per array axis, or three (z, y, x) values for a 2-D image (z is dropped).

    Raises
    ------
    InputError
        Labels not integer, grey not numeric, spacing not positive.
    ShapeError
        Grey and label shapes differ, or not 2-D / 3-D.
    """
    lab = check_labels(labels, name="labels")
    g = np.asarray(getattr(grey, "data", grey))
    if g.shape != lab.shape:
        raise ShapeError(
            f"grey: shape {tuple(g.shape)} differs from the labels' shape {tuple(lab.shape)}"
        )
    if g.dtype == bool or not (np.issubdtype(g.dtype, np.integer)
                               or np.issubdtype(g.dtype, np.floating)):
        raise InputError(f"grey: expected an integer or float image, got dtype {g.dtype}")
    if lab.ndim == 3 and lab.shape[0] == 1:
        lab, g = lab[0], g[0]
    sp = _spacing(spacing, lab.ndim)
    return np.ascontiguousarray(lab), np.ascontiguousarray(g), sp


def _spacing(spacing: float | Iterable[float] | None, ndim: int) -> tuple[float, ...]:
    """Voxel size per array axis (µm) by :func:`~electrode_ct.volume.as_spacing`; a 2-D
    image also takes its two (y, x) values."""
    if ndim == 2 and spacing is not None and not np.isscalar(spacing):
        vals = list(spacing)  # type: ignore[arg-type]
        if len(vals) == 2:  # (y, x): a z value is made up, then dropped below
            vals = [vals[0], *vals]
        spacing = vals
    return as_spacing(spacing, name="spacing")[3 - ndim:]


# -- distance transform -----------------------------------------------------------------
def _threads(parallel: int | None) -> int:
    if parallel is not None:
        return max(1, int(parallel))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def distance_slabs(
    labels: np.ndarray,
    spacing: tuple[float, ...],
    *,
    slab_voxels: int = _SLAB_VOXELS,
    halo: int = 32,
    parallel: int | None = None,
) -> Iterator[tuple[int, int, np.ndarray, int]]:
    """Multi-label anisotropic EDT (µm) of ``labels`` in slabs along axis 0.

    Yields ``(start, stop, distances, halo)``: the exact distance map of rows
    ``start:stop`` (float32, µm), equal to that of one whole-volume ``edt.edt`` call
    with ``black_border=False``. A volume of at most ``slab_voxels`` voxels is one slab.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image (2-D or 3-D), C-contiguous.
    spacing : tuple of float
        Voxel size per axis in µm.
    slab_voxels : int
        Voxels per slab core (memory bound of the transform).
    halo : int
        Initial halo in voxels along axis 0; adapted to the distances seen and doubled
        (the slab redone) whenever a core distance exceeds it.
    parallel : int, optional
        Threads for ``edt`` (default: the CPUs available).
    """
    import edt

    n0 = labels.shape[0]
    row = int(np.prod(labels.shape[1:]))
    threads = _threads(parallel)
    if labels.size <= slab_voxels or n0 <= 1:
        d = edt.edt(labels, anisotropy=spacing, black_border=False, parallel=threads)
        yield 0, n0, d, 0
        return
    step = max(1, slab_voxels // max(row, 1))
    h = max(1, int(halo))
    for slab in block_grid(labels.shape, (step, *labels.shape[1:])):
        while True:  # the halo needed is known only after the transform: grow and redo
            block = expand(slab.write, (h,) + (0,) * (labels.ndim - 1), labels.shape)
            d = edt.edt(np.ascontiguousarray(labels[block.read]), anisotropy=spacing,
                        black_border=False, parallel=threads)
            core = block.crop(d)
            reach = float(core.max()) if core.size else 0.0
            if block.read[0] == slice(0, n0) or reach <= h * spacing[0]:
                break
            h *= 2
        yield slab.write[0].start, slab.write[0].stop, core, h
        del d, core
        # next halo: what the distances seen need, with a margin
        h = max(4, int(math.ceil(1.25 * reach / spacing[0])) + 2)


# -- reduction --------------------------------------------------------------------------
@dataclass
class HistLayout:
    """Grey-histogram bin layout shared by every partial table of one measurement.

    Attributes
    ----------
    low : float
        Grey value of bin 0's lower edge (grey units).
    width : float
        Bin width (grey units); 1 for exact integer layouts.
    bins : int
        Number of bins.
    exact : bool
        True when every integer grey level has its own bin.
    """

    low: float
    width: float
    bins: int
    exact: bool


def hist_layout(grey: np.ndarray, rows: int) -> HistLayout:
    """Histogram layout for ``grey`` with ``rows`` particle rows.

    Integer grey gets one bin per level while (levels × rows) stays below the exact-table
    cap; otherwise, and for float grey, a fixed number of equal bins over ``[min, max]``.
    Only the minimum and maximum of ``grey`` are read (a two-value array is enough).
    """
    if grey.dtype == np.uint8:
        lo, hi = 0, 255
    else:
        lo, hi = float(grey.min()), float(grey.max())
    if np.issubdtype(grey.dtype, np.integer):
        levels = int(hi - lo) + 1
        if levels * rows <= _EXACT_BINS:
            return HistLayout(float(lo), 1.0, levels, True)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError("grey: the image holds NaN or infinite values")
    width = (hi - lo) / _APPROX_BINS if hi > lo else 1.0
    return HistLayout(float(lo), float(width), _APPROX_BINS, False)


def bin_index(g: np.ndarray, spec: HistLayout) -> np.ndarray:
    """Bin index of each value (unsigned integers binned from 0 are their own index)."""
    if spec.exact and not spec.low and g.dtype.kind == "u" and g.dtype.itemsize < 8:
        return g
    if spec.exact:
        b = g.astype(np.int64)
        if spec.low:
            b -= int(spec.low)
        return b
    b = ((g.astype(np.float64) - spec.low) / spec.width).astype(np.int64)
    np.clip(b, 0, spec.bins - 1, out=b)
    return b


@dataclass
class _Chunk:
    """Sums of one chunk of voxels over the table rows ``lo .. lo + len(count) - 1``.

    Particle ids are nearly sorted in space, so a chunk touches a narrow band of rows:
    its ``bincount`` tables cover that band only (the per-bin sums are those of a
    full-length ``bincount``).
    """

    lo: int
    count: np.ndarray  # (band, layers) int64
    total: np.ndarray  # (band, layers) float64
    total_sq: np.ndarray
    hist: np.ndarray  # (band, bins) int64
    grey_levels: np.ndarray  # exact: every voxel's bin; binned: label-0 voxels' fine bin
    grey_counts: np.ndarray
    gmin: np.ndarray | None = None
    gmax: np.ndarray | None = None


def _band_sums(key: np.ndarray, band: int, width: int,
               weights: np.ndarray | None = None) -> np.ndarray:
    """``bincount`` of ``key`` (row × width + column) as a (band, width) table."""
    return np.bincount(key, weights=weights, minlength=band * width).reshape(band, width)


def _grey_levels(gc: np.ndarray, fg: np.ndarray, spec: HistLayout, fine: HistLayout
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Occupied bins and counts: of every voxel (exact bins), else of the label-0 voxels."""
    if spec.exact:
        import fastremap

        values, counts = fastremap.unique(gc, return_counts=True)
        return bin_index(np.asarray(values), spec), np.asarray(counts, dtype=np.int64)
    counts = np.bincount(bin_index(gc[~fg], fine), minlength=fine.bins)[:fine.bins]
    return np.arange(fine.bins), counts


def _chunk_sums(lc: np.ndarray, gc: np.ndarray, dc: np.ndarray, ids: np.ndarray | None,
                inv: np.float32, spec: HistLayout, fine: HistLayout) -> _Chunk:
    """Reduce one chunk of voxels: labels, grey values and distances (µm) alike."""
    fg = lc != 0
    levels, level_counts = _grey_levels(gc, fg, spec, fine)
    if not fg.any():
        return _Chunk(0, *(np.zeros((0, 1)),) * 4, levels, level_counts)
    lf = lc[fg]
    r = lf.astype(np.intp) if ids is None else np.searchsorted(ids, lf) + 1
    lo = int(r.min())
    band = int(r.max()) + 1 - lo
    r -= lo  # rows relative to the band
    dv = dc[fg]
    dv *= inv
    dv += np.float32(0.5)
    layer = dv.astype(np.intp)
    del dv
    n_layers = int(layer.max()) + 1
    gf = gc[fg]
    hkey = r * spec.bins
    hkey += bin_index(gf, spec)
    hist = _band_sums(hkey, band, spec.bins)
    del hkey
    gv = gf.astype(np.float64)
    gmin = gmax = None
    if not spec.exact:
        gmin, gmax = np.full(band, np.inf), np.full(band, -np.inf)
        np.minimum.at(gmin, r, gv)
        np.maximum.at(gmax, r, gv)
    key = r * n_layers
    key += layer
    count = _band_sums(key, band, n_layers)
    total = _band_sums(key, band, n_layers, gv)
    gv *= gv
    total_sq = _band_sums(key, band, n_layers, gv)
    return _Chunk(lo, count, total, total_sq, hist, levels, level_counts, gmin, gmax)


@dataclass
class _Accumulator:
    """Running sums of :func:`layer_sums`, indexed by table row (row 0 = background)."""

    rows: int
    spec: HistLayout
    fine: HistLayout
    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    hist: np.ndarray
    grey_hist: np.ndarray  # exact: every voxel; binned: label-0 voxels in fine bins
    gmin: np.ndarray
    gmax: np.ndarray

    @classmethod
    def empty(cls, rows: int, spec: HistLayout) -> _Accumulator:
        fine = spec if spec.exact else HistLayout(spec.low, spec.width / FINE_BINS,
                                              spec.bins * FINE_BINS, False)
        layers = np.zeros((rows, 1), np.int64)
        return cls(rows, spec, fine, layers, layers.astype(np.float64),
                   layers.astype(np.float64), np.zeros((rows, spec.bins), np.int64),
                   np.zeros(fine.bins, np.int64), np.full(rows, np.inf),
                   np.full(rows, -np.inf))

    def add(self, c: _Chunk) -> None:
        """Add the sums of one chunk (chunks are added in raster order)."""
        self.grey_hist[c.grey_levels] += c.grey_counts
        band, top = c.count.shape
        if band == 0:
            return
        n_layers = self.count.shape[1]
        if top > n_layers:
            pad = ((0, 0), (0, top - n_layers))
            self.count, self.total, self.total_sq = (
                np.pad(a, pad) for a in (self.count, self.total, self.total_sq))
        rows = slice(c.lo, c.lo + band)
        self.count[rows, :top] += c.count
        self.total[rows, :top] += c.total
        self.total_sq[rows, :top] += c.total_sq
        self.hist[rows] += c.hist
        if c.gmin is not None:
            np.minimum(self.gmin[rows], c.gmin, out=self.gmin[rows])
            np.maximum(self.gmax[rows], c.gmax, out=self.gmax[rows])

    def background(self) -> np.ndarray:
        """Histogram of the label-0 voxels in ``fine`` bins."""
        if self.spec.exact:
            return self.grey_hist - self.hist.sum(axis=0)
        return self.grey_hist


def _row_ids(lab: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Ids behind the table rows 1..n (None: the id is the row) and the number of rows."""
    max_id = int(lab.max()) if lab.size else 0
    if max_id < _DENSE_IDS:
        return None, max_id + 1
    import fastremap

    ids_all = np.asarray(fastremap.unique(lab))
    ids_all = ids_all[ids_all != 0]
    return ids_all, len(ids_all) + 1


def _extremes(acc: _Accumulator, hist: np.ndarray, sel: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-particle smallest and largest grey value (from the exact histogram if any)."""
    spec = acc.spec
    if not spec.exact:
        return acc.gmin[sel], acc.gmax[sel]
    nz = hist > 0
    lo_idx = np.argmax(nz, axis=1)
    hi_idx = spec.bins - 1 - np.argmax(nz[:, ::-1], axis=1)
    return spec.low + lo_idx, spec.low + hi_idx


def layer_sums(
    labels: np.ndarray,
    grey: np.ndarray,
    *,
    spacing: float | Iterable[float] | None = None,
    slab_voxels: int = _SLAB_VOXELS,
    halo: int = 32,
    parallel: int | None = None,
) -> LayerSums:
    """Reduce a grey image per (particle, radial layer) in one pass.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer particle labels (2-D or 3-D, (z, y, x)), 0 = background.
    grey : numpy.ndarray
        Grey image of the same shape (integer or float).
    spacing : float or sequence of float
        Voxel size in µm: one value, one per axis, or (z, y, x) for a 2-D image.
    slab_voxels : int
        Voxels per distance-transform slab (bounds the memory of the transform).
    halo : int
        Initial slab halo in voxels (adapted automatically; results are exact).
    parallel : int, optional
        Threads for the distance transform and the reduction (default: all available
        CPUs); the sums do not depend on it.

    Returns
    -------
    LayerSums
        Layer sums, histograms, border flags; layer thickness ``unit_um`` is the
        smallest voxel edge (µm) and layer = round(distance / unit) (half up).

    Raises
    ------
    InputError, ShapeError
        Non-integer labels, non-numeric grey, differing shapes, bad spacing.
    """
    lab, g, sp = check_pair(labels, grey, spacing)
    unit = min(sp)
    ids_all, rows = _row_ids(lab)
    acc = _Accumulator.empty(rows, hist_layout(g, rows))
    halos: list[int] = []
    inv = np.float32(1.0 / unit)
    lab_flat, g_flat = lab.reshape(-1), g.reshape(-1)
    row_len = int(np.prod(lab.shape[1:]))
    with ThreadPoolExecutor(_threads(parallel)) as pool:
        for start, _stop, dist, h in distance_slabs(lab, sp, slab_voxels=slab_voxels,
                                                   halo=halo, parallel=parallel):
            if h:
                halos.append(h)
            _reduce_slab(pool, acc, lab_flat, g_flat, dist.reshape(-1), start * row_len,
                         ids_all, inv)
            del dist  # before the next slab's transform
    return _finish(acc, ids_all, lab, sp, unit, halos)


def _reduce_slab(pool: ThreadPoolExecutor, acc: _Accumulator, lab_flat: np.ndarray,
                 g_flat: np.ndarray, d_flat: np.ndarray, base: int, ids: np.ndarray | None,
                 inv: np.float32) -> None:
    """Add the voxels ``base .. base + d_flat.size - 1`` (flat index) to ``acc``.

    Chunks are reduced in parallel and added in raster order, so the sums do not depend
    on the number of threads.
    """
    def reduce(c0: int) -> _Chunk:
        cut = slice(base + c0, base + min(d_flat.size, c0 + _CHUNK))
        return _chunk_sums(lab_flat[cut], g_flat[cut], d_flat[c0:c0 + _CHUNK], ids, inv,
                           acc.spec, acc.fine)

    for part in pool.map(reduce, range(0, d_flat.size, _CHUNK)):
        acc.add(part)


def _finish(acc: _Accumulator, ids_all: np.ndarray | None, lab: np.ndarray,
            sp: tuple[float, ...], unit: float, halos: list[int]) -> LayerSums:
    """The :class:`LayerSums` of the rows of the particles present."""
    background = acc.background()
    if ids_all is None:
        present = np.flatnonzero(acc.count.sum(axis=1))
        sel = present[present != 0]
        ids = sel.astype(np.int64)
    else:
        ids = ids_all.astype(np.int64)
        sel = np.arange(1, acc.rows)
    hist = acc.hist[sel]
    pmin, pmax = _extremes(acc, hist, sel)
    spec = acc.spec
    coarse = background if spec.exact else background.reshape(spec.bins, FINE_BINS).sum(axis=1)
    return LayerSums(
        ids=ids, count=acc.count[sel], total=acc.total[sel], total_sq=acc.total_sq[sel],
        hist=hist, background_hist=coarse.copy(), background_fine=background,
        background_width=acc.fine.width, hist_low=spec.low,
        hist_width=spec.width, hist_exact=spec.exact, grey_min=np.asarray(pmin, float),
        grey_max=np.asarray(pmax, float), border=np.isin(ids, border_labels(lab)),
        spacing=sp, unit_um=unit, edt_halo_voxels=halos,
    )


# -- tables -----------------------------------------------------------------------------
def mean_std(n: np.ndarray, s: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation (ddof = 0) from count, sum, sum of squares."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        var = np.where(n > 0, s2 / np.maximum(n, 1) - mean * mean, np.nan)
    return mean, np.sqrt(np.clip(var, 0.0, None))


def radial_table(sums: LayerSums, *, normalise: str = "radial_max") -> pd.DataFrame:
    """Long radial grey-level table: one row per (particle, non-empty layer).

    Parameters
    ----------
    sums : LayerSums
        From :func:`layer_sums`.
    normalise : {"radial_max", "surface"}
        ``radial_max``: ``grey_norm`` = (mean − surface mean) / (brightest layer mean −
        surface mean), so the surface layer is 0 and the brightest layer 1.
        ``surface``: ``grey_norm`` = mean / surface mean. The surface layer is the
        particle's outermost non-empty layer (layer 1 unless anisotropy skips it).

    Returns
    -------
    pandas.DataFrame
        :data:`RADIAL_COLUMNS`: ``label``, ``layer`` (1 = surface shell),
        ``distance_um`` (layer × smallest voxel edge, µm), ``relative_radius``
        (layer / the particle's deepest layer: near 0 at the surface, 1 at the core),
        ``n_voxels``, ``grey_mean``, ``grey_std`` (ddof 0), ``grey_norm``, ``border``.
    """
    if normalise not in NORMALISATIONS:
        raise InputError(
            f"normalise: expected one of {', '.join(NORMALISATIONS)}, got {normalise!r}"
        )
    mean, std = mean_std(sums.count, sums.total, sums.total_sq)
    pi, layer = np.nonzero(sums.count > 0)
    keep = layer > 0
    pi, layer = pi[keep], layer[keep]
    n = len(sums.ids)
    if n and sums.count.shape[1] > 1:
        filled = sums.count[:, 1:] > 0
        first = np.argmax(filled, axis=1) + 1
        surf = mean[np.arange(n), first]
        brightest = np.nanmax(np.where(sums.count > 0, mean, np.nan)[:, 1:], axis=1) \
            if filled.any() else np.full(n, np.nan)
    else:
        surf = brightest = np.full(n, np.nan)
    m = mean[pi, layer]
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalise == "radial_max":
            span = brightest[pi] - surf[pi]
            norm = np.where(span > 0, (m - surf[pi]) / span, np.nan)
        else:
            norm = np.where(surf[pi] != 0, m / surf[pi], np.nan)
        depth = sums.max_layer
        rel = layer / np.maximum(depth[pi], 1)
    return pd.DataFrame({
        "label": sums.ids[pi].astype(np.uint32),
        "layer": layer.astype(np.int32),
        "distance_um": layer * sums.unit_um,
        "relative_radius": rel,
        "n_voxels": sums.count[pi, layer].astype(np.int64),
        "grey_mean": m,
        "grey_std": std[pi, layer],
        "grey_norm": norm,
        "border": sums.border[pi],
    }, columns=list(RADIAL_COLUMNS))


def radial_profiles(
    labels: np.ndarray,
    grey: np.ndarray,
    *,
    spacing: float | Iterable[float] | None = None,
    normalise: str = "radial_max",
) -> pd.DataFrame:
    """Radial grey-level table of every particle (see :func:`radial_table`).

    Parameters
    ----------
    labels, grey : numpy.ndarray
        Particle labels (integer) and grey image of the same 2-D or 3-D shape.
    spacing : float or sequence of float
        Voxel size in µm.
    normalise : {"radial_max", "surface"}
        Normalisation of ``grey_norm``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((9, 9), np.uint32); lab[1:8, 1:8] = 1
    >>> radial_profiles(lab, lab * 10.0)["layer"].tolist()
    [1, 2, 3, 4]
    """
    return radial_table(layer_sums(labels, grey, spacing=spacing), normalise=normalise)
