"""Interface position: where one segmentation puts a phase boundary relative to another.

Every face between a voxel of phase a and a voxel of phase b in a segmentation is placed
on the signed distance axis of the reference's phase-a boundary: 0 µm = on the reference
interface, positive = phase a reaches beyond it (into what the reference calls another
phase), negative = phase a stops short of it. The histogram of these positions, pooled
over ensemble members or perturbed labellings, and its full width at half maximum (FWHM)
state how far the interface placement wanders (SegmentPy's labeller-uncertainty study,
Su et al. 2022).

Distances are exact Euclidean distances between voxel centres (``edt``) made
face-centred: a face whose two voxels sit on either side of a planar reference interface
is at 0; a planar interface moved by k voxels is at ±k voxel sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError

DEFAULT_BIN_VOXELS = 0.5
"""Histogram bin width in voxels (of the smallest voxel edge)."""

DEFAULT_RANGE_VOXELS = 10.0
"""Positions farther than this many voxels from the reference interface are counted as
outside the histogram (not binned)."""


def _signed_distance(inside: np.ndarray, spacing: Sequence[float], two_d: bool) -> np.ndarray:
    """Distance (µm) from each voxel centre to the nearest voxel centre across the phase
    boundary: negative inside, positive outside (0 nowhere)."""
    import edt

    if two_d:
        return np.stack([_signed_distance(s[None], spacing, False)[0] for s in inside])
    d_out = edt.edt(~inside, anisotropy=tuple(float(s) for s in spacing), black_border=False)
    d_in = edt.edt(inside, anisotropy=tuple(float(s) for s in spacing), black_border=False)
    return np.where(inside, -d_in, d_out).astype(np.float64)


def interface_positions(labels: np.ndarray, reference: np.ndarray, pair: tuple[int, int], *,
                        spacing: Sequence[float] = (1.0, 1.0, 1.0),
                        two_d: bool = False) -> np.ndarray:
    """Signed positions (µm) of the a–b faces of ``labels`` relative to the reference.

    Parameters
    ----------
    labels : numpy.ndarray
        Phase codes (z, y, x) whose interface is placed (e.g. one ensemble member).
    reference : numpy.ndarray
        Phase codes of the same shape (e.g. the expert labels or the majority vote).
    pair : (int, int)
        Phase codes (a, b); positions are measured on the signed distance from the
        reference's phase-a boundary (positive outside phase a).
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    two_d : bool
        Independent z-slices: distances and faces within each slice only.

    Returns
    -------
    numpy.ndarray of float64
        One position per a–b face (µm); empty when ``labels`` has no such face or the
        reference no phase a.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.ones((1, 1, 8), np.uint8); ref[..., 4:] = 2
    >>> lab = np.ones((1, 1, 8), np.uint8); lab[..., 6:] = 2
    >>> interface_positions(lab, ref, (1, 2)).tolist()
    [2.0]
    """
    lab, ref = np.asarray(labels), np.asarray(reference)
    if lab.shape != ref.shape or lab.ndim != 3:
        raise ShapeError(f"interface positions: labels {lab.shape} and reference {ref.shape} "
                         "must be (z, y, x) arrays of the same shape")
    a, b = (int(v) for v in pair)
    inside = ref == a
    if not inside.any() or inside.all():
        return np.empty(0)
    raw = _signed_distance(inside, spacing, two_d)
    out = []
    for ax in range(1 if two_d else 0, 3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        la, lb = lab[tuple(lo)], lab[tuple(hi)]
        face = ((la == a) & (lb == b)) | ((la == b) & (lb == a))
        half = 0.5 * float(spacing[ax])
        rp, rq = raw[tuple(lo)][face], raw[tuple(hi)][face]
        out.append(0.5 * ((rp - np.sign(rp) * half) + (rq - np.sign(rq) * half)))
    return np.concatenate(out)


def fwhm(centres: np.ndarray, counts: np.ndarray) -> float:
    """Full width at half maximum of a histogram (linear interpolation between bins).

    The width between the points, left and right of the highest bin, where the counts
    first fall to half the maximum; a histogram that does not fall to half maximum
    before its ends is measured to its outer bin centres. A single occupied bin gives one
    bin width (the resolution of the histogram). NaN for an empty histogram.

    Examples
    --------
    >>> import numpy as np
    >>> fwhm(np.arange(-2.0, 3.0), np.array([1, 2, 4, 2, 1]))
    2.0
    """
    c = np.asarray(counts, dtype=np.float64)
    x = np.asarray(centres, dtype=np.float64)
    if c.size == 0 or c.max() <= 0:
        return float("nan")
    top = int(np.argmax(c))
    half = c[top] / 2.0

    def crossing(step: int) -> float:
        i = top
        while 0 <= i + step < c.size and c[i + step] > half:
            i += step
        j = i + step
        if not 0 <= j < c.size:
            return float(x[i])
        return float(x[i] + (x[j] - x[i]) * (c[i] - half) / (c[i] - c[j]))

    return crossing(1) - crossing(-1)


def position_histogram(positions: np.ndarray, *, bin_um: float,
                       range_um: float) -> dict[str, Any]:
    """Histogram of interface positions with its FWHM.

    Parameters
    ----------
    positions : numpy.ndarray
        Signed positions (µm), e.g. from :func:`interface_positions`.
    bin_um : float
        Bin width (µm); bins are centred on multiples of it.
    range_um : float
        Half-range (µm): positions with ``|p| > range_um`` are counted in ``n_outside``.

    Returns
    -------
    dict
        ``centres_um``, ``counts``, ``n_faces`` (all positions), ``n_outside``,
        ``mean_um`` and ``std_um`` (of the binned positions; std ddof 1, None for fewer
        than 2), ``fwhm_um`` (None without positions), ``bin_um``.
    """
    if not bin_um > 0 or not range_um >= bin_um:
        raise InputError(f"interface-position histogram: expected a bin width > 0 and a range "
                         f">= the bin width, got bin {bin_um} µm, range {range_um} µm")
    p = np.asarray(positions, dtype=np.float64)
    inner = p[np.abs(p) <= range_um]
    k = int(np.floor(range_um / bin_um + 0.5))
    centres = np.arange(-k, k + 1) * bin_um
    counts = np.bincount(np.clip(np.rint(inner / bin_um).astype(np.int64) + k, 0, 2 * k),
                         minlength=2 * k + 1)
    width = fwhm(centres, counts)
    return {"centres_um": centres.tolist(), "counts": counts.tolist(), "n_faces": int(p.size),
            "n_outside": int(p.size - inner.size),
            "mean_um": float(inner.mean()) if inner.size else None,
            "std_um": float(inner.std(ddof=1)) if inner.size > 1 else None,
            "fwhm_um": None if not np.isfinite(width) else float(width), "bin_um": float(bin_um)}


def pair_histograms(segs: Sequence[np.ndarray], reference: np.ndarray,
                    class_map: dict[str, int], *, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                    two_d: bool = False, bin_um: float | None = None,
                    range_um: float | None = None,
                    references: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Interface-position histogram per phase pair ``a-b`` (names of ``class_map``), the
    faces of every segmentation pooled.

    Parameters
    ----------
    segs : sequence of numpy.ndarray
        Segmentations (z, y, x) whose a–b faces are placed.
    reference : numpy.ndarray
        The labels they are placed against (same shape).
    class_map : dict
        Phase name -> value; every pair of values (a < b) gets a histogram.
    spacing, two_d
        As for :func:`interface_positions`.
    bin_um, range_um : float, optional
        Bin width and half-range, µm (default :data:`DEFAULT_BIN_VOXELS` and
        :data:`DEFAULT_RANGE_VOXELS` of the smallest voxel edge).
    references : sequence of numpy.ndarray, optional
        One reference per segmentation instead of ``reference`` (e.g. per test image).

    Returns
    -------
    dict
        pair -> :func:`position_histogram` result.
    """
    from itertools import combinations

    edge = float(min(spacing))
    step = DEFAULT_BIN_VOXELS * edge if bin_um is None else float(bin_um)
    reach = max(DEFAULT_RANGE_VOXELS * edge, step) if range_um is None else float(range_um)
    refs = list(references) if references is not None else [reference] * len(segs)
    names = {int(v): k for k, v in class_map.items()}
    out = {}
    for a, b in combinations(sorted(names), 2):
        pos = [interface_positions(s, r, (a, b), spacing=spacing, two_d=two_d)
               for s, r in zip(segs, refs, strict=True)]
        out[f"{names[a]}-{names[b]}"] = position_histogram(
            np.concatenate(pos) if pos else np.empty(0), bin_um=step, range_um=reach)
    return out
