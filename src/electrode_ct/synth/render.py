"""Blockwise rendering of particle scenes onto voxel grids.

Two passes share one kernel (the approximate surface distance of an ellipsoid, evaluated
inside each particle's bounding box only, with separable broadcasting):

1. :func:`nearest_two` at the output resolution (voxel centres): the nearest particle, its
   surface distance ``d1`` and the distance to the second-nearest surface ``d2``. These
   drive the active phase (``d1 <= delta``), the CBD at necks (``d1 + d2 <= w``) and the
   particle labels.
2. :func:`coverage_blocks` at ``factor``-times finer sampling, z-slab by z-slab: the
   fraction of each output voxel covered by solid and by flaws (anti-aliased at the fine
   spacing), for the partial-volume grey levels and the crack truth.

Memory is bounded by the slab size, not the volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from electrode_ct.synth.flaws import Flaws, flaw_coverage
from electrode_ct.synth.packing import Particles


@dataclass(frozen=True)
class Grid:
    """An output voxel grid: ``shape`` (z, y, x) and ``spacing`` in µm.

    Voxel ``k`` along an axis has its centre at ``k * spacing`` µm.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def coords(self, axis: int, factor: int = 1) -> np.ndarray:
        """Sample positions (µm) along ``axis`` at ``factor`` samples per voxel."""
        k = np.arange(self.shape[axis] * factor)
        return ((k + 0.5) / factor - 0.5) * self.spacing[axis]

    def sample_ranges(self, centers: np.ndarray, half_um: np.ndarray,
                      factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Index ranges ``[lo, hi)`` of the samples within ``half_um`` of each centre."""
        h = np.asarray(self.spacing, float)
        n = np.asarray(self.shape, int) * factor
        lo = np.ceil(((centers - half_um[:, None]) / h + 0.5) * factor - 0.5).astype(np.int64)
        hi = np.floor(((centers + half_um[:, None]) / h + 0.5) * factor - 0.5).astype(np.int64) + 1
        return np.clip(lo, 0, n), np.clip(hi, 0, n)


@dataclass(frozen=True)
class WaveField:
    """A smooth random field: a sum of plane waves, in µm (surface roughness, shading).

    Attributes
    ----------
    amplitude : float
        Overall amplitude (same unit as the field).
    wavevectors : ndarray, shape (K, 3)
        Wave vectors (z, y, x) in rad/µm.
    phases : ndarray, shape (K,)
        Phases in rad.
    """

    amplitude: float
    wavevectors: np.ndarray
    phases: np.ndarray

    def evaluate(self, zc: np.ndarray, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
        """The field on the grid ``zc x yc x xc`` (absolute µm), float32."""
        out = np.zeros((len(zc), len(yc), len(xc)), np.float32)
        norm = self.amplitude / np.sqrt(len(self.phases) / 2)
        for q, ph in zip(self.wavevectors, self.phases, strict=True):
            a = q[0] * zc + ph
            b = q[1] * yc[:, None] + q[2] * xc[None, :]
            out += (norm * np.cos(a)).astype(np.float32)[:, None, None] * np.cos(b).astype(
                np.float32)[None]
            out -= (norm * np.sin(a)).astype(np.float32)[:, None, None] * np.sin(b).astype(
                np.float32)[None]
        return out


def wave_field(rng: np.random.Generator, *, amplitude: float, wavelength_um: float,
               modes: int = 4) -> WaveField | None:
    """A random :class:`WaveField` (None when ``amplitude`` is 0).

    Wave directions are uniform on the sphere, wavelengths within ±30 % of
    ``wavelength_um``; the field's standard deviation is about ``amplitude``.
    """
    if amplitude <= 0:
        return None
    d = rng.normal(size=(modes, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    lam = wavelength_um * rng.uniform(0.7, 1.3, modes)
    return WaveField(float(amplitude), d * (2 * np.pi / lam)[:, None],
                     rng.uniform(0, 2 * np.pi, modes))


def _surface_distance(q: np.ndarray, r: float, zc: np.ndarray, yc: np.ndarray,
                      xc: np.ndarray) -> np.ndarray:
    """Approximate distance (µm) to an ellipsoid surface: ``(rho - 1) * r``, float32.

    ``rho^2 = x^T Q x`` with ``Q = A^T A`` and ``x`` relative to the centre; the quadratic
    form is split into a (y, x) plane part, a z-linear part and a z^2 part so each 3-D
    sample costs a few array passes.
    """
    yy = yc[:, None]
    xx = xc[None, :]
    plane = (q[1, 1] * yy * yy + q[2, 2] * xx * xx + 2 * q[1, 2] * yy * xx).astype(np.float32)
    lin = (2 * (q[0, 1] * yy + q[0, 2] * xx)).astype(np.float32)
    out = zc.astype(np.float32)[:, None, None] * lin[None]
    out += plane[None]
    out += (q[0, 0] * zc * zc).astype(np.float32)[:, None, None]
    np.maximum(out, 0, out=out)
    np.sqrt(out, out=out)
    out -= 1.0
    out *= r
    return out


def _block_particles(lo: np.ndarray, hi: np.ndarray, z0: int, z1: int) -> np.ndarray:
    ok = np.all(hi > lo, axis=1) & (lo[:, 0] < z1) & (hi[:, 0] > z0)
    return np.flatnonzero(ok)


def nearest_two(parts: Particles, grid: Grid, *, field: WaveField | None, margin_um: float,
                block: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest and second-nearest particle surfaces at every voxel centre.

    Parameters
    ----------
    parts : Particles
        The scene.
    grid : Grid
        Output grid.
    field : WaveField or None
        Surface roughness added to every distance (µm).
    margin_um : float
        How far outside a particle distances are evaluated; beyond it they are +inf.
    block : int
        Slab thickness in voxels.

    Returns
    -------
    labels : ndarray of uint32
        Index + 1 of the nearest particle (0 where none within the margin).
    d1 : ndarray of float16
        Distance to the nearest surface, µm (negative inside; +inf beyond the margin).
    d12 : ndarray of float16
        ``d1 + d2`` (the neck score for the carbon-binder domain), µm.
    """
    nz, ny, nx = grid.shape
    labels = np.zeros(grid.shape, np.uint32)
    d1_all = np.empty(grid.shape, np.float16)
    d12_all = np.empty(grid.shape, np.float16)
    half = parts.extent_um + margin_um + (field.amplitude * 3 if field else 0.0)
    lo, hi = grid.sample_ranges(parts.centers, half)
    cz, cy, cx = grid.coords(0), grid.coords(1), grid.coords(2)
    qs = np.transpose(parts.shape_matrix, (0, 2, 1)) @ parts.shape_matrix
    for z0 in range(0, nz, block):
        z1 = min(nz, z0 + block)
        d1 = np.full((z1 - z0, ny, nx), np.inf, np.float32)
        d2 = np.full_like(d1, np.inf)
        lab = labels[z0:z1]
        rough = field.evaluate(cz[z0:z1], cy, cx) if field else None
        for i in _block_particles(lo, hi, z0, z1):
            a0, a1 = max(lo[i, 0], z0), min(hi[i, 0], z1)
            sl = (slice(a0 - z0, a1 - z0), slice(lo[i, 1], hi[i, 1]), slice(lo[i, 2], hi[i, 2]))
            c = parts.centers[i]
            d = _surface_distance(qs[i], parts.radius_um[i], cz[a0:a1] - c[0],
                                  cy[lo[i, 1]:hi[i, 1]] - c[1], cx[lo[i, 2]:hi[i, 2]] - c[2])
            if rough is not None:
                d += rough[sl]
            d1v, d2v = d1[sl], d2[sl]
            np.copyto(lab[sl], np.uint32(i + 1), where=d < d1v)
            np.minimum(d2v, np.maximum(d1v, d), out=d2v)
            np.minimum(d1v, d, out=d1v)
        d1_all[z0:z1] = d1
        d1 += d2
        d12_all[z0:z1] = d1
    return labels, d1_all, d12_all


def coverage_blocks(parts: Particles, grid: Grid, *, field: WaveField | None, delta_um: float,
                    flaws: Flaws, factor: int = 2,
                    block_samples: int = 1 << 24,
                    flaw_sums: np.ndarray | None = None) -> Iterator[tuple[int, int, np.ndarray,
                                                                    np.ndarray]]:
    """Solid and flaw coverage of every output voxel, from ``factor``³ sub-samples.

    Sub-samples are themselves anti-aliased (linear ramp over one sub-sample spacing), so
    surfaces and sub-voxel cracks give smooth partial-volume fractions.

    Parameters
    ----------
    parts : Particles
        The scene.
    grid : Grid
        Output grid.
    field : WaveField or None
        Surface roughness (µm), the same as in :func:`nearest_two`.
    delta_um : float
        Global surface offset: a sample is solid where ``d1 <= delta_um``.
    flaws : Flaws
        Flaws of the scene's particles.
    factor : int
        Supersampling factor per axis (2 or 4).
    block_samples : int
        Fine samples per slab (memory bound: about 12 bytes each).
    flaw_sums : ndarray of float64, shape (N,), optional
        Accumulates each particle's own flaw volume, in fine samples (divide by
        ``factor**3`` for output voxels), over the whole grid.

    Yields
    ------
    z0, z1 : int
        Output slab ``[z0, z1)``.
    solid : ndarray of float32, shape (z1 - z0, ny, nx)
        Fraction of each voxel inside any particle (flaws included).
    flaw : ndarray of float32
        Fraction of each voxel inside a flaw (crack or void) of a particle.
    """
    nz, ny, nx = grid.shape
    f = int(factor)
    hs = float(np.mean(grid.spacing)) / f
    half = parts.extent_um + max(delta_um, 0.0) + 2 * hs + (field.amplitude * 3 if field else 0)
    lo, hi = grid.sample_ranges(parts.centers, half, f)
    cz, cy, cx = grid.coords(0, f), grid.coords(1, f), grid.coords(2, f)
    qs = np.transpose(parts.shape_matrix, (0, 2, 1)) @ parts.shape_matrix
    bz = max(1, int(block_samples) // (f**3 * ny * nx))
    for o0 in range(0, nz, bz):
        o1 = min(nz, o0 + bz)
        z0, z1 = o0 * f, o1 * f
        solid = np.zeros((z1 - z0, ny * f, nx * f), np.float32)
        flaw = np.zeros_like(solid)
        rough = field.evaluate(cz[z0:z1], cy, cx) if field else None
        for i in _block_particles(lo, hi, z0, z1):
            a0, a1 = max(lo[i, 0], z0), min(hi[i, 0], z1)
            sl = (slice(a0 - z0, a1 - z0), slice(lo[i, 1], hi[i, 1]), slice(lo[i, 2], hi[i, 2]))
            c = parts.centers[i]
            rz = cz[a0:a1] - c[0]
            ry, rx = cy[lo[i, 1]:hi[i, 1]] - c[1], cx[lo[i, 2]:hi[i, 2]] - c[2]
            s = _surface_distance(qs[i], parts.radius_um[i], rz, ry, rx)
            if rough is not None:
                s += rough[sl]
            # coverage = clip(0.5 - (d - delta) / hs, 0, 1)
            s -= delta_um
            s *= -1.0 / hs
            s += 0.5
            np.clip(s, 0.0, 1.0, out=s)
            np.maximum(solid[sl], s, out=solid[sl])
            fc = flaw_coverage(flaws, i, rz, ry, rx, hs)
            if fc is not None:
                np.minimum(fc, s, out=fc)
                if flaw_sums is not None:
                    flaw_sums[i] += float(fc.sum(dtype=np.float64))
                np.maximum(flaw[sl], fc, out=flaw[sl])
        yield o0, o1, _downsample(solid, f), _downsample(flaw, f)


def _downsample(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return a
    z, y, x = a.shape
    return a.reshape(z // f, f, y // f, f, x // f, f).mean(axis=(1, 3, 5), dtype=np.float32)
