"""Per-particle grey-level columns (GREAT2): statistics, core region, standard error.

Everything is derived from the per-(particle, layer) sums and per-particle histograms
of :func:`electrode_ct.measure.radial.layer_sums` (one pass over the volume): no
per-particle loop. Quantiles are exact (``numpy.percentile``'s linear method) for
integer grey images whose per-particle histograms fit in memory, and interpolated
within 1/1024 of the grey range otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.histogram import group_levels, populated_levels
from electrode_ct.measure.radial import LayerSums, layer_sums, mean_std, radial_table

PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
"""Default per-particle grey percentiles (50 is written as ``grey_median``)."""

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _pct_name(q: float) -> str:
    if q == 50:
        return "grey_median"
    text = f"{q:g}".replace(".", "_")
    return f"grey_p{text.zfill(2)}"


def _order_stat(hist: np.ndarray, cum: np.ndarray, k: np.ndarray, low: float, width: float,
                exact: bool) -> np.ndarray:
    """The k-th smallest value (0-based, per row) of each row's histogram."""
    idx = np.argmax(cum > k[:, None], axis=1)
    if exact:
        return low + idx.astype(np.float64)
    rows = np.arange(len(k))
    before = cum[rows, idx] - hist[rows, idx]
    frac = (k - before + 0.5) / np.maximum(hist[rows, idx], 1)
    return low + width * (idx + frac)


def histogram_quantiles(
    hist: np.ndarray, percentiles: Sequence[float], *, low: float = 0.0, width: float = 1.0,
    exact: bool = True,
) -> np.ndarray:
    """Percentiles of each row of a histogram table, as ``numpy.percentile`` would give.

    Parameters
    ----------
    hist : numpy.ndarray
        (n, B) counts; bin b holds the value ``low + b * width`` (``exact``) or the
        interval ``[low + b·width, low + (b+1)·width)``.
    percentiles : sequence of float
        In [0, 100].
    low, width : float
        Grey value of bin 0 and bin width.
    exact : bool
        Bins hold single values (integers): the result equals ``numpy.percentile``
        (linear interpolation) of the underlying values.

    Returns
    -------
    numpy.ndarray
        (n, len(percentiles)); NaN for empty rows.
    """
    hist = np.asarray(hist, dtype=np.int64)
    n = hist.sum(axis=1)
    cum = np.cumsum(hist, axis=1)
    out = np.full((hist.shape[0], len(percentiles)), np.nan)
    ok = n > 0
    if not ok.any():
        return out
    h, c, nn = hist[ok], cum[ok], n[ok]
    for j, q in enumerate(percentiles):
        if not 0 <= q <= 100:
            raise InputError(f"percentiles: expected values in [0, 100], got {q}")
        pos = (nn - 1) * (float(q) / 100.0)
        k0 = np.floor(pos).astype(np.int64)
        k1 = np.minimum(k0 + 1, nn - 1)
        v0 = _order_stat(h, c, k0, low, width, exact)
        v1 = _order_stat(h, c, k1, low, width, exact)
        out[ok, j] = v0 + (pos - k0) * (v1 - v0)
    return out


_BINS_PER_SIGMA = 5.0  # target grouping: groups of σ/5 resolve the peak


def _half_max_width(x: np.ndarray, y: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Centre and full width at half maximum of the highest peak of the points (x, y)."""
    p = int(np.argmax(y))
    half = y[p] / 2.0
    below_left = np.flatnonzero(y[:p] < half)
    below_right = np.flatnonzero(y[p + 1:] < half)
    left, right = float(x[0]), float(x[-1])
    if below_left.size:
        i = below_left[-1]
        left = x[i] + (half - y[i]) / (y[i + 1] - y[i]) * (x[i + 1] - x[i])
    if below_right.size:
        j = p + 1 + below_right[0]
        right = x[j - 1] + (y[j - 1] - half) / (y[j - 1] - y[j]) * (x[j] - x[j - 1])
    sel = (x >= left) & (x <= right) & (y >= half)  # the centre: mean of the peak's top
    centre = float(np.average(x[sel], weights=n[sel])) if sel.any() else float(x[p])
    return centre, float(right - left)


def _log_parabola_sigma(x: np.ndarray, y: np.ndarray, n: np.ndarray, centre: float,
                        fwhm: float) -> float:
    """σ of a Gaussian fitted to the log densities of the points above half maximum.

    Falls back to FWHM / 2.355 when fewer than 4 points are above half maximum or the
    fit is not a peak.
    """
    sel = (np.abs(x - centre) <= fwhm / 2) & (y > 0)
    if sel.sum() >= 4:
        c2 = np.polyfit(x[sel] - centre, np.log(y[sel]), 2, w=np.sqrt(n[sel]))[0]
        if c2 < 0:
            return float(np.sqrt(-0.5 / c2))
    return fwhm / _FWHM_PER_SIGMA


def _iqr_sigma(pos: np.ndarray, n: np.ndarray) -> float:
    """Interquartile range / 1.349 of levels at ``pos`` with counts ``n`` (σ of a Gaussian)."""
    cum = np.cumsum(n)
    q = np.interp([0.25 * cum[-1], 0.75 * cum[-1]], cum, pos)
    return float(q[1] - q[0]) / 1.349


def peak_sigma(hist: np.ndarray, *, low: float = 0.0, width: float = 1.0) -> tuple[float, float]:
    """Position and Gaussian σ of the highest peak of a grey histogram, for any bin width.

    The populated bins are taken as levels, each with the cell reaching halfway to its
    neighbours, so quantised data (8-bit values stretched to 16 bits or to uneven
    spacing, or stored as float) give the same density as the values themselves. Levels
    are grouped to about a fifth of the interquartile spread; the σ of the highest peak
    found there sets a new grouping of about σ/5, repeated until it settles. So the peak
    is never read off single noisy bins (one bin per integer of a 16-bit image) nor off
    groups wider than the peak. σ is that of a Gaussian fitted to the log densities above
    half maximum (FWHM / 2.355 when fewer than 4 groups), robust to a second phase
    (e.g. CBD beside pore) that a plain standard deviation would mix in, and corrected
    for the grouping width (Sheppard).

    The input is a mergeable reduction: histograms of blocks with one fixed layout
    (:func:`electrode_ct.histogram.histogram`) are summed before calling this.

    Parameters
    ----------
    hist : numpy.ndarray
        1-D counts; bin b is centred on ``low + b * width``. Fine bins (one per integer
        level, or 2¹⁶ bins over the range of float data) give the best estimate.
    low, width : float
        Grey value of bin 0 and bin width.

    Returns
    -------
    tuple of float
        (peak grey value, σ in grey levels); (nan, nan) for an empty histogram.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.random.default_rng(0).normal(30000, 2560, 200_000).astype(np.uint16)
    >>> _, s = peak_sigma(np.bincount(v))  # one bin per 16-bit level
    >>> abs(s / 2560 - 1) < 0.03
    True
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.size == 0 or h.sum() <= 0:
        return float("nan"), float("nan")
    pos, n, cells = populated_levels(h)
    step = float(np.median(cells))  # level spacing (1 for dense bins)
    k = max(1, int(_iqr_sigma(pos, n) / _BINS_PER_SIGMA / step))
    seen = {k}
    while True:  # groups of k levels
        x, gn, gc = group_levels(pos, n, cells, k)
        y = gn / gc
        centre, fwhm = _half_max_width(x, y, gn)
        sigma = _log_parabola_sigma(x, y, gn, centre, fwhm)
        nxt = max(1, int(sigma / _BINS_PER_SIGMA / step))
        if nxt in seen:
            break
        seen.add(nxt)
        k = nxt
    var = sigma**2 - ((k * step) ** 2 - step**2) / 12.0
    return low + centre * width, float(np.sqrt(max(var, 0.0))) * width


def grey_table(
    sums: LayerSums,
    *,
    exclude_layers: int = 5,
    background_sigma: float | None = None,
    percentiles: Sequence[float] = PERCENTILES,
) -> pd.DataFrame:
    """Per-particle grey-level table from layer sums.

    Parameters
    ----------
    sums : LayerSums
        From :func:`electrode_ct.measure.radial.layer_sums`.
    exclude_layers : int
        The core region (ROI) excludes the outer ``exclude_layers`` layers (the
        phase-contrast edge); 0 keeps the whole particle.
    background_sigma : float, optional
        Noise σ of the background, in grey levels. Default: estimated from the
        label-0 voxels' histogram peak (:func:`peak_sigma`).
    percentiles : sequence of float
        Grey percentiles to report.

    Returns
    -------
    pandas.DataFrame
        ``label``; ``grey_n`` (voxels); ``grey_mean``, ``grey_std`` (ddof 0),
        ``grey_min``, ``grey_max``, ``grey_median`` and ``grey_pNN`` (grey levels);
        ``roi_mean``, ``roi_std``, ``roi_n`` over layers > ``exclude_layers``;
        ``sem`` = σ_bg / √roi_n (standard error of ``roi_mean`` from imaging noise;
        NaN when the ROI is empty); ``max_layer`` (deepest layer, a radius in layers);
        ``border`` (touches a face of the volume). ``df.attrs["background_sigma"]``
        holds σ_bg.
    """
    if int(exclude_layers) < 0:
        raise InputError(f"exclude_layers: expected an integer >= 0, got {exclude_layers}")
    k = int(exclude_layers)
    n = sums.count.sum(axis=1)
    mean, std = mean_std(n, sums.total.sum(axis=1), sums.total_sq.sum(axis=1))
    roi_n = sums.count[:, k + 1:].sum(axis=1)
    roi_mean, roi_std = mean_std(
        roi_n, sums.total[:, k + 1:].sum(axis=1), sums.total_sq[:, k + 1:].sum(axis=1)
    )
    if background_sigma is None:
        fine = sums.background_fine is not None
        counts = sums.background_fine if fine else sums.background_hist
        w = sums.background_width if fine else sums.hist_width
        centre = sums.hist_low + (0.0 if sums.hist_exact else w / 2)
        _, sigma = peak_sigma(counts, low=centre, width=w)
    else:
        sigma = float(background_sigma)
        if not np.isfinite(sigma) or sigma < 0:
            raise InputError(f"background_sigma: expected a value >= 0, got {background_sigma}")
    with np.errstate(divide="ignore", invalid="ignore"):
        sem = np.where(roi_n > 0, sigma / np.sqrt(np.maximum(roi_n, 1)), np.nan)
    q = histogram_quantiles(sums.hist, percentiles, low=sums.hist_low, width=sums.hist_width,
                            exact=sums.hist_exact)
    data: dict[str, Any] = {
        "label": sums.ids.astype(np.uint32),
        "grey_n": n.astype(np.int64),
        "grey_mean": mean,
        "grey_std": std,
        "grey_min": sums.grey_min,
        "grey_max": sums.grey_max,
    }
    for j, p in enumerate(percentiles):
        data[_pct_name(float(p))] = q[:, j]
    data.update({
        "roi_mean": roi_mean,
        "roi_std": roi_std,
        "roi_n": roi_n.astype(np.int64),
        "sem": sem,
        "max_layer": sums.max_layer,
        "border": sums.border,
    })
    df = pd.DataFrame(data)
    df.attrs["background_sigma"] = float(sigma)
    return df


def background_sigma_from_mask(grey: np.ndarray, mask: np.ndarray) -> float:
    """Standard deviation (ddof 1) of the grey values inside a background mask.

    Parameters
    ----------
    grey : numpy.ndarray
        Grey image.
    mask : numpy.ndarray
        Same shape; non-zero = background (pore or empty space).

    Raises
    ------
    ShapeError
        Shapes differ.
    InputError
        Fewer than two background voxels.
    """
    g = np.asarray(grey)
    m = np.asarray(mask)
    if m.shape != g.shape:
        if m.size == g.size:
            m = m.reshape(g.shape)
        else:
            raise ShapeError(
                f"background: mask shape {m.shape} differs from the grey shape {g.shape}"
            )
    vals = g[m != 0]
    if vals.size < 2:
        raise InputError("background: the mask selects fewer than 2 voxels")
    return float(np.std(vals.astype(np.float64), ddof=1))


def measure_grey(
    labels: np.ndarray,
    grey: np.ndarray,
    *,
    spacing: float | Iterable[float] | None = None,
    exclude_layers: int = 5,
    background: np.ndarray | None = None,
    background_sigma: float | None = None,
    normalise: str = "radial_max",
    percentiles: Sequence[float] = PERCENTILES,
    slab_voxels: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-particle grey table and long radial table in one pass over the volume.

    Parameters
    ----------
    labels, grey : numpy.ndarray
        Particle labels (integer, 0 = background) and grey image, same 2-D/3-D shape.
    spacing : float or sequence of float
        Voxel size in µm.
    exclude_layers : int
        Outer layers left out of the ROI columns (default 5).
    background : numpy.ndarray, optional
        Background mask (pore / empty space) for σ_bg; overrides the automatic estimate.
    background_sigma : float, optional
        σ_bg in grey levels (overrides ``background``).
    normalise : {"radial_max", "surface"}
        Normalisation of the radial ``grey_norm`` column.
    percentiles : sequence of float
        Per-particle grey percentiles.
    slab_voxels : int, optional
        Voxels per distance-transform slab (memory bound).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        :func:`grey_table` and :func:`electrode_ct.measure.radial.radial_table`.
    """
    if background_sigma is None and background is not None:
        background_sigma = background_sigma_from_mask(grey, background)
    opts = {} if slab_voxels is None else {"slab_voxels": int(slab_voxels)}
    sums = layer_sums(labels, grey, spacing=spacing, **opts)
    table = grey_table(sums, exclude_layers=exclude_layers, background_sigma=background_sigma,
                       percentiles=percentiles)
    return table, radial_table(sums, normalise=normalise)
