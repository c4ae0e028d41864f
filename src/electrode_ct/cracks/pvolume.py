"""Integral (partial-volume) crack volume per particle, unbiased under blur.

The point-spread function moves grey level around but keeps its integral, so the volume
of a crack filled with pore is the integral of the grey-level deficit it causes, divided
by the particle's own solid-minus-pore contrast:

    V_i = sum over the particle's domain of  R(s) - (g - P) / (S_i - P)     (voxels)

- ``P`` is the pore level: the median grey of the background far (3 voxels) from every
  particle, where neither the particles' blur nor the binder at their necks reaches.
- ``R(s)`` is the relative grey level of an *intact* particle at signed layer ``s``
  (distance to its surface, rounded; 1 = outermost inside layer, 0, -1, -2 = the exterior
  shell): the mean of ``(g - P) / (S_j - P)`` over the reference particles ``j`` (those
  called intact), each by its own core level ``S_j``. It carries the edge blur, phase
  fringes and binder, so the sum is zero for an intact particle on average.
- The domain is the healed particle plus a 3-voxel exterior shell (the nearest particle's),
  so the blurred deficit of cracks that reach the surface is counted.
- ``S_i`` is the particle's solid level. A scan-wide level is not enough: shading and
  particle-to-particle grey differences give the cracked particles of one scan a mean
  level a few hundredths of the contrast off the intact ones, which the sum multiplies by
  the domain volume (5-8 times the crack volume); and the particle's own core mean is
  darkened by the crack. So ``S_i`` is fitted: ``g - P = a R(s) - b B`` over the domain,
  with ``B`` the fine-scale darkness (:func:`~electrode_ct.cracks.highpass.fine_scale`,
  ``max(-fine, 0)``: where thin cracks are, independent of smooth level changes) blurred
  by the scan's edge spread (measured on ``R``), so the crack's darkening is not taken for
  a darker particle; then ``a`` is shrunk towards the reference level by its precision
  (empirical Bayes): the fit's variance is calibrated on the reference particles (fit
  against their own core level), the prior spread is the spread of the reference
  particles' core levels. On scans where particle levels hardly vary (micro-CT phantoms)
  ``S_i`` stays at the reference level; where they do (nano-CT, 0.2-0.3 of the contrast)
  it follows the particle.

Single particles can come out slightly negative (noise); sums over particles are unbiased,
so do not clip before summing. Everything is whole-volume ``bincount`` / ``scipy.ndimage``
work, no loop over particles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from electrode_ct.volume import as_spacing

PORE_DISTANCE_VOX = 3.0
"""Background voxels at least this far (voxels of the smallest edge) from every particle
give the pore level."""

SHELL_VOX = 3
"""Exterior layers (voxels) of each particle's domain."""

CORE_LAYER = 3
"""Layers at or beyond this one are a particle's core."""

MAX_LAYER = 8
"""Deeper layers share the last profile value (a particle's core)."""

PV_COLUMNS = ("crack_volume_pv_um3", "crack_volume_fraction_pv")
"""Columns of :func:`crack_volume_pv` (after ``label``)."""


def pore_masks(dist_out: np.ndarray, *, unit: float = 1.0,
               far_vox: float = PORE_DISTANCE_VOX) -> list[np.ndarray]:
    """The candidate masks of :func:`pore_level`, in the order they are tried: background
    at least ``far_vox``, ``far_vox / 2`` and one voxel from every particle, then any
    background voxel."""
    cuts = (far_vox, far_vox / 2, 1.0)
    return [dist_out >= f * unit for f in cuts] + [dist_out > 0]


def pick_pore_mask(counts: list[int]) -> int:
    """Which of the :func:`pore_masks` gives the pore level, from their voxel counts: the
    first of the three distance masks with at least 1000 voxels, else any background
    (-1 when there is none)."""
    for k, n in enumerate(counts[:3]):
        if n >= 1000:
            return k
    return 3 if counts[3] > 0 else -1


def pore_level(grey: np.ndarray, dist_out: np.ndarray, *, unit: float = 1.0,
               far_vox: float = PORE_DISTANCE_VOX) -> float:
    """Median grey level of the background far from every particle.

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume.
    dist_out : numpy.ndarray
        Distance (µm) of each background voxel to the nearest particle voxel (0 inside).
    unit : float
        Smallest voxel edge (µm).
    far_vox : float
        Distance threshold in voxels; halved, then one voxel, while fewer than 1000
        voxels qualify.

    Returns
    -------
    float
        Grey level (NaN when the volume has no background).
    """
    masks = pore_masks(dist_out, unit=unit, far_vox=far_vox)
    k = pick_pore_mask([int(np.count_nonzero(m)) for m in masks])
    return float(np.median(grey[masks[k]])) if k >= 0 else float("nan")


def edge_sigma(profile: np.ndarray, layers: np.ndarray) -> float:
    """Edge spread (Gaussian σ, in layers) of a relative radial profile.

    Half the distance between the layers where the profile crosses 0.159 and 0.841 (the
    ±1σ points of a blurred step), interpolated on its running maximum.

    Parameters
    ----------
    profile : numpy.ndarray
        Relative grey level per signed layer (0 outside, 1 in the core).
    layers : numpy.ndarray
        Signed layer of each profile value (increasing).

    Returns
    -------
    float
        σ in layers, clipped to 0.5-4 (1.2 when the profile does not rise).
    """
    env = np.maximum.accumulate(np.nan_to_num(profile, nan=0.0))
    if not env[-1] > env[0] + 0.5:
        return 1.2
    eps = 1e-9 * np.arange(len(env))  # strictly increasing for interp
    lo, hi = np.interp([0.159, 0.841], env + eps, layers.astype(float))
    return float(np.clip((hi - lo) / 2, 0.5, 4.0))


def _domains(healed: np.ndarray, sp: tuple[float, float, float]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each voxel's particle (healed labels grown ``SHELL_VOX`` voxels into the background),
    its signed layer (1 = outermost inside, 0, -1, ... outside) and the background's
    distance to the particles (µm)."""
    import edt
    from scipy import ndimage as ndi

    unit = min(sp)
    lab = np.ascontiguousarray(healed)
    din = edt.edt(lab, anisotropy=sp, black_border=False, parallel=1)
    dout = edt.edt(np.ascontiguousarray(lab == 0), anisotropy=sp, black_border=False,
                   parallel=1)
    layer = np.where(lab > 0, np.floor(din / unit + 0.5), 1 - np.floor(dout / unit + 0.5))
    del din
    grown = lab
    fp = ndi.generate_binary_structure(3, 3)
    for _ in range(SHELL_VOX):
        grown = np.where(grown == 0, ndi.grey_dilation(grown, footprint=fp), grown)
    return grown, layer.astype(np.int16), dout


def _reference_ids(healed: np.ndarray, ids: np.ndarray,
                   reference: np.ndarray | None) -> np.ndarray:
    """The intact reference particles present in ``healed`` (default: every label not in
    ``ids``; ``ids`` themselves when none is left)."""
    all_ids = np.unique(healed[healed > 0]).astype(np.int64)
    if reference is None:
        reference = np.setdiff1d(all_ids, ids)
    reference = np.intersect1d(np.asarray(reference, np.int64), all_ids)
    return reference if reference.size else np.intersect1d(ids, all_ids)


def _intact_profile(s: np.ndarray, r: np.ndarray, y: np.ndarray, is_ref: np.ndarray,
                    core_mean: np.ndarray, a_ref: float) -> tuple[np.ndarray, float]:
    """The intact relative profile by signed layer (each reference particle by its own
    level) at every domain voxel, and the edge spread (voxels) it shows."""
    smin = 1 - SHELL_VOX
    sbin = np.clip(s, smin, MAX_LAYER) - smin
    nb = MAX_LAYER - smin + 1
    own = np.where(is_ref & (core_mean > 0.05 * a_ref), core_mean, a_ref)
    in_ref = is_ref[r]
    cnt = np.bincount(sbin[in_ref], minlength=nb)
    tot = np.bincount(sbin[in_ref], weights=(y / own[r])[in_ref], minlength=nb)
    prof = np.where(cnt > 0, tot / np.maximum(cnt, 1), 1.0)
    prof[CORE_LAYER - smin:] = np.where(cnt[CORE_LAYER - smin:] > 0,
                                        prof[CORE_LAYER - smin:], 1.0)
    sigma = edge_sigma(prof[:CORE_LAYER - smin + 2], np.arange(smin, CORE_LAYER + 2))
    return prof[sbin], sigma


def _fit(per: Callable[..., np.ndarray], r: np.ndarray, x1: np.ndarray, x2: np.ndarray,
         y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per particle least squares y ≈ a·x1 − b·x2: the level ``a`` and its nominal
    variance (inf where the two regressors are degenerate)."""
    s11, s12, s22 = per(x1 * x1), per(x1 * x2), per(x2 * x2)
    t1, t2 = per(x1 * y), per(x2 * y)
    det = s11 * s22 - s12 * s12
    ok = det > 1e-9 * np.maximum(s11 * s22, 1e-30)
    safe = np.where(ok, det, 1.0)
    a = np.where(ok, (t1 * s22 - t2 * s12) / safe, t1 / np.maximum(s11, 1e-30))
    b = np.where(ok, (s11 * t2 - s12 * t1) / safe, 0.0)
    resid = per((y - a[r] * x1 + b[r] * x2) ** 2) / np.maximum(per() - 2, 1)
    return a, np.where(ok, resid * s22 / safe, np.inf)


def _shrunk_levels(a: np.ndarray, var_nom: np.ndarray, is_ref: np.ndarray,
                   core_mean: np.ndarray, n_core: np.ndarray, a_ref: float) -> np.ndarray:
    """The fitted levels, their variance calibrated on the reference particles, shrunk
    towards the reference level (NaN where implausibly dark)."""
    good = is_ref & np.isfinite(var_nom) & (var_nom > 0) & (n_core > 0)
    k_cal = 1.0
    if good.sum() >= 5:
        k_cal = max(float(np.median((a[good] - core_mean[good]) ** 2 / var_nom[good]))
                    / 0.455, 1e-3)  # 0.455: median of chi-square(1)
    lv = core_mean[is_ref]
    tau2 = max((1.4826 * float(np.median(np.abs(lv - np.median(lv))))) ** 2,
               (1e-3 * a_ref) ** 2)
    w_fit = np.where(np.isfinite(var_nom), 1.0 / np.maximum(k_cal * var_nom, 1e-30), 0.0)
    level = (w_fit * a + a_ref / tau2) / (w_fit + 1.0 / tau2)
    return np.where(level > 0.05 * a_ref, level, np.nan)


def crack_volume_pv(grey: np.ndarray, healed: np.ndarray, ids: np.ndarray, *,
                    reference: np.ndarray | None = None,
                    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
                    fine: np.ndarray | None = None,
                    pore: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Integral crack volume of the particles ``ids`` (see the module docstring).

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x); pores dark, particles bright.
    healed : numpy.ndarray
        Healed particle labels (cracks filled), same shape.
    ids : numpy.ndarray
        Particles to measure.
    reference : numpy.ndarray, optional
        Particles taken as intact (their mean profile is the no-crack expectation);
        default: every label of ``healed`` not in ``ids``, or ``ids`` when none is left.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    fine : numpy.ndarray, optional
        :func:`~electrode_ct.cracks.highpass.fine_scale` of ``grey`` (computed if not
        given).
    pore : float, optional
        The pore level (:func:`pore_level` of the whole scan; computed when not given, the
        block engine merges it from blocks).

    Returns
    -------
    table : pandas.DataFrame
        ``label``, ``crack_volume_pv_um3`` (µm³; may be slightly negative for a particle,
        unbiased in sums), ``crack_volume_fraction_pv`` (of the healed particle volume),
        one row per id in ``ids`` order (NaN when no level could be measured).
    levels : dict
        ``pore`` and ``solid`` (reference) grey levels, ``edge_sigma_vox`` (edge spread
        in voxels of the smallest edge), ``n_reference``.
    """
    from scipy import ndimage as ndi

    from electrode_ct.cracks.highpass import fine_scale

    sp = as_spacing(spacing, name="spacing")
    unit = min(sp)
    ids = np.asarray(ids, np.int64)
    reference = _reference_ids(healed, ids, reference)
    rows_ids = np.union1d(ids, reference)
    n = len(rows_ids)
    nan_out = pd.DataFrame({"label": ids.astype(np.uint32),
                            **{c: np.full(len(ids), np.nan) for c in PV_COLUMNS}})
    if n == 0:
        return nan_out, {"pore": float("nan"), "solid": float("nan"),
                         "edge_sigma_vox": float("nan"), "n_reference": 0}
    g = np.asarray(grey, np.float32)
    grown, layer, dout = _domains(healed, sp)
    pore = pore_level(g, dout, unit=unit) if pore is None else float(pore)
    del dout
    lut = np.full(int(max(grown.max(), rows_ids.max())) + 1, -1, np.int64)
    lut[rows_ids] = np.arange(n)
    row = lut[grown]
    dom = (row >= 0) & (layer > -SHELL_VOX)
    idx = np.flatnonzero(dom.ravel())
    r = row.ravel()[idx]
    s = layer.ravel()[idx].astype(np.int64)
    y = g.ravel()[idx].astype(np.float64) - pore
    del row, layer, dom

    def per(w=None, m=None):
        if m is None:
            return np.bincount(r, weights=w, minlength=n)
        return np.bincount(r[m], weights=None if w is None else w[m], minlength=n)

    is_ref = np.isin(rows_ids, reference)
    core = s >= CORE_LAYER
    n_core = per(m=core)
    inside = s >= 1
    core_mean = np.where(n_core > 0, per(y, core) / np.maximum(n_core, 1),
                         per(y, inside) / np.maximum(per(m=inside), 1))
    w_ref = np.where(is_ref, np.maximum(n_core, 1), 0)
    a_ref = float((core_mean * w_ref).sum() / w_ref.sum())
    if not (np.isfinite(pore) and a_ref > 0):
        return nan_out, {"pore": pore, "solid": float("nan"), "edge_sigma_vox": float("nan"),
                         "n_reference": int(is_ref.sum())}
    x1, sigma = _intact_profile(s, r, y, is_ref, core_mean, a_ref)
    # fine-scale darkness, blurred by the edge spread: where the crack darkens
    f = fine_scale(grey, healed) if fine is None else fine
    dark = np.where(healed > 0, np.maximum(-np.asarray(f, np.float32), 0), 0).astype(
        np.float32)
    x2 = ndi.gaussian_filter(dark, [sigma * unit / a for a in sp]).ravel()[idx].astype(
        np.float64)
    del dark
    a, var_nom = _fit(per, r, x1, x2, y)
    level = _shrunk_levels(a, var_nom, is_ref, core_mean, n_core, a_ref)
    vol = float(np.prod(sp))
    crack = per(x1 - y / level[r]) * vol
    n_in = per(m=inside) * vol
    pos = lut[ids]
    frac = np.where(n_in[pos] > 0, crack[pos] / np.maximum(n_in[pos], 1e-30), np.nan)
    table = pd.DataFrame({"label": ids.astype(np.uint32), "crack_volume_pv_um3": crack[pos],
                          "crack_volume_fraction_pv": frac})
    return table, {"pore": pore, "solid": pore + a_ref, "edge_sigma_vox": sigma,
                   "n_reference": int(is_ref.sum())}
