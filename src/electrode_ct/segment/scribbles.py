"""Training labels for the pixel classifiers: simulated, threshold-seeded, merged scribbles.

A simulated user paints brush strokes (smooth random curves, 1–3 voxels brush radius) on
``n_slices`` z slices — the central one plus equally spaced others — until the strokes
cover ``coverage`` of those slices' pixels:

- ``perclass``: a careful user: the same share of strokes per class, each stroke kept
  inside its class and away from class borders (the margin shrinks for a phase too thin
  to hold its share, e.g. a 2-px carbon-binder shell, so every class gets strokes);
- ``uniform``: strokes placed anywhere, each pixel labelled with the reference class.

Scribble values are 1..K for the reference classes in increasing value order (0 =
unlabelled). :func:`correction_scribbles` adds strokes where a prediction disagrees with
the reference (the retraining step). Everything is seeded.

Beside simulated users, training labels also come from thresholds
(:func:`threshold_seeds`, the published ML1–ML3 variants) and from a user's further
strokes (:func:`merge_scribbles`), painted where a prediction is least certain
(:func:`uncertain_regions`: the regions to label next).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError, ShapeError

STYLES = ("perclass", "uniform")
BORDER_PX = 3
"""``perclass`` strokes stay at least this many pixels away from other classes."""


def scribble_slices(nz: int, n_slices: int) -> np.ndarray:
    """The central slice plus equally spaced others, ``n_slices`` in total (sorted)."""
    n = max(1, min(int(n_slices), int(nz)))
    centre = nz // 2
    offsets = np.arange(n) - n // 2
    z = np.clip(centre + np.round(offsets * nz / n).astype(int), 0, nz - 1)
    z = np.unique(z)
    if z.size < n:  # fill gaps left by clipping/rounding
        rest = np.setdiff1d(np.arange(nz), z)
        z = np.sort(np.concatenate([z, rest[np.argsort(np.abs(rest - centre))][: n - z.size]]))
    return z


def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = yy * yy + xx * xx <= r * r + r * 0.5
    return np.stack([yy[keep], xx[keep]], axis=1)


def _stroke(rng: np.random.Generator, start: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels (ordered along the stroke, unique) of one smooth brush stroke from ``start``."""
    size = min(shape)
    length = rng.uniform(0.05, 0.2) * size
    n = max(2, int(length))
    turn = np.cumsum(rng.normal(0, 0.15, n))
    angle = rng.uniform(0, 2 * np.pi) + turn
    pts = start[None, :] + np.cumsum(np.stack([np.sin(angle), np.cos(angle)], 1), axis=0)
    radius = int(rng.integers(1, 4))
    pix = (np.round(pts).astype(np.int64)[:, None, :] + _disk(radius)[None]).reshape(-1, 2)
    ok = (pix[:, 0] >= 0) & (pix[:, 0] < shape[0]) & (pix[:, 1] >= 0) & (pix[:, 1] < shape[1])
    flat = pix[ok, 0] * shape[1] + pix[ok, 1]
    _, first = np.unique(flat, return_index=True)
    return flat[np.sort(first)]


def _paint(rng: np.random.Generator, allowed: np.ndarray, target: int,
           taken: np.ndarray) -> np.ndarray:
    """Flat pixel indices of strokes inside ``allowed`` until ``target`` new pixels."""
    shape = allowed.shape
    flat_allowed = allowed.ravel() & ~taken
    cand = np.flatnonzero(flat_allowed)
    picked: list[np.ndarray] = []
    count = 0
    budget = 20 * max(target, 1) + 1000
    tries = 0
    while count < target and cand.size and tries < budget:
        start = cand[rng.integers(cand.size)]
        pix = _stroke(rng, np.array(divmod(int(start), shape[1]), float), shape)
        pix = pix[flat_allowed[pix]]
        flat_allowed[pix] = False
        picked.append(pix)
        count += pix.size
        tries += pix.size + 1
        if rng.random() < 0.05:
            cand = np.flatnonzero(flat_allowed)
    if not picked:
        return np.zeros(0, np.int64)
    return np.concatenate(picked)[:target]


def interior(mask: np.ndarray, *, border_px: float, need: int) -> np.ndarray:
    """Pixels of ``mask`` as far from its border as a thin phase allows.

    The margin is the largest of ``border_px``, ``border_px − 1``, … 0 pixels that still
    leaves ``need`` pixels (a careful user keeps away from borders, but a 2-px thin shell
    has no pixel 3 px from its border: it is then painted closer to — at worst on — it).

    Parameters
    ----------
    mask : numpy.ndarray
        bool (y, x) pixels of one class.
    border_px : float
        Preferred minimum distance (pixels) from other classes.
    need : int
        Number of pixels the strokes should cover.

    Returns
    -------
    numpy.ndarray
        bool mask, a subset of ``mask`` (the whole mask when even margin 1 is too thin).
    """
    dist = ndi.distance_transform_edt(mask)
    # pixels per integer margin: counts[m] = number with dist > m (one histogram, no loop)
    top = int(np.ceil(border_px))
    hist = np.bincount(np.minimum(np.ceil(dist[mask]).astype(np.int64), top + 1),
                       minlength=top + 2)
    above = np.cumsum(hist[::-1])[::-1]  # above[m] = pixels with ceil(dist) >= m
    for m in range(top, 0, -1):  # at most border_px + 1 candidates
        if above[m + 1] >= need:
            return dist > min(float(m), float(border_px))
    return mask.copy()


def simulate_scribbles(
    reference: np.ndarray,
    *,
    coverage: float = 0.1,
    n_slices: int = 7,
    style: str = "perclass",
    seed: int = 0,
    slices: Sequence[int] | None = None,
    border_px: int = BORDER_PX,
) -> np.ndarray:
    """Simulate a user's scribbles from a dense reference labelling.

    Parameters
    ----------
    reference : numpy.ndarray
        Dense integer labels, 2-D (y, x) or 3-D (z, y, x); every value is a class.
    coverage : float
        Fraction (0, 1] of the pixels of the chosen slices to label.
    n_slices : int
        Number of z slices with strokes (central plus equally spaced others).
    style : {"perclass", "uniform"}
        Careful per-class strokes away from borders, or uniformly placed strokes.
    seed : int
        Random seed (one seed = one simulated user).
    slices : sequence of int, optional
        Explicit z slices (overrides ``n_slices``).
    border_px : int
        ``perclass``: preferred minimum distance (pixels) of strokes from other classes;
        reduced for a class too thin to give its share at that distance (see
        :func:`interior`), so every class present on a slice gets strokes.

    Returns
    -------
    numpy.ndarray
        uint8 scribbles of the reference's shape: 0 unlabelled, 1..K = the reference values
        in increasing order.

    Examples
    --------
    >>> ref = np.zeros((40, 40), np.uint8); ref[:, 20:] = 2
    >>> s = simulate_scribbles(ref, coverage=0.1, seed=1)
    >>> round(float((s > 0).mean()), 2), sorted(np.unique(s).tolist())
    (0.1, [0, 1, 2])
    """
    ref = np.asarray(reference)
    two_d = ref.ndim == 2
    if two_d:
        ref = ref[None]
    if ref.ndim != 3:
        raise InputError(f"reference: expected a 2-D or 3-D label array, got shape {ref.shape}")
    if ref.dtype.kind not in "iub":
        raise InputError(f"reference: expected integer labels, got dtype {ref.dtype}")
    if not 0 < coverage <= 1:
        raise InputError(f"--coverage: expected a fraction in (0, 1], got {coverage}")
    if style not in STYLES:
        raise InputError(f"--style: expected one of {', '.join(STYLES)}, got {style!r}")
    values = np.unique(ref)
    if values.size > 255:
        raise InputError(f"reference: {values.size} classes; at most 255 supported")
    rng = np.random.default_rng(seed)
    zs = np.asarray(slices, int) if slices is not None else scribble_slices(ref.shape[0],
                                                                            n_slices)
    if zs.size == 0 or zs.min() < 0 or zs.max() >= ref.shape[0]:
        raise InputError(f"slices: expected z indices in 0..{ref.shape[0] - 1}, got {zs}")
    out = np.zeros(ref.shape, np.uint8)
    lut = np.zeros(int(values.max()) + 1, np.uint8)
    lut[values] = np.arange(1, values.size + 1)
    npix = ref.shape[1] * ref.shape[2]
    for z in zs:  # a handful of slices
        sl = ref[z]
        target = int(round(coverage * npix))
        taken = np.zeros(npix, bool)
        plane = out[z].ravel()
        if style == "uniform":
            pix = _paint(rng, np.ones(sl.shape, bool), target, taken)
            plane[pix] = lut[sl.ravel()[pix]]
        else:
            present = [v for v in values if np.any(sl == v)]
            share = target // max(len(present), 1)
            extra = target - share * len(present)
            for i, v in enumerate(present):
                want = share + (extra if i == 0 else 0)
                inner = interior(sl == v, border_px=border_px, need=want)
                pix = _paint(rng, inner, want, taken)
                taken[pix] = True
                plane[pix] = lut[v]
        out[z] = plane.reshape(sl.shape)
    return out[0] if two_d else out


def scribble_class_map(reference_class_map: Mapping[str, int] | None,
                       values: Sequence[int]) -> dict[str, int]:
    """Class map of simulated scribbles: reference names moved to values 1..K."""
    names = {int(v): k for k, v in (reference_class_map or {}).items()}
    return {names.get(int(v), f"class{int(v)}"): i + 1 for i, v in enumerate(values)}


def correction_scribbles(
    reference: np.ndarray,
    prediction: np.ndarray,
    scribbles: np.ndarray,
    *,
    coverage: float = 0.01,
    seed: int = 0,
    slices: Sequence[int] | None = None,
) -> np.ndarray:
    """Add strokes where a prediction disagrees with the reference (a correction round).

    Parameters
    ----------
    reference : numpy.ndarray
        Dense reference labels (the values used by :func:`simulate_scribbles`).
    prediction : numpy.ndarray
        Predicted scribble values (1..K), same shape.
    scribbles : numpy.ndarray
        Current scribbles (0 unlabelled, 1..K).
    coverage : float
        Fraction of the pixels of the corrected slices to add.
    seed : int
        Random seed.
    slices : sequence of int, optional
        z slices to correct; default: the slices that already hold scribbles.

    Returns
    -------
    numpy.ndarray
        The scribbles plus correction strokes (new array).
    """
    ref = np.asarray(reference)
    pred = np.asarray(prediction)
    scr = np.asarray(scribbles)
    if not (ref.shape == pred.shape == scr.shape):
        raise InputError(f"correction: reference {ref.shape}, prediction {pred.shape} and "
                         f"scribbles {scr.shape} must have the same shape")
    two_d = ref.ndim == 2
    ref3, pred3, out = (a[None] if two_d else a for a in (ref, pred, scr.copy()))
    out = out.astype(np.uint8)
    values = np.unique(ref3)
    lut = np.zeros(int(values.max()) + 1, np.uint8)
    lut[values] = np.arange(1, values.size + 1)
    wrong = lut[ref3] != pred3
    zs = (np.asarray(slices, int) if slices is not None
          else np.flatnonzero(np.any(out > 0, axis=(1, 2))))
    rng = np.random.default_rng(seed)
    npix = ref3.shape[1] * ref3.shape[2]
    for z in zs:
        plane = out[z].ravel()
        pix = _paint(rng, wrong[z] & (out[z] == 0), int(round(coverage * npix)), plane > 0)
        plane[pix] = lut[ref3[z].ravel()[pix]]
        out[z] = plane.reshape(ref3.shape[1:])
    return out[0] if two_d else out


def coverage_of(scribbles: np.ndarray) -> dict[str, Any]:
    """Labelled fraction overall and on the slices that hold scribbles."""
    s = np.asarray(scribbles)
    s3 = s[None] if s.ndim == 2 else s
    used = np.any(s3 > 0, axis=(1, 2))
    return {"coverage_total": float((s3 > 0).mean()),
            "coverage_on_slices": float((s3[used] > 0).mean()) if used.any() else 0.0,
            "slices": np.flatnonzero(used).tolist()}


# -- threshold seeds, merging, regions to label next ---------------------------------

ML_VARIANTS = {"ML1": "one central slice", "ML2": "7 equally spaced slices",
               "ML3": "the whole volume"}
"""The published threshold-seeded forest variants."""


def threshold_seeds(image: np.ndarray, thresholds: Sequence[float], *,
                    variant: str = "ML1", margin: float | None = None,
                    slices: Sequence[int] | None = None) -> np.ndarray:
    """Training labels from thresholds: voxels far from every cut value (ML1–ML3).

    Parameters
    ----------
    image : numpy.ndarray
        Grey image (z, y, x) or (y, x).
    thresholds : sequence of float
        Increasing cut values (grey levels) between K = len + 1 classes.
    variant : {"ML1", "ML2", "ML3"}
        Seeds on the central slice, on 7 equally spaced slices, or on every slice.
    margin : float, optional
        Minimum distance (grey levels) from every cut; default a quarter of the smallest
        gap between cuts (or of the grey range for a single cut).
    slices : sequence of int, optional
        Explicit z slices (overrides the variant's choice).

    Returns
    -------
    numpy.ndarray
        uint8 labels of the image's shape: 0 unlabelled, class k+1 for grey levels between
        cut k−1 and cut k (darkest = 1).
    """
    img = np.asarray(image)
    two_d = img.ndim == 2
    img3 = img[None] if two_d else img
    cuts = np.sort(np.asarray(thresholds, np.float64))
    if cuts.size == 0:
        raise InputError("thresholds: at least one cut value is needed")
    if variant not in ML_VARIANTS:
        raise InputError(f"variant: expected one of {', '.join(ML_VARIANTS)}, got {variant!r}")
    if margin is None:
        gaps = np.diff(cuts) if cuts.size > 1 else np.array([np.ptp(img3) / 2])
        margin = 0.25 * float(gaps.min())
    nz = img3.shape[0]
    if slices is not None:
        zs = np.asarray(slices, int)
    else:
        zs = {"ML1": scribble_slices(nz, 1), "ML2": scribble_slices(nz, 7),
              "ML3": np.arange(nz)}[variant]
    out = np.zeros(img3.shape, np.uint8)
    sub = img3[zs].astype(np.float64)
    cls = np.searchsorted(cuts, sub).astype(np.uint8) + 1
    near = np.min(np.abs(sub[..., None] - cuts), axis=-1) < margin
    cls[near] = 0
    out[zs] = cls
    return out[0] if two_d else out


def merge_scribbles(base: np.ndarray, added: np.ndarray) -> np.ndarray:
    """Scribbles for retraining: ``added`` strokes (non-zero) drawn over ``base``."""
    a, b = np.asarray(base), np.asarray(added)
    if a.shape != b.shape:
        raise ShapeError(f"added scribbles {b.shape} differ in shape from the first {a.shape}")
    return np.where(b > 0, b, a).astype(np.uint8)


def uncertain_regions(uncertainty: np.ndarray, *, n: int = 5,
                      size: int = 32) -> list[dict[str, Any]]:
    """The ``n`` windows of highest mean uncertainty: where to paint next.

    Parameters
    ----------
    uncertainty : numpy.ndarray
        Uncertainty map (z, y, x), e.g. :attr:`Prediction.uncertainty`.
    n : int
        Number of regions.
    size : int
        Window edge (voxels); windows do not overlap.

    Returns
    -------
    list of dict
        ``z, y, x`` (window centre, voxels), ``mean_uncertainty``, highest first.
    """
    u = np.asarray(uncertainty, np.float32)
    if u.ndim == 2:
        u = u[None]
    win = [min(size, s) for s in u.shape]
    mean = ndi.uniform_filter(u, size=win, mode="constant")
    out: list[dict[str, Any]] = []
    for _ in range(int(n)):  # n small: one argmax + suppression each
        i = int(np.argmax(mean))
        val = float(mean.flat[i])
        if not np.isfinite(val) or val <= 0:
            break
        c = np.unravel_index(i, u.shape)
        out.append({"z": int(c[0]), "y": int(c[1]), "x": int(c[2]), "mean_uncertainty": val})
        sl = tuple(slice(max(0, ci - w + 1), ci + w) for ci, w in zip(c, win, strict=True))
        mean[sl] = -np.inf
    return out


SLICE_CHOICES = ("central", "first", "all")
"""Named seed-slice choices of :func:`seed_slices` (besides a count or explicit indices)."""


def seed_slices(nz: int, spec: str | None, *, variant: str = "ML1") -> np.ndarray:
    """The z slices that carry threshold seeds: a named choice, a count or indices.

    Parameters
    ----------
    nz : int
        Slices of the volume.
    spec : str or None
        ``central`` (ours for ML1), ``first`` (Bailey et al.'s ML1), ``all`` (ML3), an
        integer N (N equally spaced slices, central included: 7 is our ML2, 6 the paper's),
        or comma-separated z indices; None takes ``variant``'s own choice.
    variant : {"ML1", "ML2", "ML3"}
        The variant whose choice ``None`` takes.

    Returns
    -------
    numpy.ndarray
        Sorted unique z indices.

    Raises
    ------
    InputError
        An unknown name, a count below 1, an index outside 0..nz−1.
    """
    if spec is None:
        if variant not in ML_VARIANTS:
            raise InputError(f"--seeded: expected one of {', '.join(ML_VARIANTS)}, "
                             f"got {variant!r}")
        spec = {"ML1": "central", "ML2": "7", "ML3": "all"}[variant]
    text = str(spec).strip().lower()
    if text in SLICE_CHOICES:
        return {"central": scribble_slices(nz, 1), "first": np.array([0]),
                "all": np.arange(nz)}[text]
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        values = []
    if not values:
        raise InputError(f"--seed-slices: expected {', '.join(SLICE_CHOICES)}, a number of "
                         f"slices or z indices, got {spec!r}")
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise InputError(f"--seed-slices: expected at least 1 slice, got {values[0]}")
        return scribble_slices(nz, values[0])
    z = np.unique(np.asarray(values, int))
    if z.min() < 0 or z.max() >= nz:
        raise InputError(f"--seed-slices: z indices must lie in 0..{nz - 1}, got {spec!r}")
    return z


def regions_volume(shape: Sequence[int], regions: Sequence[Mapping[str, Any]], *,
                   size: int) -> np.ndarray:
    """The windows of :func:`uncertain_regions` painted with their rank (1 = label first).

    Parameters
    ----------
    shape : 3 ints
        Volume shape (z, y, x).
    regions : sequence of dict
        ``z, y, x`` window centres, highest priority first.
    size : int
        Window edge (voxels), clipped to the volume as in :func:`uncertain_regions`.

    Returns
    -------
    numpy.ndarray
        uint8 volume: 0 outside every window, rank k inside the k-th.
    """
    out = np.zeros(tuple(shape), np.uint8)
    win = [min(int(size), int(s)) for s in shape]
    for rank, r in enumerate(regions, start=1):  # a handful of windows
        lo = [min(max(0, int(r[a]) - w // 2), s - w)
              for a, w, s in zip("zyx", win, shape, strict=True)]
        box = tuple(slice(a, a + w) for a, w in zip(lo, win, strict=True))
        out[box] = np.where(out[box] == 0, rank, out[box])
    return out
