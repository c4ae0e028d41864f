"""ilastik-style pixel features: a filter bank at several scales, computed blockwise.

Filters (ilastik's names and definitions):

- ``gaussian``  Gaussian smoothing G(σ)
- ``log``       Laplacian of Gaussian (sum of the second Gaussian derivatives)
- ``ggm``       Gaussian gradient magnitude
- ``dog``       difference of Gaussians G(σ) − G(0.66 σ)
- ``ste``       structure-tensor eigenvalues (inner scale σ, outer scale σ/2), descending
- ``hge``       Hessian-of-Gaussian eigenvalues, descending
- ``std``       local standard deviation in a Gaussian window σ, sqrt(G(v²) − G(v)²) (not in
  ilastik's bank: a texture measure, e.g. noisy pore vs smooth binder in nano-CT)

Scales σ are in voxels along the finest axis; on an anisotropic grid the per-axis scale is
σ · min(spacing) / spacing[axis] and derivatives are taken per finest-axis voxel, so a
feature means the same physical thing along every axis. In ``2d`` mode every z slice is
filtered on its own (no smoothing or derivative along z).

Filters are separable convolutions with kernels truncated at 3 σ (ilastik/vigra's window),
boundary mode ``reflect``. :func:`halo` gives the margin that makes a block's features equal
to the whole-volume features (kernel radius, plus the outer scale for the structure tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.blocks import Block, map_blocks
from electrode_ct.errors import ConfigError, InputError
from electrode_ct.volume import Spacing, as_spacing

ILASTIK_FILTERS: tuple[str, ...] = ("gaussian", "log", "ggm", "dog", "ste", "hge")
"""ilastik's filter bank (the ``full`` set)."""

FILTERS: tuple[str, ...] = (*ILASTIK_FILTERS, "std")
"""Every filter name (ilastik's bank plus the local standard deviation ``std``)."""

SCALES: tuple[float, ...] = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
"""ilastik's default scales (voxels)."""

TRUNCATE = 3.0
"""Gaussian kernels are cut at ``TRUNCATE`` standard deviations."""

DOG_RATIO = 0.66
"""Difference of Gaussians: G(σ) − G(DOG_RATIO · σ)."""

STE_OUTER = 0.5
"""Structure tensor: outer (integration) scale = STE_OUTER · σ."""

NORMALISATIONS: tuple[str, ...] = ("auto", "percentile", "offset", "none")

GAIN_TOLERANCE = 1.5
"""``auto`` normalisation keeps the training grey scale (a pure shift) while an image's
robust range (0.5–99.5 % percentiles) is within this factor of the training image's, and
rescales it to the training range beyond. Within one scan the range moves with the phase
fractions (±10–25 % between SegmentPy slices) while the gain does not; a different gain
(another scan, detector or reconstruction scaling) usually moves it by more."""

# ilastik does not offer σ = 0.3 for the derivative filters; we keep the same rule
_SMOOTHING_ONLY_SCALES = (0.3,)

DEFAULT_FEATURES: tuple[tuple[str, float], ...] = (
    ("gaussian", 1.0), ("gaussian", 1.6), ("log", 1.6),
    ("gaussian", 3.5), ("log", 3.5), ("dog", 3.5), ("hge", 3.5),
    ("gaussian", 5.0), ("hge", 5.0),
)
"""The compact default set (feature, σ): the most important filters of the full bank by
mean decrease in impurity, measured on real nano-CT (SegmentPy, 2-D) and micro-CT (NREL,
3-D) scribbles, near-duplicates dropped and scales shared (each σ's Gaussian derivatives
are computed once) — see ``docs/forest.md``."""

FEATURE_SETS: dict[str, tuple[tuple[str, float], ...]] = {
    "default": DEFAULT_FEATURES,
    "full": tuple((f, s) for f in ILASTIK_FILTERS for s in SCALES
                  if not (f != "gaussian" and s in _SMOOTHING_ONLY_SCALES)),
    "minimal": (("gaussian", 0.7), ("gaussian", 3.5), ("ggm", 1.0), ("log", 1.6)),
}
"""Named feature sets: ``default`` (compact), ``full`` (ilastik's whole bank), ``minimal``."""


@dataclass(frozen=True)
class FeatureConfig:
    """Which features to compute and how.

    Parameters
    ----------
    features : tuple of (str, float)
        (filter, σ in voxels) pairs, in output order.
    mode : {"3d", "2d"}
        3-D filters, or per 2-D z slice.
    normalise : {"auto", "percentile", "offset", "none"}
        Per-image intensity normalisation applied before filtering: ``percentile`` maps
        the 0.5 and 99.5 percentiles of the image to 0 and 1, so a model transfers to
        slices or scans whose grey levels drift (measured: +0.05 mean IoU on SegmentPy
        sub-volume A, neutral on C); ``offset`` only shifts the mid-point of those
        percentiles to 0 and keeps the grey scale (for images of one scan, whose gain is
        the same but whose offset drifts; no residual gain from differing phase
        fractions); ``auto`` (default) is ``offset``, and also rescales an image to the
        training image's range when the two ranges differ by more than
        :data:`GAIN_TOLERANCE` (a gain change); ``none`` uses the grey values as they
        are.
    """

    features: tuple[tuple[str, float], ...] = DEFAULT_FEATURES
    mode: str = "3d"
    normalise: str = "auto"

    def __post_init__(self) -> None:
        feats = tuple((str(f), float(s)) for f, s in self.features)
        if not feats:
            raise ConfigError("features: at least one (filter, scale) is needed")
        for f, s in feats:
            if f not in FILTERS:
                raise ConfigError(f"features: unknown filter {f!r}; expected one of {FILTERS}")
            if not (np.isfinite(s) and s > 0):
                raise ConfigError(f"features: scale of {f!r} must be > 0 voxels, got {s}")
        if self.mode not in ("3d", "2d"):
            raise ConfigError(f"features: mode must be '3d' or '2d', got {self.mode!r}")
        if self.normalise not in NORMALISATIONS:
            raise ConfigError(f"features: normalise must be one of {NORMALISATIONS}, "
                              f"got {self.normalise!r}")
        object.__setattr__(self, "features", feats)

    @property
    def ndim(self) -> int:
        """Number of filtered axes (2 or 3)."""
        return 2 if self.mode == "2d" else 3

    @property
    def names(self) -> list[str]:
        """One name per output channel, e.g. ``hge_1.6_0``."""
        out = []
        for f, s in self.features:
            if f in ("ste", "hge"):
                out += [f"{f}_{s:g}_{i}" for i in range(self.ndim)]
            else:
                out.append(f"{f}_{s:g}")
        return out

    @property
    def n_features(self) -> int:
        """Number of output channels."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in model headers)."""
        return {"features": [[f, s] for f, s in self.features], "mode": self.mode,
                "normalise": self.normalise}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(features=tuple((f, s) for f, s in d["features"]), mode=d["mode"],
                       normalise=d.get("normalise", "none"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"feature configuration {d!r} is malformed ({exc})") from exc


def parse_features(text: str | Iterable[str] | None, *, mode: str = "3d",
                   normalise: str = "auto") -> FeatureConfig:
    """Build a :class:`FeatureConfig` from a set name or ``filter:σ`` items.

    Parameters
    ----------
    text : str or iterable of str or None
        ``"default"``, ``"full"``, ``"minimal"``, or a comma-separated list such as
        ``"gaussian:0.7,ggm:1.0,hge:1.6"``; a bare filter name takes every scale of
        :data:`SCALES`. ``None`` gives the default set.
    mode : {"3d", "2d"}
    normalise : {"auto", "percentile", "offset", "none"}

    Raises
    ------
    ConfigError
        On an unknown set or filter name or a bad scale.

    Examples
    --------
    >>> parse_features("gaussian:1,ggm:1.6").names
    ['gaussian_1', 'ggm_1.6']
    """
    if text is None:
        text = "default"
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    feats: list[tuple[str, float]] = []
    for item in items:
        if item in FEATURE_SETS:
            feats += FEATURE_SETS[item]
            continue
        name, _, scale = item.partition(":")
        name = name.strip().lower()
        if name not in FILTERS:
            raise ConfigError(f"--features: unknown item {item!r}; expected a set "
                              f"({', '.join(FEATURE_SETS)}) or filter:σ with filter in "
                              f"{', '.join(FILTERS)}")
        if scale:
            try:
                feats.append((name, float(scale)))
            except ValueError:
                raise ConfigError(f"--features: scale in {item!r} is not a number") from None
        else:
            feats += [(name, s) for s in SCALES]
    uniq = list(dict.fromkeys(feats))
    return FeatureConfig(tuple(uniq), mode=mode, normalise=normalise)


def axis_sigmas(sigma: float, spacing: Spacing, mode: str) -> tuple[float, float, float]:
    """Per-axis σ in voxels (z, y, x) for a scale given in finest-axis voxels."""
    sp = as_spacing(spacing)
    axes = (1, 2) if mode == "2d" else (0, 1, 2)
    finest = min(sp[a] for a in axes)
    return tuple(sigma * finest / sp[a] if a in axes else 0.0 for a in range(3))  # type: ignore[return-value]


def _radius(sig: float) -> int:
    # scipy's gaussian kernel radius for a given truncate
    return int(TRUNCATE * float(sig) + 0.5) if sig > 0 else 0


def halo(config: FeatureConfig, spacing: Spacing = (1.0, 1.0, 1.0)) -> tuple[int, int, int]:
    """Margin (z, y, x) in voxels that makes blockwise features equal whole-volume ones.

    Parameters
    ----------
    config : FeatureConfig
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    """
    out = [0, 0, 0]
    for f, s in config.features:
        sig = axis_sigmas(s, spacing, config.mode)
        for a in range(3):
            r = _radius(sig[a])
            if f == "ste":
                r += _radius(STE_OUTER * sig[a])
            out[a] = max(out[a], r)
    return (out[0], out[1], out[2])


def robust_range(image: Any, *, max_samples: int = 2_000_000) -> tuple[float, float]:
    """The image's robust grey range: its (0.5 %, 99.5 %) percentiles.

    Parameters
    ----------
    image : array-like
        The whole image (numpy, memmap or dask); a regular subsample of at most
        ``max_samples`` voxels is used, so the range is the same however the image is
        later split into blocks. Falls back to the subsample's, then the whole image's,
        minimum and maximum when the percentiles coincide.

    Raises
    ------
    InputError
        When the image holds a single value (nothing to segment) or non-finite values.
    """
    step = subsample_step(image.shape, max_samples)
    sub = np.asarray(image[::step, ::step, ::step], dtype=np.float64)
    return range_of_subsample(sub, lambda: (float(np.min(image)), float(np.max(image))))


def subsample_step(shape: Sequence[int], max_samples: int) -> int:
    """Stride (voxels, every axis) of :func:`robust_range`'s regular subsample."""
    n = int(np.prod([int(s) for s in shape]))
    return max(1, int(np.ceil((n / max_samples) ** (1 / 3))))


def range_of_subsample(sub: np.ndarray, whole_range: Callable[[], tuple[float, float]]
                       ) -> tuple[float, float]:
    """:func:`robust_range` from its subsample values (any order: percentiles and
    extremes do not depend on it); ``whole_range()`` gives the image's min and max."""
    if sub.size == 0 or not np.all(np.isfinite(sub)):
        raise InputError("image: contains NaN/inf values or is empty; expected finite grey values")
    lo, hi = (float(v) for v in np.percentile(sub, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(sub.min()), float(sub.max())
    if lo == hi:
        lo, hi = whole_range()
        if lo == hi:
            raise InputError(f"image: every voxel has the value {lo:g}; "
                             "nothing to segment (expected varying grey values)")
    return lo, hi


def normalisation_range(robust: tuple[float, float], normalise: str, *,
                        reference_width: float | None = None) -> tuple[float, float]:
    """Normalisation range (lo, hi) from a :func:`robust_range`; see :func:`intensity_range`."""
    lo, hi = robust
    if normalise == "none":
        return 0.0, 1.0
    if normalise in ("offset", "auto"):
        # shift only: the percentile mid-range goes to 0, the grey scale is kept ...
        scale = 1.0
        if normalise == "auto" and reference_width is not None and reference_width > 0:
            ratio = (hi - lo) / reference_width
            if not 1.0 / GAIN_TOLERANCE <= ratio <= GAIN_TOLERANCE:
                scale = ratio  # ... unless the gain differs: back to the training scale
        lo = 0.5 * (lo + hi)
        hi = lo + scale
    return lo, hi


def intensity_range(image: Any, *, normalise: str = "none",
                    max_samples: int = 2_000_000,
                    reference_width: float | None = None) -> tuple[float, float]:
    """Per-image normalisation range (lo, hi): intensities are mapped by (v − lo)/(hi − lo).

    Parameters
    ----------
    image : array-like
        The whole image (numpy, memmap or dask); see :func:`robust_range`.
    normalise : {"auto", "percentile", "offset", "none"}
        ``percentile``: (0.5 %, 99.5 %) percentiles; ``offset``: (m, m + 1) with m their
        mid-point (a pure shift); ``auto``: (m, m + 1) while the percentile width w is
        within a factor :data:`GAIN_TOLERANCE` of ``reference_width`` (or none is given),
        else (m, m + w / ``reference_width``), which maps the image onto the reference's
        grey scale; ``none``: (0, 1).
    reference_width : float, optional
        ``auto`` only: the training image's percentile width (grey units).

    Raises
    ------
    InputError
        When the image holds a single value (nothing to segment) or non-finite values
        (checked whatever ``normalise`` is).
    """
    return normalisation_range(robust_range(image, max_samples=max_samples), normalise,
                               reference_width=reference_width)


def _deriv_scale(spacing: Spacing, mode: str) -> tuple[float, float, float]:
    sp = as_spacing(spacing)
    axes = (1, 2) if mode == "2d" else (0, 1, 2)
    finest = min(sp[a] for a in axes)
    return tuple(finest / sp[a] for a in range(3))  # type: ignore[return-value]


class _Derivatives:
    """Gaussian derivatives of one image at one scale, sharing separable passes.

    With ``keep`` (one slice per axis), the result of the pass along an axis is cut to
    that axis's slice before the passes along the next axes: every later pass filters
    only the lines the kept region needs, and each value is computed from the same line
    as without the cut (the same numbers, in fewer passes over the halo).
    """

    def __init__(self, image: np.ndarray, sigmas: Sequence[float],
                 keep: Sequence[slice] | None = None) -> None:
        self.image = image
        self.sigmas = tuple(sigmas)
        self.keep = tuple(keep) if keep is not None else (slice(None),) * image.ndim
        self._cache: dict[tuple[int, ...], np.ndarray] = {(): image}

    def get(self, order: tuple[int, int, int]) -> np.ndarray:
        """Derivative of the given order per axis (voxel units), on the kept region."""
        return self._prefix(tuple(order))

    def _prefix(self, order: tuple[int, ...]) -> np.ndarray:
        if order in self._cache:
            return self._cache[order]
        parent = self._prefix(order[:-1])
        axis = len(order) - 1
        sig = self.sigmas[axis]
        if sig > 0:
            out = ndi.gaussian_filter1d(parent, sig, axis=axis, order=order[-1],
                                        mode="reflect", truncate=TRUNCATE, output=np.float32)
        elif order[-1] == 0:
            out = parent
        else:
            out = np.zeros_like(parent)
        out = out[(slice(None),) * axis + (self.keep[axis],)]
        self._cache[order] = out
        return out


def _pairs(ndim: int) -> list[tuple[int, int]]:
    axes = range(3 - ndim, 3)
    return [(a, b) for a in axes for b in axes if a <= b]


def _order(*axes: int) -> tuple[int, int, int]:
    o = [0, 0, 0]
    for a in axes:
        o[a] += 1
    return (o[0], o[1], o[2])


EIGEN_CHUNK = 32768
"""Voxels per chunk of :func:`symmetric_eigenvalues` (its float64 temporaries stay in the
CPU cache: ~2× faster than whole-block passes; elementwise, so the values are the same)."""


def symmetric_eigenvalues(comps: dict[tuple[int, int], np.ndarray], ndim: int,
                          out: np.ndarray | None = None) -> np.ndarray:
    """Eigenvalues (descending) of a field of symmetric 2×2 or 3×3 matrices.

    Parameters
    ----------
    comps : dict
        ``(a, b) -> array`` for a ≤ b (the upper triangle), axes numbered as in the volume.
    ndim : int
        2 (axes 1, 2) or 3.
    out : numpy.ndarray, optional
        float32 array of shape (ndim, ...) to write into.

    Returns
    -------
    numpy.ndarray
        Shape (ndim, ...) float32, largest first (closed form, computed in float64 a
        chunk of :data:`EIGEN_CHUNK` voxels at a time).
    """
    keys = _pairs(ndim)
    shape = comps[keys[0]].shape
    flat = {k: np.ravel(comps[k]) for k in keys}
    res = np.empty((ndim, *shape), np.float32) if out is None else out
    dst = res.reshape(ndim, -1)
    for s in range(0, dst.shape[1], EIGEN_CHUNK):
        part = slice(s, s + EIGEN_CHUNK)
        dst[:, part] = _eigen_closed_form({k: v[part] for k, v in flat.items()}, ndim)
    if not np.shares_memory(dst, res):  # ``out`` was not contiguous: dst is a copy
        res[...] = dst.reshape(res.shape)
    return res


def _eigen_closed_form(comps: dict[tuple[int, int], np.ndarray], ndim: int) -> np.ndarray:
    """:func:`symmetric_eigenvalues` of 1-D component arrays, (ndim, n) float64."""
    if ndim == 2:
        a = comps[(1, 1)].astype(np.float64)
        b = comps[(1, 2)].astype(np.float64)
        c = comps[(2, 2)].astype(np.float64)
        mean = 0.5 * (a + c)
        rad = np.sqrt((0.5 * (a - c)) ** 2 + b * b)
        return np.stack([mean + rad, mean - rad])
    a11, a12, a13 = (comps[k].astype(np.float64) for k in ((0, 0), (0, 1), (0, 2)))
    a22, a23, a33 = (comps[k].astype(np.float64) for k in ((1, 1), (1, 2), (2, 2)))
    # trigonometric solution of the characteristic cubic (Smith 1961)
    q = (a11 + a22 + a33) / 3.0
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13)
               + a13 * (a12 * a23 - b22 * a13))
        r = np.where(p > 0, det / (2.0 * p ** 3), 0.0)
    phi = np.arccos(np.clip(r, -1.0, 1.0)) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    return np.stack([e1, e2, e3])


def _grown(keep: Sequence[slice], margin: Sequence[int], shape: Sequence[int]
           ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """``keep`` grown by ``margin`` voxels per axis inside ``shape``, and ``keep`` within
    the grown region."""
    grown = tuple(slice(max(k.start - m, 0), min(k.stop + m, n))
                  for k, m, n in zip(keep, margin, shape, strict=True))
    inner = tuple(slice(k.start - g.start, k.stop - g.start)
                  for k, g in zip(keep, grown, strict=True))
    return grown, inner


def _structure_tensor(image: np.ndarray, s: float, config: FeatureConfig, spacing: Spacing,
                      keep: tuple[slice, ...], out: np.ndarray) -> None:
    """Structure-tensor eigenvalues at scale ``s`` of the kept region into ``out``: the
    gradients are kept on the region grown by the outer scale's radius."""
    ndim, axes, scale = config.ndim, range(3 - config.ndim, 3), _deriv_scale(spacing,
                                                                             config.mode)
    outer = axis_sigmas(STE_OUTER * s, spacing, config.mode)
    grown, inner = _grown(keep, [_radius(o) for o in outer], image.shape)
    d = _Derivatives(image, axis_sigmas(s, spacing, config.mode), grown)
    grads = {a: d.get(_order(a)) * np.float32(scale[a]) for a in axes}
    comps = {(a, b): ndi.gaussian_filter(grads[a] * grads[b], outer, mode="reflect",
                                         truncate=TRUNCATE, output=np.float32)[inner]
             for a, b in _pairs(ndim)}
    symmetric_eigenvalues(comps, ndim, out=out)


def _compute(image: np.ndarray, config: FeatureConfig, spacing: Spacing,
             keep: Sequence[slice] | None = None) -> np.ndarray:
    """Features of a whole (sub-)image, shape (F, z, y, x) float32; with ``keep`` (a
    slice per axis), the features of that region only (computed as on the whole image)."""
    ndim = config.ndim
    scale = _deriv_scale(spacing, config.mode)
    axes = list(range(3 - ndim, 3))
    kept = tuple(keep) if keep is not None else tuple(slice(0, n) for n in image.shape)
    cache: dict[float, _Derivatives] = {}

    def deriv(s: float) -> _Derivatives:
        if s not in cache:
            cache[s] = _Derivatives(image, axis_sigmas(s, spacing, config.mode), kept)
        return cache[s]

    out = np.empty((config.n_features, *(k.stop - k.start for k in kept)), np.float32)
    i = 0
    for f, s in config.features:
        d = deriv(s)
        if f == "gaussian":
            out[i] = d.get((0, 0, 0))
        elif f == "dog":
            small = deriv(DOG_RATIO * s).get((0, 0, 0))
            np.subtract(d.get((0, 0, 0)), small, out=out[i])
        elif f == "log":
            out[i] = 0
            for a in axes:
                out[i] += d.get(_order(a, a)) * np.float32(scale[a] ** 2)
        elif f == "ggm":
            acc = np.zeros(out.shape[1:], np.float32)
            for a in axes:
                g = d.get(_order(a)) * np.float32(scale[a])
                acc += g * g
            np.sqrt(acc, out=out[i])
        elif f == "hge":
            comps = {(a, b): d.get(_order(a, b)) * np.float32(scale[a] * scale[b])
                     for a, b in _pairs(ndim)}
            symmetric_eigenvalues(comps, ndim, out=out[i:i + ndim])
        elif f == "std":
            mean = d.get((0, 0, 0)).astype(np.float64)
            sq = ndi.gaussian_filter(image.astype(np.float64) ** 2, d.sigmas, mode="reflect",
                                     truncate=TRUNCATE)[kept]
            np.sqrt(np.maximum(sq - mean * mean, 0.0), out=out[i], casting="same_kind")
        elif f == "ste":
            _structure_tensor(image, s, config, spacing, kept, out[i:i + ndim])
        i += ndim if f in ("ste", "hge") else 1
        # free derivative caches of scales no later feature needs
        later = {t for _, t in config.features[config.features.index((f, s)) + 1:]}
        for key in [k for k in cache if k not in later and k not in
                    {DOG_RATIO * t for t in later}]:
            del cache[key]
    return out


def normalised(image: Any, lo: float, hi: float) -> np.ndarray:
    """The image as float32 mapped by (v − lo)/(hi − lo)."""
    arr = np.asarray(image, dtype=np.float32)
    return ((arr - np.float32(lo)) * np.float32(1.0 / (hi - lo))).astype(np.float32, copy=False)


def block_function(config: FeatureConfig, *, spacing: Spacing = (1.0, 1.0, 1.0),
                   value_range: tuple[float, float] = (0.0, 1.0)
                   ) -> Callable[[np.ndarray, Block], np.ndarray]:
    """The block function (:mod:`electrode_ct.blocks`) computing features.

    Parameters
    ----------
    config : FeatureConfig
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    value_range : (float, float)
        Normalisation range from :func:`intensity_range` (of the whole image).

    Returns
    -------
    callable
        ``func(region, block)``: the (F, bz, by, bx) float32 features of the block's
        interior from its grey region read with the halo of :func:`halo`.
    """
    def run(region: np.ndarray, block: Block) -> np.ndarray:
        return _compute(normalised(region, *value_range), config, spacing,
                        keep=block.interior)

    return run


def compute_features(image: Any, config: FeatureConfig | str | None = None, *,
                     spacing: Any = None, block_shape: Sequence[int] | None = None,
                     value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Filter-bank features of a whole image.

    Parameters
    ----------
    image : array-like
        Grey image, 2-D (y, x) or 3-D (z, y, x).
    config : FeatureConfig or str, optional
        Feature configuration or a set name / item list for :func:`parse_features`.
    spacing : float or 3 floats, optional
        Voxel size in µm (default isotropic 1).
    block_shape : 3 ints, optional
        Compute block by block (with halo) instead of at once; the result is the same.
    value_range : (float, float), optional
        Normalisation range; default from :func:`intensity_range`.

    Returns
    -------
    numpy.ndarray
        (F, z, y, x) float32 (a 2-D image gives z = 1).

    Examples
    --------
    >>> import numpy as np
    >>> f = compute_features(np.random.default_rng(0).random((8, 16, 16)), "gaussian:1,ggm:1")
    >>> f.shape, f.dtype
    ((2, 8, 16, 16), dtype('float32'))
    """
    cfg = config if isinstance(config, FeatureConfig) else parse_features(config)
    arr = image if hasattr(image, "ndim") else np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"image: expected 2-D or 3-D, got shape {tuple(arr.shape)}")
    sp = as_spacing(spacing)
    rng = value_range if value_range is not None else intensity_range(
        arr, normalise=cfg.normalise)
    bshape = tuple(block_shape) if block_shape is not None else tuple(arr.shape)
    out = np.empty((cfg.n_features, *arr.shape), np.float32)
    return map_blocks(block_function(cfg, spacing=sp, value_range=rng), arr,
                      block_shape=bshape, halo=halo(cfg, sp), out=out)
