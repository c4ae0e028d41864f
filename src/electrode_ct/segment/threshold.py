"""Global grey-level thresholds: manual, Otsu, multi-Otsu, triangle, Li, hysteresis, fractions.

Every method returns phase codes 0..N−1 in increasing grey level (uint8); with
:func:`electrode_ct.segment.classes.class_map` they are named pore/cbd/active for three
classes. ``two_d=True`` treats a stack as independent 2-D slices (thresholds per slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage import filters as skf

from electrode_ct.errors import InputError
from electrode_ct.filters._checks import check_image
from electrode_ct.segment.classes import check_classes

METHODS = ("manual", "otsu", "multiotsu", "triangle", "li", "hysteresis", "fraction")
"""Names accepted by :func:`threshold` and :func:`threshold_values`."""

_TWO_CLASS = {"otsu": skf.threshold_otsu, "triangle": skf.threshold_triangle,
              "li": skf.threshold_li}


def _check_method(method: str) -> str:
    m = str(method).lower().replace("-", "").replace("_", "")
    if m not in METHODS:
        raise InputError(f"method: unknown threshold method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    return m


def _fraction_cuts(image: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    fr = np.asarray(list(fractions), np.float64)
    check_classes(fr.size, name="fractions (number of values)")
    if not np.all(np.isfinite(fr)) or np.any(fr <= 0):
        raise InputError(f"fractions: every value must be positive, got {fr.tolist()}")
    total = fr.sum()
    if abs(total - 100.0) < 0.5:
        fr = fr / 100.0
    elif abs(total - 1.0) > 5e-3:
        raise InputError(f"fractions: must sum to 1 (or 100 %), got {total:g}")
    fr = fr / fr.sum()
    return np.quantile(image, np.cumsum(fr)[:-1])


def threshold_values(
    image: np.ndarray,
    *,
    method: str = "otsu",
    classes: int | None = None,
    thresholds: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    offset: float = 0.0,
    nbins: int = 256,
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
        Histogram bins for Otsu-type methods.

    Returns
    -------
    numpy.ndarray
        Ascending float64 cut values (N−1 of them for N classes).

    Raises
    ------
    InputError
        Unknown method, fewer than 2 classes, a class count that does not fit the method,
        thresholds outside the data range, a constant image.
    """
    m = _check_method(method)
    img = np.asarray(image)
    lo, hi = float(img.min()), float(img.max())
    if m == "manual":
        if thresholds is None or len(thresholds) == 0:
            raise InputError("thresholds: the manual method needs at least one threshold value")
        cuts = np.sort(np.asarray(list(thresholds), np.float64))
        if classes is not None and check_classes(classes) != cuts.size + 1:
            raise InputError(f"classes: {classes} classes need {classes - 1} thresholds, got "
                             f"{cuts.size}")
        bad = cuts[(cuts < lo) | (cuts > hi) | ~np.isfinite(cuts)]
        if bad.size:
            raise InputError(f"thresholds: {bad.tolist()} outside the data range "
                             f"[{lo:g}, {hi:g}]")
    else:
        if lo == hi:
            raise InputError(f"image: constant grey level {lo:g}; nothing to threshold")
        if m in _TWO_CLASS:
            if classes is not None and check_classes(classes) != 2:
                raise InputError(f"classes: method {m!r} gives 2 classes, got classes={classes}")
            kw = {"nbins": nbins} if m != "li" else {}
            cuts = np.array([_TWO_CLASS[m](img, **kw)], np.float64)
        elif m == "multiotsu":
            n = 3 if classes is None else check_classes(classes)
            cuts = np.asarray(skf.threshold_multiotsu(img, classes=n, nbins=nbins), np.float64)
        elif m == "hysteresis":
            if classes is not None and check_classes(classes) != 2:
                raise InputError(f"classes: hysteresis gives 2 classes, got classes={classes}")
            if thresholds is not None and len(thresholds) > 0:
                cuts = np.sort(np.asarray(list(thresholds), np.float64))
                if cuts.size != 2:
                    raise InputError(f"thresholds: hysteresis needs 2 values (low high), got "
                                     f"{cuts.size}")
                bad = cuts[(cuts < lo) | (cuts > hi)]
                if bad.size:
                    raise InputError(f"thresholds: {bad.tolist()} outside the data range "
                                     f"[{lo:g}, {hi:g}]")
            else:
                cuts = np.asarray(skf.threshold_multiotsu(img, classes=3, nbins=nbins),
                                  np.float64)
        else:  # fraction
            if fractions is None or len(fractions) == 0:
                raise InputError("fractions: the fraction method needs the expected fractions")
            cuts = _fraction_cuts(img, fractions)
            if classes is not None and check_classes(classes) != cuts.size + 1:
                raise InputError(f"classes: {classes} classes but {cuts.size + 1} fractions")
    return cuts + float(offset)


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
    nbins: int = 256,
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
        Histogram bins for Otsu-type methods.

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
    img = check_image(image)
    m = _check_method(method)
    kw = {"method": m, "classes": classes, "thresholds": thresholds, "fractions": fractions,
          "offset": offset, "nbins": nbins}
    if not two_d or img.ndim == 2:
        return _label_one(img, threshold_values(img, **kw), m)
    out = np.empty(img.shape, np.uint8)
    for z in range(img.shape[0]):  # per slice, as the user asked (not per voxel)
        out[z] = _label_one(img[z], threshold_values(img[z], **kw), m)
    return out


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
