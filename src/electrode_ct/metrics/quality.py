"""Segmentation-quality yardsticks: interface voxels, per-phase grey statistics, SNR/CNR,
and volume fractions against a reference value from another technique."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.compare import _as_int_labels
from electrode_ct.volume import resolve_phase


def _names(values: np.ndarray, class_map: Mapping[str, int] | None) -> list[str]:
    names = {int(v): k for k, v in (class_map or {}).items()}
    return [names.get(int(v), str(int(v))) for v in values]


def _checked_labels(labels: Any) -> np.ndarray:
    lab = _as_int_labels(labels, "labels")
    if lab.size == 0:
        raise InputError("labels: the label image is empty")
    return lab


def interface_percentage(
    labels: np.ndarray, *, class_map: Mapping[str, int] | None = None
) -> dict[str, float]:
    """Percentage of voxels lying on the interface between each pair of phases.

    A voxel of phase a is on the a–b interface when one of its face neighbours (6 in
    3-D, 4 in 2-D) is of phase b; the a–b percentage counts such voxels of a and of b,
    as a % of all voxels. Interface voxels carry the partial-volume grey levels that
    make segmentations disagree.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer phase codes, 2-D or 3-D.
    class_map : mapping, optional
        name -> value; names are used in the keys.

    Returns
    -------
    dict
        ``"a-b"`` -> percentage (0–100), for each pair of present values a < b, plus
        ``"any"``: % of voxels with a face neighbour of another phase.

    Examples
    --------
    >>> import numpy as np
    >>> interface_percentage(np.array([[0, 0, 1, 1]]))
    {'0-1': 50.0, 'any': 50.0}
    """
    lab = _checked_labels(labels)
    values = np.unique(lab)
    counts = interface_counts(lab, values, tuple(slice(0, n) for n in lab.shape))
    return interface_result(counts, values, lab.size, class_map)


def interface_counts(labels: np.ndarray, values: np.ndarray,
                     interior: tuple[slice, ...]) -> np.ndarray:
    """Interface voxels of a block: per pair (i < j, in :func:`itertools.combinations`
    order), then of any pair.

    Parameters
    ----------
    labels : numpy.ndarray
        The block plus a halo of 1 voxel (clipped at the volume's faces).
    values : numpy.ndarray
        Sorted label values of the whole volume (every value of ``labels`` among them).
    interior : tuple of slice
        The block in ``labels``: only its voxels are counted.

    Returns
    -------
    numpy.ndarray of int64
        ``n_pairs + 1`` counts that add exactly over blocks.
    """
    if values.size > 62:
        raise InputError(f"labels: {values.size} distinct values; interfaces need <= 62 phases")
    small = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                 if np.iinfo(t).bits >= values.size)
    idx = _value_index(labels, values)
    # for each voxel, the set of neighbouring phases as a bit mask over ``values``
    bits = np.zeros(labels.shape, small)
    one = small(1)
    for ax in range(labels.ndim):  # face neighbours along each axis, both directions
        a = [slice(None)] * labels.ndim
        b = [slice(None)] * labels.ndim
        a[ax], b[ax] = slice(None, -1), slice(1, None)
        ia, ib = idx[tuple(a)], idx[tuple(b)]
        differ = ia != ib
        bits[tuple(a)] |= np.where(differ, np.left_shift(one, ib.astype(small)), small(0))
        bits[tuple(b)] |= np.where(differ, np.left_shift(one, ia.astype(small)), small(0))
    bits = bits[interior]
    on_any = bits != 0
    idx, bits = idx[interior][on_any], bits[on_any]  # interface voxels only
    out = []
    for i, j in combinations(range(values.size), 2):
        on = ((idx == i) & ((bits >> small(j)) & one).astype(bool)) | \
             ((idx == j) & ((bits >> small(i)) & one).astype(bool))
        out.append(np.count_nonzero(on))
    out.append(idx.size)
    return np.asarray(out, np.int64)


def _value_index(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of every voxel's value in the sorted ``values`` (uint8; a look-up table
    for small unsigned labels, a binary search otherwise)."""
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.dtype.kind == "u" and labels.dtype.itemsize <= 2:
        lut = np.zeros(int(values.max()) + 1, np.uint8)
        lut[values] = np.arange(values.size)
        return lut[labels]
    return np.searchsorted(values, labels).astype(np.uint8)


def interface_result(counts: np.ndarray, values: np.ndarray, total: int,
                     class_map: Mapping[str, int] | None) -> dict[str, float]:
    """The :func:`interface_percentage` dict from :func:`interface_counts` over ``total``
    voxels."""
    keys = _names(values, class_map)
    out = {f"{keys[i]}-{keys[j]}": 100.0 * float(c) / total
           for (i, j), c in zip(combinations(range(values.size), 2), counts[:-1], strict=True)}
    out["any"] = 100.0 * float(counts[-1]) / total
    return out


def phase_statistics(
    image: np.ndarray, labels: np.ndarray, *, class_map: Mapping[str, int] | None = None
) -> dict[str, dict[str, float]]:
    """Grey-level mean, standard deviation and SNR of each phase.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image (any units).
    labels : numpy.ndarray
        Integer phase codes of the same shape.
    class_map : mapping, optional
        name -> value; names are used as keys.

    Returns
    -------
    dict
        phase -> ``{"n_voxels", "mean", "std", "snr"}``; ``std`` is the population σ
        (grey levels), ``snr = mean / std`` (inf for a noise-free phase).
    """
    img = np.asarray(image)
    lab = _checked_labels(labels)
    if img.shape != lab.shape:
        raise ShapeError(f"image {img.shape} and labels {lab.shape} differ in shape")
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise InputError("image: NaN or infinite values; fill or mask them first")
    values, inv = np.unique(lab.ravel(), return_inverse=True)
    g = img.ravel().astype(np.float64)
    n = np.bincount(inv, minlength=values.size).astype(np.float64)
    mean = np.bincount(inv, weights=g, minlength=values.size) / n
    var = np.bincount(inv, weights=(g - mean[inv]) ** 2, minlength=values.size) / n
    return _stats(values, n, mean, var, class_map)


def _stats(values: np.ndarray, n: np.ndarray, mean: np.ndarray, var: np.ndarray,
           class_map: Mapping[str, int] | None) -> dict[str, dict[str, float]]:
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.inf)
    return {k: {"n_voxels": int(n[i]), "mean": float(mean[i]), "std": float(sd[i]),
                "snr": float(snr[i])} for i, k in enumerate(_names(values, class_map))}


def phase_statistics_slabs(
    slabs: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], *,
    class_map: Mapping[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`phase_statistics` of a volume read slab by slab (for volumes above memory).

    Two passes over the slabs, as the in-memory function: the means, then the squared
    deviations from them; equal to it up to the order of the float64 sums.

    Parameters
    ----------
    slabs : callable
        Returns a fresh iterable of (grey slab, label slab) pairs of equal shapes (called
        twice).
    class_map : mapping, optional
        name -> value.

    Returns
    -------
    dict
        As :func:`phase_statistics`.
    """
    n, total = np.zeros(0), np.zeros(0)
    for img, lab in slabs():  # pass 1: counts and sums per label value
        idx, g = _slab(img, lab)
        n = _add(n, np.bincount(idx))
        total = _add(total, np.bincount(idx, weights=g))
    if not n.sum():
        raise InputError("labels: the label image is empty")
    mean = total / np.where(n > 0, n, 1.0)
    m2 = np.zeros(n.size)
    for img, lab in slabs():  # pass 2: squared deviations from the means
        idx, g = _slab(img, lab)
        m2 = _add(m2, np.bincount(idx, weights=(g - mean[idx]) ** 2))
    values = np.flatnonzero(n)
    return _stats(values, n[values], mean[values], m2[values] / n[values], class_map)


def _slab(img: Any, lab: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flat label values (int64, checked) and float64 grey levels of one slab."""
    g, labels = np.asarray(img), _as_int_labels(lab, "labels")
    if g.shape != labels.shape:
        raise ShapeError(f"image {g.shape} and labels {labels.shape} differ in shape")
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        raise InputError("image: NaN or infinite values; fill or mask them first")
    idx = labels.ravel().astype(np.int64)
    if idx.size and idx.min() < 0:
        raise InputError("labels: negative phase values; expected codes >= 0")
    return idx, g.ravel().astype(np.float64)


def _add(acc: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``acc + part``, the shorter padded with zeros."""
    size = max(acc.size, part.size)
    return np.pad(acc, (0, size - acc.size)) + np.pad(part.astype(np.float64),
                                                      (0, size - part.size))


def image_quality(
    image: np.ndarray, labels: np.ndarray, *, class_map: Mapping[str, int] | None = None,
    require_all: bool = False,
) -> dict[str, Any]:
    """Per-phase statistics and contrast between each pair of phases.

    Parameters
    ----------
    image : numpy.ndarray
        Grey image.
    labels : numpy.ndarray
        Integer phase codes of the same shape.
    class_map : mapping, optional
        name -> value.
    require_all : bool
        Refuse labels without every phase of ``class_map`` or with fewer than two phases
        (no contrast to measure).

    Returns
    -------
    dict
        ``phases``: see :func:`phase_statistics`; ``pairs``: ``"a-b"`` ->
        ``{"contrast": |μa − μb|, "cnr": |μa − μb| / sqrt((σa² + σb²) / 2),
        "snr": |μa − μb| / σa}`` (grey levels; CNR uses the pooled σ, SNR the σ of the
        first, darker-coded phase a, e.g. pore as background).
    """
    stats = phase_statistics(image, labels, class_map=class_map)
    return quality_from_statistics(stats, class_map=class_map, require_all=require_all)


def quality_from_statistics(stats: dict[str, dict[str, float]], *,
                            class_map: Mapping[str, int] | None = None,
                            require_all: bool = False) -> dict[str, Any]:
    """:func:`image_quality`'s dict from :func:`phase_statistics` (or its slab form)."""
    if require_all:
        _require_phases(stats, class_map)
    pairs: dict[str, dict[str, float]] = {}
    for (ka, a), (kb, b) in combinations(stats.items(), 2):
        contrast = abs(a["mean"] - b["mean"])
        pooled = float(np.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2.0))
        pairs[f"{ka}-{kb}"] = {
            "contrast": contrast,
            "cnr": contrast / pooled if pooled > 0 else float("inf"),
            "snr": contrast / a["std"] if a["std"] > 0 else float("inf"),
        }
    return {"phases": stats, "pairs": pairs}


def _require_phases(stats: Mapping[str, Any], class_map: Mapping[str, int] | None) -> None:
    missing = [k for k in (class_map or {}) if k not in stats]
    if missing:
        raise InputError(f"labels: no voxel of phase {missing[0]!r} (value "
                         f"{class_map[missing[0]]}); SNR/CNR need every phase of the class "
                         f"map {dict(class_map)} present")
    if len(stats) < 2:
        raise InputError(f"labels: a single phase ({', '.join(stats)}); SNR/CNR need at "
                         "least two phases")


def fraction_vs_reference(
    segs: Sequence[np.ndarray],
    *,
    phase: str | int,
    reference: float,
    class_map: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Volume fraction of one phase against a value measured by another technique.

    Parameters
    ----------
    segs : sequence of numpy.ndarray
        One or more segmentations (e.g. one per user) of the same or different volumes.
    phase : str or int
        Phase name (looked up in ``class_map``) or code.
    reference : float
        Reference volume fraction as a fraction in (0, 1] (e.g. 0.508 for 50.8 % active
        material from FIB-SEM).
    class_map : mapping, optional
        name -> value.

    Returns
    -------
    dict
        ``reference``, ``phase``, ``per_segmentation`` (list of ``{"volume_fraction",
        "absolute_difference", "relative_difference_percent"}``), ``mean`` (the same for
        the mean fraction of all segmentations, plus ``std``: sample σ, ddof = 1, NaN
        for one segmentation). Absolute difference = fraction − reference (fraction
        units: −0.02 = 2 percentage points lower); relative = 100 · difference / reference.

    Examples
    --------
    >>> import numpy as np
    >>> r = fraction_vs_reference([np.array([0, 2, 2, 2])], phase=2, reference=0.5)
    >>> r["per_segmentation"][0]["absolute_difference"]
    0.25
    """
    if isinstance(segs, np.ndarray):
        segs = [segs]
    if len(segs) == 0:
        raise InputError("fraction_vs_reference: need at least one segmentation")
    ref = float(reference)
    if not np.isfinite(ref) or not 0 < ref <= 1:
        raise InputError(f"reference: expected a volume fraction in (0, 1], got {reference!r} "
                         "(write 50.8 % as 0.508)")
    value = resolve_phase(phase, class_map, where="phase")
    fr = np.array([float(np.count_nonzero(_checked_labels(s) == value)) / np.size(s)
                   for s in segs])

    def entry(f: float) -> dict[str, float]:
        return {"volume_fraction": f, "absolute_difference": f - ref,
                "relative_difference_percent": 100.0 * (f - ref) / ref}

    mean = entry(float(fr.mean()))
    mean["std"] = float(fr.std(ddof=1)) if fr.size > 1 else float("nan")
    return {"phase": str(phase), "reference": ref,
            "per_segmentation": [entry(float(f)) for f in fr], "mean": mean}
