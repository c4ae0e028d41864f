"""CPU-light 3-D per-particle descriptors for flaw classification.

Everything is computed on the *healed* particle masks (cracks and voids filled, see
:func:`electrode_ct.cracks.candidates.heal_labels`) in a few whole-volume passes:

1. The GREAT2 layer sums (:func:`electrode_ct.measure.radial.layer_sums`): per
   (particle, distance-from-surface layer) voxel count, grey sum and sum of squares.
2. One voxel pass for what sums cannot give: the fraction of dark voxels inside the
   particle, a thin-dark-line (black top-hat) response, and the fraction of interior
   voxels that are dark in the fine-scale image (:mod:`electrode_ct.cracks.highpass`:
   shading and particle grey offsets removed), reduced with ``bincount``.

Grey levels are expressed in units of the scan's own contrast: ``(g - solid) /
(solid - background)``, where ``solid`` is the median core grey level of the candidate
particles and ``background`` the median grey level of the label-0 voxels, so the
descriptors do not depend on the bit depth, the scanner gain or the offset. The
population's median radial profile (by absolute layer) is the reference of an intact
particle: it carries the partial-volume and point-spread darkening of the surface
layers, so a particle's deficit against it is the crack signal (GREAT2's idea).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from electrode_ct.measure.radial import LayerSums, distance_slabs, layer_sums, mean_std
from electrode_ct.volume import as_spacing

DESCRIPTOR_COLUMNS = (
    "core_rel", "local_rel", "pv_deficit", "deficit_outer", "deficit_mid", "deficit_inner",
    "std_rel", "dark_fraction", "very_dark_fraction", "tophat_mean", "tophat_fraction",
    "diameter_vox", "fine_dark_fraction",
)
"""Descriptor columns computed per particle (all dimensionless)."""

SCAN_DEPENDENT_COLUMNS = ("local_rel", "tophat_mean")
"""Descriptors whose intact-particle level moves with the scan's shading and edge fringes
(measured: the intact-particle mean of ``local_rel`` moves by more than half of its
intact-to-flawed gap between nano-CT phantoms of one preset), so a classifier trained on
one scan miscounts another; kept in the table, left out of the classifier."""

FEATURE_COLUMNS = tuple(c for c in DESCRIPTOR_COLUMNS if c not in SCAN_DEPENDENT_COLUMNS)
"""Descriptor columns used by the features classifier (all dimensionless)."""

N_BINS = 3


@dataclass
class Reference:
    """Population reference levels of a scan (grey levels of the input image).

    Attributes
    ----------
    solid : float
        Median core grey level of the candidate particles.
    background : float
        Median grey level of the label-0 voxels.
    noise : float
        Median within-particle standard deviation of the core layers (grey levels).
    profile : numpy.ndarray
        Median layer mean by absolute layer index (index 0 unused), grey levels.
    offset, scale : float
        Map from these grey levels to the caller's input grey levels
        (``input = offset + scale * level``); 0 and 1 unless the descriptors were computed
        on a :func:`quantise`-d copy.
    """

    solid: float
    background: float
    noise: float
    profile: np.ndarray
    offset: float = 0.0
    scale: float = 1.0

    def to_input(self, level: float) -> float:
        """A grey level of this reference in the caller's input grey units."""
        return float(self.offset + self.scale * level)

    @property
    def contrast(self) -> float:
        """Solid minus background grey level (at least a tiny positive number)."""
        return max(self.solid - self.background, 1e-9)


def _hist_median(hist: np.ndarray, low: float, width: float) -> float:
    c = np.cumsum(hist)
    if c[-1] == 0:
        return float("nan")
    return low + width * float(np.searchsorted(c, c[-1] / 2))


def population_reference(sums: LayerSums, rows: np.ndarray, *, core_layer: int = 3) -> Reference:
    """Reference levels from the layer sums of the rows ``rows`` (the candidates).

    Parameters
    ----------
    sums : LayerSums
        Layer sums of the healed labels.
    rows : numpy.ndarray
        Row indices (into ``sums.ids``) of the particles forming the population.
    core_layer : int
        Layers at or beyond this one form the particle core.
    """
    cnt, tot, tot2 = sums.count[rows], sums.total[rows], sums.total_sq[rows]
    k = min(core_layer, cnt.shape[1] - 1)
    core_n = cnt[:, k:].sum(axis=1)
    core_m, core_s = mean_std(core_n, tot[:, k:].sum(axis=1), tot2[:, k:].sum(axis=1))
    ok = core_n > 0
    solid = float(np.median(core_m[ok])) if ok.any() else float(np.nanmedian(tot.sum(1)
                                                                              / cnt.sum(1)))
    noise = float(np.median(core_s[ok])) if ok.any() else 0.0
    background = _hist_median(sums.background_hist, sums.hist_low, sums.hist_width)
    if not np.isfinite(background):
        background = float(np.percentile(sums.grey_min, 5))
    with np.errstate(divide="ignore", invalid="ignore"):
        layer_mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    prof = np.full(cnt.shape[1], solid)
    filled = np.isfinite(layer_mean).sum(axis=0) >= 3
    if filled.any():
        prof[filled] = np.nanmedian(layer_mean[:, filled], axis=0)
    return Reference(solid=solid, background=background, noise=noise, profile=prof)


GREY_LEVELS = 1024
"""Grey levels of the quantised copy the descriptors are computed on."""


QUANTISE_PERCENTILES = (0.05, 99.95)
"""Percentiles of the grey levels mapped to 0 and ``levels - 1`` by :func:`quantise`."""


def range_from_percentiles(pct: list[float], vmin: float, vmax: float) -> tuple[float, float]:
    """The quantisation range from the sub-sample's :data:`QUANTISE_PERCENTILES`, its
    minimum and maximum (min and max + 1 for a flat sub-sample)."""
    lo, hi = (float(v) for v in pct)
    if not hi > lo:
        lo, hi = float(vmin), float(vmax) + 1.0
    return lo, hi


def quantise_range(grey: np.ndarray) -> tuple[float, float]:
    """Input grey levels mapped to 0 and ``levels - 1`` by :func:`quantise`: the 0.05 and
    99.95 percentiles on every 2nd voxel per axis (min and max + 1 for a flat volume).

    The block engine merges the same range exactly from blocks
    (:func:`electrode_ct.cracks.population.quantise_range_blocks`)."""
    sub = np.asarray(grey[::2, ::2, ::2], np.float32)
    pct = list(np.percentile(sub, list(QUANTISE_PERCENTILES)))
    return range_from_percentiles(pct, float(sub.min()), float(sub.max()))


def quantise(grey: np.ndarray, *, levels: int = GREY_LEVELS,
             grey_range: tuple[float, float] | None = None) -> np.ndarray:
    """Map a grey volume linearly onto ``0 .. levels - 1`` (uint16) between its 0.05 and
    99.95 percentiles (estimated on every 2nd voxel per axis), clipping outside.

    Exact per-particle histograms then stay small whatever the input depth; the step is
    far below the noise of any CT scan. ``grey_range`` (input grey levels mapped to 0 and
    ``levels - 1``) replaces :func:`quantise_range` of ``grey`` when given (a crop
    quantised with its whole scan's range).
    """
    lo, hi = quantise_range(grey) if grey_range is None else grey_range
    q = (np.asarray(grey, np.float32) - lo) * ((levels - 1) / (hi - lo))
    np.clip(q, 0, levels - 1, out=q)
    return np.rint(q).astype(np.uint16)


FINE_DARK_Z = 1.5
"""A voxel is dark in the fine-scale image below the scan's median minus this many robust
standard deviations (of the high-pass values over the particle interiors)."""


def _voxel_pass(grey: np.ndarray, healed: np.ndarray, spacing: tuple[float, float, float],
                ref: Reference, n_rows: int, lut: np.ndarray,
                fine: np.ndarray) -> np.ndarray:
    """Per-particle sums over interior voxels: count, dark, very dark, top-hat, top-hat hits;
    then count and fine-scale dark voxels over the voxels more than one voxel inside
    (``fine``: :func:`~electrode_ct.cracks.highpass.fine_scale`)."""
    from scipy import ndimage as ndi

    out = np.zeros((7, n_rows))
    c = ref.contrast
    g = grey.astype(np.float32, copy=False)
    ball = ndi.generate_binary_structure(3, 1)
    closed = ndi.grey_closing(g, footprint=ball)
    fine_cut = np.float32(-FINE_DARK_Z)
    unit = min(spacing)
    row_len = int(np.prod(healed.shape[1:]))
    lab_flat, g_flat, c_flat = healed.reshape(-1), g.reshape(-1), closed.reshape(-1)
    f_flat = fine.reshape(-1)
    dark_cut = ref.solid - 0.5 * c
    very_cut = ref.solid - 0.75 * c
    for start, _stop, dist, _h in distance_slabs(np.ascontiguousarray(healed), spacing):
        d = dist.reshape(-1)
        base = start * row_len
        sel = np.flatnonzero(d > 1.5 * unit)
        r = lut[lab_flat[base + sel]]
        gv = g_flat[base + sel]
        th = (c_flat[base + sel] - gv) / c
        m = lambda w, r=r: np.bincount(r, weights=w, minlength=n_rows)  # noqa: E731
        out[0] += np.bincount(r, minlength=n_rows)
        out[1] += m((gv < dark_cut).astype(np.float64))
        out[2] += m((gv < very_cut).astype(np.float64))
        out[3] += m(th.astype(np.float64))
        out[4] += m((th > 0.5).astype(np.float64))
        sel = np.flatnonzero(d > 1.0 * unit)
        r = lut[lab_flat[base + sel]]
        out[5] += np.bincount(r, minlength=n_rows)
        out[6] += np.bincount(r, weights=(f_flat[base + sel] < fine_cut).astype(np.float64),
                              minlength=n_rows)
    return out


def particle_descriptors(grey: np.ndarray, healed: np.ndarray, ids: np.ndarray, *,
                         spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
                         sums: LayerSums | None = None,
                         fine: np.ndarray | None = None,
                         grey_range: tuple[float, float] | None = None
                         ) -> tuple[pd.DataFrame, Reference]:
    """Descriptors of the particles ``ids`` (rows in the order of ``ids``).

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x).
    healed : numpy.ndarray
        Healed particle labels (same shape).
    ids : numpy.ndarray
        Particle ids to describe (the candidates; they also form the reference population).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    sums : LayerSums, optional
        Precomputed ``layer_sums(healed, grey)``; ``grey`` is then used as given,
        otherwise it is first :func:`quantise`-d.
    fine : numpy.ndarray, optional
        :func:`~electrode_ct.cracks.highpass.fine_scale` of ``grey`` (input grey levels),
        computed when not given.
    grey_range : (float, float), optional
        The quantisation range (:func:`quantise_range` of the whole scan; computed from
        ``grey`` when not given); unused with ``sums``.

    Returns
    -------
    table : pandas.DataFrame
        ``label`` then :data:`DESCRIPTOR_COLUMNS`:

        - ``core_rel``: core mean (layers >= 3) minus the population solid level, in
          contrast units (0 = like the population, -1 = background grey);
        - ``local_rel``: the same against the particle's own 90th grey percentile of its
          core (insensitive to smooth shading);
        - ``pv_deficit``: volume-weighted deficit of the layer means against the
          population's median profile, in contrast units (the partial-volume crack
          fraction estimate); ``deficit_outer/mid/inner``: the same in thirds of the
          relative radius (surface to centre);
        - ``std_rel``: core standard deviation over the population's;
        - ``dark_fraction``, ``very_dark_fraction``: fraction of interior voxels (more than
          1.5 voxels from the surface) below solid - 0.5 and - 0.75 contrast;
        - ``tophat_mean``, ``tophat_fraction``: mean black top-hat (6-connected grey
          closing minus grey, contrast units) over the interior, and the fraction above
          0.5 (thin dark lines);
        - ``diameter_vox``: equivalent diameter in voxels of the smallest edge;
        - ``fine_dark_fraction``: fraction of the voxels more than one voxel inside the
          particle whose fine-scale (high-pass, :func:`~electrode_ct.cracks.highpass.highpass`)
          grey level is below the scan's median by more than :data:`FINE_DARK_Z` robust
          standard deviations (thin cracks; insensitive to shading and grey offsets).
    reference : Reference
        Population levels used (grey levels of the quantised copy when ``sums`` is not
        given; :meth:`Reference.to_input` maps them back to ``grey``'s units).
    """
    from electrode_ct.cracks.highpass import fine_scale

    sp = as_spacing(spacing, name="spacing")
    offset, scale = 0.0, 1.0
    if fine is None:  # on the input grey levels (before quantising)
        fine = fine_scale(grey, healed)
    if sums is None:
        lo, hi = quantise_range(grey) if grey_range is None else grey_range
        offset, scale = lo, (hi - lo) / (GREY_LEVELS - 1)
        grey = quantise(grey, grey_range=(lo, hi))
        sums = layer_sums(healed, grey, spacing=sp)
    ids = np.asarray(ids, np.int64)
    rows = np.searchsorted(sums.ids, ids)
    rows = np.clip(rows, 0, len(sums.ids) - 1)
    ref = population_reference(sums, rows)
    ref.offset, ref.scale = offset, scale
    c = ref.contrast
    cnt, tot, tot2 = sums.count[rows], sums.total[rows], sums.total_sq[rows]
    n_layers = cnt.shape[1]
    k = min(3, n_layers - 1)
    core_n = cnt[:, k:].sum(axis=1)
    core_m, core_s = mean_std(core_n, tot[:, k:].sum(axis=1), tot2[:, k:].sum(axis=1))
    whole_m, _ = mean_std(cnt.sum(1), tot.sum(1), tot2.sum(1))
    core_m = np.where(core_n > 0, core_m, whole_m)
    # particle's own bright level from its histogram (90th percentile)
    from electrode_ct.measure.intensity import histogram_quantiles

    p90 = histogram_quantiles(sums.hist[rows], [90.0], low=sums.hist_low,
                              width=sums.hist_width, exact=sums.hist_exact)[:, 0]
    prof = ref.profile[None, :n_layers]
    deficit = cnt * prof - tot  # grey-level deficit summed per layer
    deficit[:, 0] = 0.0
    vol = np.maximum(cnt.sum(axis=1), 1)
    depth = np.maximum(sums.max_layer[rows], 1)
    rel = np.arange(n_layers)[None, :] / depth[:, None]
    bins = np.minimum((rel * N_BINS).astype(np.int64), N_BINS - 1)
    parts = []
    for b in range(N_BINS):
        w = (bins == b) & (np.arange(n_layers)[None, :] > 0)
        nb = np.maximum((cnt * w).sum(axis=1), 1)
        parts.append((deficit * w).sum(axis=1) / nb / c)
    lut = np.zeros(int(max(healed.max(), ids.max())) + 1, np.int64)
    lut[ids] = np.arange(len(ids))
    # voxels of non-candidate particles go to a dump row
    mask_lut = np.full_like(lut, len(ids))
    mask_lut[ids] = lut[ids]
    vox = _voxel_pass(grey, healed, sp, ref, len(ids) + 1, mask_lut, fine)[:, :len(ids)]
    del fine
    n_in = np.maximum(vox[0], 1)
    data = {
        "label": ids.astype(np.uint32),
        "core_rel": (core_m - ref.solid) / c,
        "local_rel": (core_m - p90) / c,
        "pv_deficit": deficit.sum(axis=1) / vol / c,
        "deficit_outer": parts[0],
        "deficit_mid": parts[1],
        "deficit_inner": parts[-1],
        "std_rel": np.nan_to_num(core_s / max(ref.noise, 1e-9), nan=1.0),
        "dark_fraction": vox[1] / n_in,
        "very_dark_fraction": vox[2] / n_in,
        "tophat_mean": vox[3] / n_in,
        "tophat_fraction": vox[4] / n_in,
        "diameter_vox": np.cbrt(6 * cnt.sum(axis=1) / np.pi * np.prod(sp) / min(sp) ** 3),
        "fine_dark_fraction": vox[6] / np.maximum(vox[5], 1),
    }
    table = pd.DataFrame(data)
    num = list(DESCRIPTOR_COLUMNS)
    table[num] = table[num].replace([np.inf, -np.inf], np.nan).fillna(0.0)
    return table, ref
