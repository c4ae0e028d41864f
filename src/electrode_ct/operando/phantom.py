"""A small operando phantom: the same packing in two states, rigidly moved, with a
planted grey-level drop in "cracked" particles (exact truth for tracking tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from electrode_ct.operando.register import Rigid


@dataclass
class ShiftedSeries:
    """Phantom series with its truth.

    Attributes
    ----------
    greys : list of numpy.ndarray
        uint8 grey volumes of each state.
    ref_labels : numpy.ndarray
        Reference (state 0) particle ids.
    truth_labels : list of numpy.ndarray
        True ids of every state in its own space.
    cracked : numpy.ndarray
        Ids of the particles whose grey drops by ``drop`` after the reference.
    drop : float
        Planted mean grey-level drop (grey levels).
    transforms : list of Rigid
        True reference → state transforms.
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    phases : None
        No phase volumes: foregrounds are found by Otsu.
    """

    greys: list[np.ndarray]
    ref_labels: np.ndarray
    truth_labels: list[np.ndarray]
    cracked: np.ndarray
    drop: float
    transforms: list[Rigid]
    spacing: tuple[float, float, float]
    phases: None = None

    def truth_identity(self, result, *, min_iou: float = 0.5) -> float:
        """Percent of kept particles whose tracked region matches the true one (IoU)."""
        ids = result.kept
        if ids.size == 0:
            return float("nan")
        ok = np.ones(ids.size, dtype=bool)
        for got, truth in zip(result.labels, self.truth_labels, strict=True):
            n = int(max(got.max(), truth.max())) + 1
            inter = np.bincount(got.ravel()[(got.ravel() == truth.ravel())], minlength=n)
            a = np.bincount(got.ravel(), minlength=n)
            b = np.bincount(truth.ravel(), minlength=n)
            iou = inter[ids] / np.maximum(a[ids] + b[ids] - inter[ids], 1)
            ok &= iou >= min_iou
        return 100.0 * ok.mean()

    def cracked_subsets(self) -> pd.Series:
        """Subset per reference id: 1 cracked, 0 intact."""
        ids = np.unique(self.ref_labels[self.ref_labels > 0])
        return pd.Series(np.isin(ids, self.cracked).astype(np.int64), index=ids)


def _render(shape, centres, radii) -> np.ndarray:
    lab = np.zeros(shape, np.uint32)
    best = np.full(shape, np.inf, np.float32)
    for k, (c, r) in enumerate(zip(centres, radii, strict=True), start=1):
        lo = np.maximum(np.floor(c - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(c + r + 2).astype(int), shape)
        if np.any(hi <= lo):
            continue
        g = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d = np.sqrt(sum((gi - ci) ** 2 for gi, ci in zip(g, c, strict=True))) - r
        view = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        win = (d < 0) & (d < best[view])  # contacts split by power distance
        lab[view][win] = k
        best[view][win] = d[win]
    return lab


def shifted_series(
    *,
    shape: tuple[int, int, int] = (64, 88, 88),
    radius: tuple[float, float] = (7.0, 10.0),
    n_particles: int = 60,
    noise: float = 3.0,
    drop: float = 1.0,
    cracked_fraction: float = 0.4,
    shift_um: tuple[float, float, float] = (1.3, -2.2, 1.7),
    angle_deg: float = 1.5,
    seed: int = 0,
) -> ShiftedSeries:
    """Two states of one packing: the second rigidly moved, cracked particles darker.

    Parameters
    ----------
    shape : tuple of int
        Volume shape (z, y, x), voxel size 1 µm.
    radius : (float, float)
        Uniform range of particle radii (µm).
    n_particles : int
        Placement attempts (overlap-limited random packing).
    noise : float
        Gaussian noise σ (grey levels); pore 60, particles 170.
    drop : float
        Grey-level drop of the cracked particles in state 1.
    cracked_fraction : float
        Fraction of particles that drop.
    shift_um : tuple of float
        Translation (z, y, x) in µm of state 1.
    angle_deg : float
        Rotation about the z axis (degrees) of state 1, about the volume centre.
    seed : int
        Random seed.
    """
    rng = np.random.default_rng(seed)
    shp = np.asarray(shape, float)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(n_particles * 20):
        if len(centres) >= n_particles:
            break
        r = rng.uniform(*radius)
        c = rng.uniform(0, shp)
        if all(np.linalg.norm(c - o) > 0.85 * (r + ro) for o, ro in zip(centres, radii,
                                                                         strict=True)):
            centres.append(c)
            radii.append(r)
    cen = np.array(centres)
    sp = (1.0, 1.0, 1.0)
    identity = Rigid.identity(shape, sp)
    a = np.radians(angle_deg)
    moved = Rigid([0.0, 0.0, a, shift_um[2], shift_um[1], shift_um[0]],
                  list(identity.centre_um))
    # positions in state 1: p' = R (p − c) + c + t, in (x, y, z) order for the transform
    xyz = cen[:, ::-1]
    cz = np.asarray(identity.centre_um)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved_xyz = (xyz - cz) @ rot.T + cz + np.asarray(shift_um)[::-1]
    lab0 = _render(shape, cen, radii)
    lab1 = _render(shape, moved_xyz[:, ::-1], radii)
    ids = np.arange(1, len(cen) + 1)
    cracked = ids[rng.random(ids.size) < cracked_fraction]
    greys = []
    for i, lab in enumerate((lab0, lab1)):
        level = np.where(lab > 0, 170.0, 60.0)
        if i == 1:
            level -= drop * np.isin(lab, cracked)
        g = level + rng.normal(0.0, noise, shape)
        greys.append(np.clip(np.rint(g), 0, 255).astype(np.uint8))
    return ShiftedSeries(greys, lab0, [lab0, lab1], cracked, float(drop), [identity, moved], sp)
