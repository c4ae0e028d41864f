"""Global grey-level thresholds: manual, Otsu, multi-Otsu, triangle, Li, hysteresis, fractions.

Every method returns phase codes 0..N−1 in increasing grey level (uint8); with
:func:`electrode_ct.segment.classes.class_map` they are named pore/cbd/active for three
classes. ``two_d=True`` treats a stack as independent 2-D slices (thresholds per slice).

Every histogram method reads one fine histogram of the image
(:func:`grey_histogram`: one bin per integer level of uint8/uint16 data, 2¹⁶ bins over
the range of float data; a mergeable reduction that blocks of a volume can sum), never
one bin per integer of a 16-bit image inside scikit-image. Otsu, Li and fractions are
exact on that histogram (integer data: the scikit-image result); multi-Otsu (whose
exhaustive search grows as bins^(classes−1)) searches a grouping of at most ``nbins``
bins and refines each cut on the fine bins around it (coordinate ascent);
the triangle method reads a grouping of at most ``triangle_bins`` bins (a shape method
needs counts per bin). Each cut is then placed midway between the two populated bins
it separates, so the labels do not depend on the dtype the grey values are stored in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage import filters as skf

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import check_image
from electrode_ct.histogram import (
    Bins,
    group,
    group_by_width,
    image_histogram,
    populated_levels,
    trim,
)
from electrode_ct.segment.classes import check_classes

METHODS = ("manual", "otsu", "multiotsu", "triangle", "li", "hysteresis", "fraction")
"""Names accepted by :func:`threshold` and :func:`threshold_values`."""

NBINS = 1024
"""Bins of the grouped histogram multi-Otsu searches exhaustively before refining."""

_MIN_GROUPS = 64
_VOXELS_PER_GROUP = 64

TRIANGLE_BINS = 256
"""Bins of the grouped histogram the triangle method reads (scikit-image's default)."""


def _check_method(method: str) -> str:
    m = str(method).lower().replace("-", "").replace("_", "")
    if m not in METHODS:
        raise InputError(f"method: unknown threshold method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    return m


def grey_histogram(image: np.ndarray) -> tuple[np.ndarray, Bins]:
    """Fine histogram of an image, trimmed to its populated range.

    One bin per integer level (uint8 / uint16), 2¹⁶ bins over the range of float data
    (:func:`electrode_ct.histogram.image_histogram`, a mergeable reduction).

    Returns
    -------
    (numpy.ndarray, Bins)
        Counts (first and last bins populated) and their layout.
    """
    return trim(*image_histogram(image))


# -- criteria on a histogram (index k: bins 0..k form the lower class) -----------------
def _otsu_index(h: np.ndarray, x: np.ndarray) -> int:
    """Cut maximising the between-class variance (first of equal maxima)."""
    w1 = np.cumsum(h)[:-1]
    w2 = np.cumsum(h[::-1])[::-1][1:]
    s1 = np.cumsum(h * x)[:-1]
    s2 = np.cumsum((h * x)[::-1])[::-1][1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = w1 * w2 * (s1 / w1 - s2 / w2) ** 2
    return int(np.argmax(np.nan_to_num(score, nan=-1.0)))


def _class_score(p0: np.ndarray, s0: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ m²/w of the class of bins a+1..b (cumulative sums with a leading 0)."""
    w = p0[b + 1] - p0[a + 1]
    m = s0[b + 1] - s0[a + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, m * m / np.where(w > 0, w, 1.0), 0.0)


def _refine_cuts(h: np.ndarray, x: np.ndarray, cuts: np.ndarray, reach: int) -> np.ndarray:
    """Move each multi-Otsu cut to its best fine bin within ``reach`` bins (coordinate
    ascent of the between-class variance until no cut moves)."""
    p0 = np.concatenate([[0.0], np.cumsum(h)])
    s0 = np.concatenate([[0.0], np.cumsum(h * x)])
    cuts = cuts.copy()
    last = h.size - 1
    for _ in range(4 * cuts.size + 4):
        moved = False
        for j in range(cuts.size):
            lo_cut = cuts[j - 1] if j else -1
            hi_cut = cuts[j + 1] if j + 1 < cuts.size else last
            cand = np.arange(max(lo_cut + 1, cuts[j] - reach), min(hi_cut - 1, cuts[j] + reach) + 1)
            score = (_class_score(p0, s0, np.full(cand.size, lo_cut), cand)
                     + _class_score(p0, s0, cand, np.full(cand.size, hi_cut)))
            best = int(cand[np.argmax(score)])
            moved |= best != cuts[j]
            cuts[j] = best
        if not moved:
            break
    return cuts


def _multiotsu_indices(h: np.ndarray, x: np.ndarray, n: int, nbins: int) -> np.ndarray:
    """Multi-Otsu cuts searched on at most ``nbins`` equal groups of bins (scikit-image's
    exhaustive search, which takes bins as equally spaced; at least 64 voxels a group on
    average, so a small 2-D slice is not searched at 1024 groups), refined on the fine
    bins."""
    groups = min(int(nbins), max(_MIN_GROUPS, int(h.sum()) // _VOXELS_PER_GROUP))
    f = max(1, -(-h.size // groups))
    g = group(h, f)
    if np.count_nonzero(g) < n:
        raise InputError(f"classes: the image has only {np.count_nonzero(g)} grey levels at "
                         f"{g.size} bins, fewer than the {n} classes asked for")
    coarse = skf.threshold_multiotsu(hist=(g, np.arange(g.size, dtype=np.float64)), classes=n)
    fine = np.minimum((coarse.astype(np.int64) + 1) * f - 1, h.size - 2)
    return _refine_cuts(h, x, fine, 2 * f)


def _triangle_index(h: np.ndarray, nbins: int) -> int:
    """Triangle (Zack) cut on at most ``nbins`` equal groups of the populated range.

    The histogram is read as a density (count / cell width of the levels in each group,
    see :func:`electrode_ct.histogram.populated_levels`), so stretched or unevenly
    quantised data give the triangle of their values, not of the empty bins between them.

    Returns
    -------
    int
        Fine bin ending the lower class.
    """
    pos, n, cells = populated_levels(h)
    x, gn, gc, last = group_by_width(pos, n, cells, max(1.0, (pos[-1] - pos[0]) / nbins))
    y = gn / gc
    p = int(np.argmax(y))
    flip = p < y.size - 1 - p  # the longer tail is searched
    if flip:
        x, y, p = x[-1] - x[::-1], y[::-1], y.size - 1 - p
    # ∝ distance below the line from the tail's end (height 0) to the peak
    length = y[p] * (x[:p] - x[0]) - (x[p] - x[0]) * y[:p]
    g = int(np.argmax(length)) if p > 0 else 0
    if flip:
        g = y.size - 1 - g
    return int(min(pos[last[g]], h.size - 2))  # the group's last level ends the lower class


def _li_index(h: np.ndarray, x: np.ndarray, width: float) -> int:
    """Li's minimum cross-entropy cut (scikit-image's iteration on the histogram)."""
    v = x - x[0]
    total_w, total_s = h.sum(), (h * v).sum()
    t_next, t_curr = total_s / total_w, -width
    cw, cs = np.cumsum(h), np.cumsum(h * v)
    while abs(t_next - t_curr) > width / 2:
        t_curr = t_next
        k = min(max(int(np.searchsorted(v, t_curr, side="right")) - 1, 0), h.size - 2)
        mean_back = cs[k] / cw[k]
        mean_fore = (total_s - cs[k]) / (total_w - cw[k])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return min(max(int(np.searchsorted(v, t_next, side="right")) - 1, 0), h.size - 2)


def _fraction_indices(h: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Bins holding the order statistics ``numpy.quantile`` interpolates from."""
    fr = np.asarray(list(fractions), np.float64)
    check_classes(fr.size, name="fractions (number of values)")
    if not np.all(np.isfinite(fr)) or np.any(fr <= 0):
        raise InputError(f"fractions: every value must be positive, got {fr.tolist()}")
    total = fr.sum()
    if abs(total - 100.0) < 0.5:
        fr = fr / 100.0
    elif abs(total - 1.0) > 5e-3:
        raise InputError(f"fractions: must sum to 1 (or 100 %), got {total:g}")
    cum = np.cumsum(h)
    pos = np.floor(np.cumsum(fr / fr.sum())[:-1] * (cum[-1] - 1))
    return np.minimum(np.searchsorted(cum, pos, side="right"), h.size - 2)


def _cut_values(h: np.ndarray, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Grey value midway between the populated bins on either side of each cut."""
    pop = np.flatnonzero(h)
    below = pop[np.searchsorted(pop, idx, side="right") - 1]
    above = pop[np.minimum(np.searchsorted(pop, idx, side="right"), pop.size - 1)]
    return np.sort((x[below] + x[above]) / 2.0)


def _histogram_cuts(counts: np.ndarray, bins: Bins, m: str, n: int,
                    fractions: Sequence[float] | None, nbins: int,
                    triangle_bins: int) -> np.ndarray:
    h, bins = trim(counts, bins)
    h = h.astype(np.float64)
    x = bins.centres()
    if m == "otsu":
        idx = np.array([_otsu_index(h, x)])
    elif m == "triangle":
        idx = np.array([_triangle_index(h, triangle_bins)])
    elif m == "li":
        idx = np.array([_li_index(h, x, bins.width)])
    elif m == "fraction":
        idx = _fraction_indices(h, () if fractions is None else fractions)
    else:  # multiotsu, and hysteresis without thresholds
        idx = _multiotsu_indices(h, x, n, nbins)
    return _cut_values(h, x, idx)


def _checked_cuts(values: Sequence[float], lo: float, hi: float, name: str) -> np.ndarray:
    cuts = np.sort(np.asarray(list(values), np.float64))
    bad = cuts[(cuts < lo) | (cuts > hi) | ~np.isfinite(cuts)]
    if bad.size:
        raise InputError(f"{name}: {bad.tolist()} outside the data range [{lo:g}, {hi:g}]")
    return cuts


def _class_count(m: str, classes: int | None, thresholds: Sequence[float] | None,
                 fractions: Sequence[float] | None) -> int:
    """Number of classes the method gives; raises when ``classes`` disagrees."""
    if m in ("otsu", "triangle", "li", "hysteresis"):
        n = 2
    elif m == "multiotsu":
        return 3 if classes is None else check_classes(classes)
    elif m == "manual":
        if thresholds is None or len(thresholds) == 0:
            raise InputError("thresholds: the manual method needs at least one threshold value")
        n = len(thresholds) + 1
    else:
        if fractions is None or len(fractions) == 0:
            raise InputError("fractions: the fraction method needs the expected fractions")
        n = len(fractions)
    if classes is not None and check_classes(classes) != n:
        what = {"manual": f"{n - 1} thresholds", "fraction": f"{n} fractions"}.get(
            m, f"method {m!r} gives 2 classes")
        raise InputError(f"classes: {what}, got classes={classes}")
    return n


def needs_histogram(method: str, thresholds: Sequence[float] | None = None) -> bool:
    """Whether ``method`` derives its cuts from the grey histogram (not given values)."""
    m = _check_method(method)
    return not (m == "manual" or (m == "hysteresis" and thresholds is not None
                                  and len(thresholds) > 0))


def cuts_from_histogram(
    histogram: tuple[np.ndarray, Bins] | None,
    value_range: tuple[float, float],
    *,
    method: str = "otsu",
    classes: int | None = None,
    thresholds: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    offset: float = 0.0,
    nbins: int = NBINS,
    triangle_bins: int = TRIANGLE_BINS,
) -> np.ndarray:
    """Cut values from an image's fine histogram and value range (the one rule both the
    in-memory and the blockwise paths use).

    Parameters
    ----------
    histogram : (numpy.ndarray, Bins) or None
        Counts and layout (:func:`electrode_ct.histogram.image_histogram`, or the sum of
        block histograms in the same layout); ``None`` when :func:`needs_histogram` is
        false.
    value_range : (float, float)
        Minimum and maximum grey level of the image.
    method, classes, thresholds, fractions, offset, nbins, triangle_bins
        As in :func:`threshold_values`.

    Returns
    -------
    numpy.ndarray
        Ascending float64 cut values (see :func:`threshold_values`).

    Raises
    ------
    InputError
        As :func:`threshold_values`.
    """
    m = _check_method(method)
    lo, hi = (float(v) for v in value_range)
    n = _class_count(m, classes, thresholds, fractions)
    if not needs_histogram(m, thresholds):
        cuts = _checked_cuts(() if thresholds is None else thresholds, lo, hi, "thresholds")
        if m == "hysteresis" and cuts.size != 2:
            raise InputError(f"thresholds: hysteresis needs 2 values (low high), got "
                             f"{cuts.size}")
    elif lo == hi:
        raise InputError(f"image: constant grey level {lo:g}; nothing to threshold")
    elif histogram is None:
        raise InputError(f"method: {m!r} needs the image's histogram")
    else:
        k = 3 if m == "hysteresis" else n
        cuts = _histogram_cuts(*histogram, m, k, fractions, nbins, triangle_bins)
    return cuts + float(offset)


def threshold_values(
    image: np.ndarray,
    *,
    method: str = "otsu",
    classes: int | None = None,
    thresholds: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    offset: float = 0.0,
    nbins: int = NBINS,
    triangle_bins: int = TRIANGLE_BINS,
) -> np.ndarray:
    """Grey-level cut values of one image (the whole array, 2-D or 3-D).

    Parameters
    ----------
    image : numpy.ndarray
        Grey-level image (any numeric dtype, no NaN).
    method : str
        ``manual`` (``thresholds`` given), ``otsu``, ``multiotsu`` (``classes``, default 3),
        ``triangle``, ``li``, ``hysteresis`` (returns ``[low, high]``: ``thresholds`` or, if
        absent, the two 3-class multi-Otsu cuts) or ``fraction`` (``fractions``: expected
        phase fractions in increasing grey order, summing to 1 or 100 %).
    classes : int, optional
        Number of classes; must agree with the method (2 for otsu/triangle/li/hysteresis).
    thresholds : sequence of float, optional
        Manual cut values in grey levels (ascending after sorting).
    fractions : sequence of float, optional
        Target volume fractions for ``fraction``.
    offset : float
        Grey levels added to every cut value (the ±k variants a user tries by eye).
    nbins : int
        Bins of the grouped histogram multi-Otsu searches before refining on the fine
        histogram (see the module notes).
    triangle_bins : int
        Bins of the grouped histogram of the triangle method.

    Returns
    -------
    numpy.ndarray
        Ascending float64 cut values (N−1 of them for N classes); voxels ``<= cut`` fall
        below it. Histogram methods give the exact result of their criterion on the
        fine histogram (integer data: scikit-image's), placed midway between populated
        levels; float data within one fine bin (range / 2¹⁶).

    Raises
    ------
    InputError
        Unknown method, fewer than 2 classes, a class count that does not fit the method,
        thresholds outside the data range, a constant image.
    """
    img = np.asarray(image)
    lo, hi = float(img.min()), float(img.max())
    hist = (image_histogram(img) if needs_histogram(method, thresholds) and lo < hi
            else None)
    return cuts_from_histogram(hist, (lo, hi), method=method, classes=classes,
                               thresholds=thresholds, fractions=fractions, offset=offset,
                               nbins=nbins, triangle_bins=triangle_bins)


def apply_thresholds(image: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Label voxels by cut values: ``v <= cuts[0]`` -> 0, ``cuts[0] < v <= cuts[1]`` -> 1, ...

    Parameters
    ----------
    image : numpy.ndarray
        Grey-level image.
    cuts : sequence of float
        Ascending cut values in grey levels.

    Returns
    -------
    numpy.ndarray
        uint8 codes 0..len(cuts) with the shape of ``image``.
    """
    c = np.sort(np.asarray(cuts, np.float64))
    out = np.zeros(np.shape(image), np.uint8)
    img = np.asarray(image)
    for value in c:  # one vectorised pass per cut (N−1 of them)
        out += img > value
    return out


def _label_one(image: np.ndarray, cuts: np.ndarray, method: str) -> np.ndarray:
    if method == "hysteresis":
        return skf.apply_hysteresis_threshold(image, cuts[0], cuts[1]).astype(np.uint8)
    return apply_thresholds(image, cuts)


def threshold(
    image: np.ndarray,
    *,
    method: str = "otsu",
    classes: int | None = None,
    thresholds: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    offset: float = 0.0,
    two_d: bool = False,
    nbins: int = NBINS,
) -> np.ndarray:
    """Segment a grey image into N phases with a global threshold method.

    Parameters
    ----------
    image : numpy.ndarray
        Grey-level image, 2-D (y, x) or 3-D (z, y, x); no NaN.
    method : str
        One of :data:`METHODS`; see :func:`threshold_values`.
    classes : int, optional
        Number of phases (``multiotsu`` default 3; others are fixed by the method or by the
        number of ``thresholds``/``fractions``).
    thresholds : sequence of float, optional
        Manual cut values (``manual``) or ``low, high`` (``hysteresis``), in grey levels.
    fractions : sequence of float, optional
        Expected phase fractions in increasing grey order (``fraction``).
    offset : float
        Grey levels added to every cut value (user-variability variants ±k).
    two_d : bool
        Treat a 3-D stack as independent 2-D slices: cut values computed per slice.
    nbins : int
        Bins of multi-Otsu's grouped search (see :func:`threshold_values`).

    Returns
    -------
    numpy.ndarray
        uint8 phase codes 0..N−1 in increasing grey level, shape of ``image``.
        ``hysteresis`` marks voxels above ``low`` connected to a voxel above ``high`` as 1.

    Raises
    ------
    InputError
        See :func:`threshold_values`; also NaN/empty images.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0.0, 1.0], [5.0, 9.0]])
    >>> threshold(img, method="manual", thresholds=[2, 6]).tolist()
    [[0, 0], [1, 2]]
    """
    return threshold_with_cuts(image, method=method, classes=classes, thresholds=thresholds,
                               fractions=fractions, offset=offset, two_d=two_d,
                               nbins=nbins)[0]


def threshold_with_cuts(
    image: np.ndarray,
    *,
    method: str = "otsu",
    classes: int | None = None,
    thresholds: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    offset: float = 0.0,
    two_d: bool = False,
    nbins: int = NBINS,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`threshold`'s labels together with the cut values that made them.

    Parameters
    ----------
    image, method, classes, thresholds, fractions, offset, two_d, nbins
        As in :func:`threshold`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        uint8 labels, and the float64 cut values (grey levels): shape (n_cuts,), or
        (n_slices, n_cuts) for a ``two_d`` stack (one row per z slice).
    """
    img = check_image(image)
    m = _check_method(method)
    kw = {"method": m, "classes": classes, "thresholds": thresholds, "fractions": fractions,
          "offset": offset, "nbins": nbins}
    if not two_d or img.ndim == 2:
        cuts = threshold_values(img, **kw)
        return _label_one(img, cuts, m), cuts
    # per slice, as the user asked (not per voxel)
    cuts = np.stack([threshold_values(plane, **kw) for plane in img])
    return label_slab(img, cuts, m), cuts


def label_slab(image: np.ndarray, cuts: np.ndarray, method: str) -> np.ndarray:
    """Labels of an image from cut values already computed (``threshold_with_cuts``'s
    second result): one row of ``cuts`` per z slice when ``cuts`` is 2-D.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image (a slab of whole slices when ``cuts`` is 2-D).
    cuts : numpy.ndarray
        Cut values (grey levels): (n_cuts,) or (n_slices, n_cuts).
    method : str
        The threshold method (hysteresis labels by connectivity).

    Returns
    -------
    numpy.ndarray
        uint8 labels, shape of ``image``.
    """
    m = _check_method(method)
    c = np.asarray(cuts, np.float64)
    if c.ndim == 1:
        return _label_one(np.asarray(image), c, m)
    return np.stack([_label_one(np.asarray(plane), row, m)
                     for plane, row in zip(image, c, strict=True)])


def phase_count(method: str, *, classes: int | None = None,
                thresholds: Sequence[float] | None = None,
                fractions: Sequence[float] | None = None) -> int:
    """Number of phases :func:`threshold` gives with these options (before any cut).

    Raises
    ------
    InputError
        Unknown method, or options that do not fit it (see :func:`threshold_values`).
    """
    return _class_count(_check_method(method), classes, thresholds, fractions)


def slice_thresholds(image: np.ndarray, **kwargs: object) -> np.ndarray:
    """Cut values of every z slice of a stack (rows = slices), for ``two_d`` runs.

    Parameters
    ----------
    image : numpy.ndarray
        3-D stack (z, y, x).
    **kwargs
        Options of :func:`threshold_values`.

    Returns
    -------
    numpy.ndarray
        float64 array (n_slices, n_cuts) of grey-level cut values.
    """
    img = check_image(image, allow_2d=False)
    return np.stack([threshold_values(img[z], **kwargs) for z in range(img.shape[0])])
