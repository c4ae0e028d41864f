"""Blockwise rendering of particle scenes onto voxel grids.

Two passes share one kernel (the approximate surface distance of an ellipsoid, evaluated
inside each particle's bounding box only, with separable broadcasting):

1. :func:`nearest_two` at the output resolution (voxel centres): the nearest particle, its
   surface distance ``d1`` and the distance to the second-nearest surface ``d2``. These
   drive the active phase (``d1 <= delta``), the CBD at necks (``d1 + d2 <= w``) and the
   particle labels.
2. :func:`coverage_blocks`, z-slab by z-slab: the fraction of each output voxel covered
   by solid and by flaws, from ``factor``³ anti-aliased sub-samples per voxel, for the
   partial-volume grey levels and the crack truth. Only voxels near a surface or a flaw
   (a band whose width follows from the distance function's Lipschitz bound) are
   sub-sampled; all other voxels are fully in or out.

Memory is bounded by the slab size, not the volume.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from electrode_ct.synth.flaws import Flaws, flaw_candidates, flaw_reach_um, flaw_samples
from electrode_ct.synth.packing import Particles

T = TypeVar("T")
R = TypeVar("R")


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
        """The field on the grid ``zc x yc x xc`` (absolute µm), float32.

        ``cos(a + b) = cos a cos b - sin a sin b`` with ``a`` the z part and ``b`` the
        (y, x) part of each wave's phase: one matrix product for all waves.
        """
        norm = self.amplitude / np.sqrt(len(self.phases) / 2)
        a = np.outer(zc, self.wavevectors[:, 0]) + self.phases
        b = (self.wavevectors[:, 1, None, None] * yc[None, :, None]
             + self.wavevectors[:, 2, None, None] * xc[None, None, :]).reshape(len(a[0]), -1)
        left = np.concatenate([np.cos(a), np.sin(a)], axis=1).astype(np.float32)
        right = (norm * np.concatenate([np.cos(b), -np.sin(b)], axis=0)).astype(np.float32)
        return (left @ right).reshape(len(zc), len(yc), len(xc))

    def gradient(self, points: np.ndarray) -> np.ndarray:
        """Gradient of the field (per µm) at ``points`` (M, 3), absolute µm."""
        norm = self.amplitude / np.sqrt(len(self.phases) / 2)
        wv = self.wavevectors.astype(np.float32)
        ph = np.sin(points.astype(np.float32) @ wv.T + self.phases.astype(np.float32))
        return ph @ (np.float32(-norm) * wv)

    @property
    def lipschitz(self) -> float:
        """Upper bound of the gradient norm (per µm)."""
        norm = self.amplitude / np.sqrt(len(self.phases) / 2)
        return float(norm * np.linalg.norm(self.wavevectors, axis=1).sum())


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


WORKERS = 2
"""Threads used by the slab passes (numpy releases the GIL inside array operations)."""


def slab_voxels(shape: tuple[int, int, int], block_voxels: int | None = None) -> int:
    """Slab thickness (slices) for slab-by-slab passes over a volume of ``shape``.

    Default: at least 2**20 voxels and a thirty-second of the volume per slab, so the
    temporaries of the slabs in flight stay near 1 byte per volume voxel for large volumes
    while small volumes use few slabs (fewer particle/slab pairs).
    """
    nz, ny, nx = shape
    if block_voxels is None:
        block_voxels = max(1 << 20, nz * ny * nx // 32)
    return max(1, min(nz, int(block_voxels) // (ny * nx)))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None
                ) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, in order, with at most ``workers`` in flight.

    Results are consumed in order, so anything accumulated from them is deterministic.
    """
    workers = WORKERS if workers is None else max(1, int(workers))
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _scaled_forms(parts: Particles) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic forms ``Q = A^T A`` (float64) and ``r² Q`` (float32) of every particle."""
    qs = np.transpose(parts.shape_matrix, (0, 2, 1)) @ parts.shape_matrix
    return qs, (qs * (parts.radius_um**2)[:, None, None]).astype(np.float32)


def _surface_distance(q: np.ndarray, r: float, zc: np.ndarray, yc: np.ndarray,
                      xc: np.ndarray) -> np.ndarray:
    """Approximate distance (µm) to an ellipsoid surface: ``(rho - 1) * r``, float32.

    ``(r rho)^2 = x^T (r² Q) x`` with ``x`` relative to the centre (float32 coordinates,
    ``q = r² Q`` float32); the quadratic form is split into a (y, x) plane part, a
    z-linear part and a z² part so each 3-D sample costs a few in-place array passes.
    """
    yy = yc[:, None]
    xx = xc[None, :]
    plane = q[1, 1] * yy * yy + q[2, 2] * xx * xx + 2 * q[1, 2] * yy * xx
    lin = 2 * (q[0, 1] * yy + q[0, 2] * xx)
    out = zc[:, None, None] * lin[None]
    out += plane[None]
    out += (q[0, 0] * zc * zc)[:, None, None]
    np.maximum(out, 0, out=out)
    np.sqrt(out, out=out)
    out -= np.float32(r)
    return out


def _block_particles(lo: np.ndarray, hi: np.ndarray, z0: int, z1: int) -> np.ndarray:
    ok = np.all(hi > lo, axis=1) & (lo[:, 0] < z1) & (hi[:, 0] > z0)
    return np.flatnonzero(ok)


def _local(grid: Grid, parts: Particles, i: int, lo: np.ndarray, hi: np.ndarray, z0: int,
           z1: int, coords: tuple[np.ndarray, np.ndarray, np.ndarray]):
    """Slab slice and float32 centre-relative coordinates of particle ``i``'s box."""
    a0, a1 = max(lo[i, 0], z0), min(hi[i, 0], z1)
    sl = (slice(a0 - z0, a1 - z0), slice(lo[i, 1], hi[i, 1]), slice(lo[i, 2], hi[i, 2]))
    c = parts.centers[i]
    rel = ((coords[0][a0:a1] - c[0]).astype(np.float32),
           (coords[1][lo[i, 1]:hi[i, 1]] - c[1]).astype(np.float32),
           (coords[2][lo[i, 2]:hi[i, 2]] - c[2]).astype(np.float32))
    return sl, rel


def nearest_two(parts: Particles, grid: Grid, *, field: WaveField | None, margin_um: float,
                block: int | None = None, workers: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    block : int, optional
        Slab thickness in voxels (default: twice :func:`slab_voxels`).
    workers : int, optional
        Threads (default :data:`WORKERS`); slabs are independent, results identical.

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
    # twice the default slab: fewer particle/slab pairs (8 bytes per slab voxel here)
    block = min(nz, 2 * slab_voxels(grid.shape)) if block is None else int(block)
    labels = np.zeros(grid.shape, np.uint32)
    d1_all = np.empty(grid.shape, np.float16)
    d12_all = np.empty(grid.shape, np.float16)
    half = parts.extent_um + margin_um + (field.amplitude * 3 if field else 0.0)
    lo, hi = grid.sample_ranges(parts.centers, half)
    coords = (grid.coords(0), grid.coords(1), grid.coords(2))
    _, qr = _scaled_forms(parts)

    def one(z0: int) -> None:
        z1 = min(nz, z0 + block)
        d1 = np.full((z1 - z0, ny, nx), np.inf, np.float32)
        d2 = np.full_like(d1, np.inf)
        lab = labels[z0:z1]
        for i in _block_particles(lo, hi, z0, z1):
            sl, (rz, ry, rx) = _local(grid, parts, i, lo, hi, z0, z1, coords)
            # the roughness is the same for every particle at a voxel: added once below
            d = _surface_distance(qr[i], parts.radius_um[i], rz, ry, rx)
            d1v, d2v = d1[sl], d2[sl]
            np.copyto(lab[sl], np.uint32(i + 1), where=d < d1v)
            far = np.maximum(d1v, d)
            np.minimum(d1v, d, out=d1v)
            np.minimum(d2v, far, out=d2v)
        for c0 in range(z0, z1, 4) if field else ():  # a few slices at a time: small temp
            c1 = min(z1, c0 + 4)
            rough = field.evaluate(coords[0][c0:c1], coords[1], coords[2])
            d1[c0 - z0:c1 - z0] += rough
            d2[c0 - z0:c1 - z0] += rough
        d1_all[z0:z1] = d1
        d1 += d2
        d12_all[z0:z1] = d1

    for _ in ordered_map(one, range(0, nz, block), workers):
        pass
    return labels, d1_all, d12_all


def sample_offsets(spacing: tuple[float, float, float], factor: int) -> np.ndarray:
    """Offsets (µm) of the ``factor``³ sub-samples of a voxel from its centre, (S, 3)."""
    k = (np.arange(factor) + 0.5) / factor - 0.5
    g = np.stack(np.meshgrid(k, k, k, indexing="ij"), axis=-1).reshape(-1, 3)
    return g * np.asarray(spacing, float)


def _solid_samples(dc: np.ndarray, points: np.ndarray, q: np.ndarray, r: float,
                   grad: np.ndarray | None, offsets: np.ndarray, hs: float, *,
                   scale: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """Solid coverage (M, S) of the sub-samples of voxels near one particle's surface.

    The ellipsoid term is exact at every sub-sample (``r² rho_s² = r² (rho² + 2 o·Qx +
    oᵀQo)``, one matrix product); the smooth roughness field is linearised about the
    voxel centre (``grad``). ``dc`` is the voxel-centre distance minus the surface
    offset, µm. Returns ``clip(scale * coverage + bias, 0, scale)`` as float32.
    """
    n = len(points)
    qx = points @ q
    rho2 = (points * qx).sum(axis=1)
    r2 = r * r
    left = np.empty((n, 5), np.float32)
    left[:, :3] = 2 * r2 * qx
    left[:, 3] = r2 * rho2
    left[:, 4] = r2
    right = np.empty((5, len(offsets)), np.float32)
    right[:3] = offsets.T
    right[3] = 1.0
    right[4] = np.einsum("sa,ab,sb->s", offsets, q, offsets)
    t = left @ right
    np.maximum(t, 0, out=t)
    np.sqrt(t, out=t)  # r rho at every sub-sample
    k = scale / hs
    lin = np.empty((n, 4), np.float32)
    lin[:, 0] = scale * 0.5 + bias - k * (dc - r * np.sqrt(rho2))
    lin[:, 1:] = 0.0 if grad is None else -k * grad
    ones = np.empty((4, len(offsets)), np.float32)
    ones[0] = 1.0
    ones[1:] = offsets.T
    cov = lin @ ones
    t *= np.float32(k)
    cov -= t
    np.clip(cov, 0.0, scale, out=cov)
    return cov


def coverage_blocks(parts: Particles, grid: Grid, *, field: WaveField | None, delta_um: float,
                    flaws: Flaws | None, factor: int = 2, block_samples: int | None = None,
                    flaw_sums: np.ndarray | None = None, workers: int | None = None,
                    solid: bool = True) -> Iterator[tuple[int, int, np.ndarray | None,
                                                          np.ndarray]]:
    """Solid and flaw coverage of every output voxel, from ``factor``³ sub-samples.

    Sub-samples are themselves anti-aliased (linear ramp over one sub-sample spacing), so
    surfaces and sub-voxel cracks give smooth partial-volume fractions. The distance
    function of a particle changes by at most ``L |o|`` between a voxel centre and a
    sub-sample at offset ``o`` (``L = r / smallest semi-axis + roughness slope``), so a
    voxel whose centre distance ``d`` satisfies ``|d - delta| >= L |o|max + h/2`` is fully
    in (or out of) that particle; only the voxels in that band, and those near a flaw, are
    sub-sampled. Per-sub-sample coverage is kept (as uint8) while a slab is built so
    touching particles combine exactly (the maximum per sub-sample).

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
    flaws : Flaws or None
        Flaws of the scene's particles (None: no flaw coverage, all zeros).
    factor : int
        Supersampling factor per axis (1 to 4).
    block_samples : int, optional
        Sub-samples per slab (memory bound: about 2.7 bytes each for ``factor`` 2);
        default ``factor³`` times :func:`slab_voxels`.
    flaw_sums : ndarray of float64, shape (N,), optional
        Accumulates each particle's own flaw volume, in sub-samples (divide by
        ``factor**3`` for output voxels), over the whole grid.
    workers : int, optional
        Threads computing slabs ahead (default :data:`WORKERS`); slabs come out in
        order and the results do not depend on it.
    solid : bool
        Compute the solid coverage; False: flaws only (only the flawed particles are
        visited, ``solid`` is None), e.g. to know the crack truth before the phases.

    Yields
    ------
    z0, z1 : int
        Output slab ``[z0, z1)``.
    solid : ndarray of float32, shape (z1 - z0, ny, nx), or None
        Fraction of each voxel inside any particle (flaws included).
    flaw : ndarray of float32
        Fraction of each voxel inside a flaw (crack or void) of a particle.
    """
    cov = _Coverage(parts, grid, field, delta_um, flaws, int(factor), solid)
    nz, ny, nx = grid.shape
    if block_samples is None:
        bz = slab_voxels(grid.shape)
    else:
        bz = max(1, min(nz, int(block_samples) // (len(cov.offs) * ny * nx)))
    for z0, z1, cover, flaw, sums in ordered_map(lambda z: cov.slab(z, min(nz, z + bz)),
                                                 range(0, nz, bz), workers):
        if flaw_sums is not None:
            flaw_sums += sums
        yield z0, z1, cover, flaw


class _Coverage:
    """What :func:`coverage_blocks` computes once per scene; :meth:`slab` renders a slab."""

    def __init__(self, parts: Particles, grid: Grid, field: WaveField | None,
                 delta_um: float, flaws: Flaws | None, f: int, solid: bool) -> None:
        self.parts, self.grid, self.field, self.flaws, self.solid = (
            parts, grid, field, flaws, solid)
        self.offs = sample_offsets(grid.spacing, f)
        self.hs = float(np.mean(grid.spacing)) / f
        self.omax = float(np.sqrt((self.offs * self.offs).sum(axis=1)).max())
        self.qs, self.qr = _scaled_forms(parts)
        # Lipschitz bound of (rho - 1) r is r * sqrt(largest eigenvalue of Q)
        lip = parts.radius_um * np.sqrt(np.linalg.eigvalsh(self.qs)[:, -1])
        slope = field.lipschitz if field else 0.0
        self.band = (lip + slope) * self.omax + self.hs / 2 + 1e-6
        amp = field.amplitude * 3 if field else 0.0
        stretch = parts.extent_um / parts.radius_um
        half = parts.extent_um + stretch * (max(delta_um, 0.0) + amp + self.band) + self.hs
        self.lo, self.hi = grid.sample_ranges(parts.centers, half)
        self.coords = (grid.coords(0), grid.coords(1), grid.coords(2))
        self.delta = np.float32(delta_um)

    def slab(self, z0: int, z1: int
             ) -> tuple[int, int, np.ndarray | None, np.ndarray, np.ndarray]:
        """Solid coverage (None when flaws only), flaw coverage and per-particle flaw sums
        of the output slab ``[z0, z1)``."""
        n_s, sshape = len(self.offs), (z1 - z0, *self.grid.shape[1:])
        sums = np.zeros(len(self.parts))
        flaw = np.zeros(sshape, np.float32)
        todo = _block_particles(self.lo, self.hi, z0, z1)
        fine = full = rough = None
        if self.solid:
            fine = np.zeros((int(np.prod(sshape)), n_s), np.uint8)
            full = np.zeros(sshape, bool)
            if self.field:
                rough = self.field.evaluate(self.coords[0][z0:z1], self.coords[1],
                                            self.coords[2])
        else:
            todo = todo[self.flaws.active[todo]] if self.flaws is not None else todo[:0]
        for i in todo:
            box = self._box(i, z0, z1, rough)
            if box is None:
                continue
            if self.solid:
                self._solid(i, box, sshape, fine, full)
            if self.flaws is not None:
                sums[i] += self._flaw(i, box, sshape, flaw)
        if not self.solid:
            return z0, z1, None, flaw, sums
        return z0, z1, _mean_coverage(fine, full, sshape), flaw, sums

    def _box(self, i: int, z0: int, z1: int, rough: np.ndarray | None) -> _Box | None:
        """Particle ``i``'s box in the slab and its distance to the offset surface (µm)."""
        sl, rel = _local(self.grid, self.parts, i, self.lo, self.hi, z0, z1, self.coords)
        if not self.solid:  # flaws only: the box around the flaws is enough
            sl, rel = _crop(sl, rel, flaw_reach_um(self.flaws, i) + self.hs / 2 + self.omax)
            if min(len(r) for r in rel) == 0:
                return None
        d = _surface_distance(self.qr[i], self.parts.radius_um[i], *rel)
        if self.field is not None:
            d += rough[sl] if self.solid else self.field.evaluate(
                self.coords[0][z0 + sl[0].start:z0 + sl[0].stop], self.coords[1][sl[1]],
                self.coords[2][sl[2]])
        d -= self.delta
        return _Box(sl, rel, d, (sl[0].start, sl[1].start, sl[2].start))

    def _points(self, i: int, box: _Box, local: np.ndarray, sshape: tuple[int, int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        pts, flat = _gather(local, box.d.shape, box.rel, box.origin, sshape)
        grad = self.field.gradient(pts + self.parts.centers[i]) if self.field else None
        return pts, flat, grad

    def _solid(self, i: int, box: _Box, sshape: tuple[int, int, int], fine: np.ndarray,
               full: np.ndarray) -> None:
        """Mark the voxels fully inside; sub-sample the band (maximum per sub-sample)."""
        n_s, b = len(self.offs), np.float32(self.band[i])
        full[box.sl] |= box.d <= -b
        near = np.flatnonzero(np.abs(box.d) < b)
        if not len(near):
            return
        pts, flat, grad = self._points(i, box, near, sshape)
        u8 = _solid_samples(box.d.reshape(-1)[near], pts, self.qs[i], self.parts.radius_um[i],
                            grad, self.offs, self.hs, scale=255.0, bias=0.5).astype(np.uint8)
        rows_of = fine.view(f"V{n_s}").reshape(-1)  # one opaque item per voxel
        rows = rows_of[flat].view(np.uint8).reshape(-1, n_s)
        np.maximum(rows, u8, out=rows)
        rows_of[flat] = rows.view(f"V{n_s}").reshape(-1)

    def _flaw(self, i: int, box: _Box, sshape: tuple[int, int, int],
              flaw: np.ndarray) -> float:
        """Add particle ``i``'s flaw coverage to ``flaw``; its flaw volume in sub-samples."""
        cand = flaw_candidates(self.flaws, i, *box.rel, sample_um=self.hs, reach_um=self.omax)
        if cand is None:
            return 0.0
        cand &= box.d < np.float32(self.band[i])
        hit = np.flatnonzero(cand)
        if not len(hit):
            return 0.0
        pts, flat, grad = self._points(i, box, hit, sshape)
        fc = flaw_samples(self.flaws, i, pts, self.offs, self.hs)
        np.minimum(fc, _solid_samples(box.d.reshape(-1)[hit], pts, self.qs[i],
                                      self.parts.radius_um[i], grad, self.offs, self.hs),
                   out=fc)
        fl = flaw.reshape(-1)
        fl[flat] = np.maximum(fl[flat], fc.mean(axis=1))
        return float(fc.sum(dtype=np.float64))


@dataclass
class _Box:
    """A particle's box within a slab: slices, centre-relative coordinates (µm), distance
    to the offset surface (µm) and the box origin in the slab (voxels)."""

    sl: tuple[slice, slice, slice]
    rel: tuple[np.ndarray, ...]
    d: np.ndarray
    origin: tuple[int, int, int]


def _mean_coverage(fine: np.ndarray, full: np.ndarray, sshape: tuple[int, int, int]
                   ) -> np.ndarray:
    """Mean of the uint8 sub-sample coverages per voxel (1 where fully inside)."""
    n_s = fine.shape[1]
    acc = fine[:, 0].astype(np.uint16)
    for k in range(1, n_s):
        acc += fine[:, k]
    cover = acc.astype(np.float32).reshape(sshape)
    cover *= np.float32(1 / (255 * n_s))
    cover[full] = 1.0
    return cover


def _crop(sl: tuple[slice, slice, slice], rel: tuple[np.ndarray, ...], reach: float
          ) -> tuple[tuple[slice, ...], tuple[np.ndarray, ...]]:
    """Restrict a particle box (slab slices, ascending relative coordinates) to the
    samples within ``reach`` µm of the centre along every axis."""
    out_sl, out_rel = [], []
    for s, r in zip(sl, rel, strict=True):
        a, b = np.searchsorted(r, -reach), np.searchsorted(r, reach, side="right")
        out_sl.append(slice(s.start + a, s.start + b))
        out_rel.append(r[a:b])
    return tuple(out_sl), tuple(out_rel)


def _gather(local: np.ndarray, box: tuple[int, ...], rel: tuple[np.ndarray, ...],
            origin: tuple[int, int, int], sshape: tuple[int, int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Centre-relative points (M, 3), float32, and slab flat indices of box voxels."""
    iz, iy, ix = np.unravel_index(local, box)
    pts = np.stack([rel[0][iz], rel[1][iy], rel[2][ix]], axis=1)
    flat = ((iz + origin[0]) * sshape[1] + iy + origin[1]) * sshape[2] + ix + origin[2]
    return pts, flat
