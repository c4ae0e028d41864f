"""Memory-lean tortuosity solve: float32 finite volumes, geometric multigrid, CG.

The same finite-volume system as :mod:`electrode_ct.metrics.tortuosity` (7-point links
between face-neighbouring conducting voxels, conductance A/d per link, 2·A/d to the fixed
faces), built and solved with float32 numbers and int32 indices only:

- Operator: on the voxels, matrix-free (:class:`~electrode_ct.metrics._stencil.MaskLaplacian`:
  applied from the conducting mask a slab of planes at a time, only the float32
  diagonal stored); on the coarse levels, the red-black coupling block B (n_red ×
  n_black, float32 CSR, each link stored once, filled directly from the cell index
  volume) and the float32 diagonal (:class:`~electrode_ct.metrics._amg.RedBlackLaplacian`).
- Preconditioner: one symmetric V-cycle of a geometric multigrid. A coarse cell is a
  2 × 2 × 2 block of the finer grid; it is an unknown when any of its fine cells is; the
  conductance of a coarse link is the sum of the fine link conductances crossing the
  block face (the Galerkin operator of the 0/1 prolongation, again a 7-point stencil on a
  grid, so every level is built by the same code from three face-conductance arrays).
  Smoothing: red-black Gauss-Seidel, forward before and backward after the coarse
  correction, scaled by :data:`CORRECTION`; below the finest level a W-cycle (each coarse
  problem is approximated by two cycles: 1/8 of the work per level, so ~1/3 more in all);
  the coarsest level (≤ ``coarse_size`` unknowns) is solved by sparse LU.
- Outer iteration: preconditioned conjugate gradients on float32 vectors, every dot
  product and norm accumulated in float64 (chunked, no BLAS: the result does not depend
  on the thread count).

Memory: no per-link or per-voxel table at the finest level (the mask, the diagonal and
the CG vectors); the finest-to-coarse transfers sum and copy dense 2 × 2 × 2 blocks of a
slab (no aggregate table); every other product, sweep and CG update works in place or
a chunk at a time (scipy's accumulating CSR/CSC kernels,
:func:`~electrode_ct.metrics._amg.add_product`); the preconditioner writes into the CG's
product vector; the refinement holds the solution as two float32 vectors and forms the
float64 residual a slab at a time. Peak (measured, docs/scale.md): ~36 bytes per
conducting voxel over the input (psutil RSS), set-up and refinement included (65 with a
CSR finest level, 85–101 before the in-place kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from electrode_ct.metrics._amg import RedBlackLaplacian, add_product
from electrode_ct.metrics._stencil import (
    BLACK,
    RED,
    Layout,
    MaskLaplacian,
    pair_sum,
    prolong_add,
    restrict,
)

F32 = np.float32
CHUNK = 1 << 20
"""Elements per chunk of the float64-accumulated dot products."""

CORRECTION = 1.8
"""Scale of the coarse-grid correction (over-correction compensates the 0/1 prolongation's
too-weak coarse correction; tuned on a Gaussian random medium at 128³: 38 → 15 CG
iterations with the W-cycle, one sweep)."""

SWEEPS = 2
"""Red-black Gauss-Seidel sweeps before and after each coarse correction (checked on the
electrode phantom at 128³: 43 iterations with one sweep, 27 with two, 21 with three)."""

FLOAT32_FLOOR = 1e-5
"""Relative residual below which float32 conjugate gradients are not asked to go; the
float64 residual then drives up to :data:`REFINEMENTS` correction solves."""
REFINEMENTS = 3

Face = Callable[[int], tuple[np.ndarray, float]]
"""``face(axis) -> (conductance or bool link array between neighbours along axis, scale)``."""


@dataclass
class _Grid:
    """One multigrid level as a grid: conducting cells, link conductances, boundary terms."""

    cond: np.ndarray
    face: Face
    inlet: np.ndarray
    outlet: np.ndarray
    flow: int


@dataclass
class _Level:
    op: RedBlackLaplacian
    agg: np.ndarray | None = None  # fine unknown -> coarse unknown (int32)
    n_coarse: int = 0
    coarse: Layout | None = None  # the next level's cells (matrix-free transfers)


def _itype(n: int) -> type:
    return np.int32 if n < 2**31 - 1 else np.int64


def number_cells(cond: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Index volume of the conducting cells (−1 elsewhere), red ((z+y+x) even) first.

    Returns the index volume, the number of unknowns and the number of red unknowns.
    Within each colour the cells are numbered in raster order.
    """
    s = cond.shape
    parity = ((np.arange(s[0]) & 1)[:, None, None] ^ (np.arange(s[1]) & 1)[None, :, None]
              ^ (np.arange(s[2]) & 1)[None, None, :]).astype(bool)
    n_red = int(np.count_nonzero(cond & ~parity))
    n = int(np.count_nonzero(cond))
    itype = _itype(n)
    idx = np.full(s, -1, dtype=itype)
    idx[cond & ~parity] = np.arange(n_red, dtype=itype)
    idx[cond & parity] = np.arange(n_red, n, dtype=itype)
    return idx, n, n_red


def _sides(idx: np.ndarray, ax: int) -> tuple[np.ndarray, np.ndarray]:
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[ax] = slice(0, -1)
    hi[ax] = slice(1, None)
    return idx[tuple(lo)], idx[tuple(hi)]


def _red_links(idx: np.ndarray, n_red: int, face: Face):
    """Yield (red index, black index − n_red, conductance) of every link, per axis and side."""
    for ax in range(3):
        f, scale = face(ax)
        lo, hi = _sides(idx, ax)
        present = f if f.dtype == bool else f > 0
        for red, black in ((lo, hi), (hi, lo)):
            sel = present & (red < n_red)
            g = f[sel].astype(F32) * F32(scale)
            yield red[sel], black[sel] - n_red, g


def coupling(idx: np.ndarray, n: int, n_red: int, face: Face) -> sp.csr_matrix:
    """Red-black coupling block B (float32 CSR, entries −g) filled without triplets."""
    counts = np.zeros(n_red, np.int32)
    for r, _, _ in _red_links(idx, n_red, face):
        counts[r] += 1  # a red cell has at most one link per axis and side
    indptr = np.zeros(n_red + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    itype = _itype(max(int(indptr[-1]), n))
    indptr = indptr.astype(itype)
    indices = np.empty(int(indptr[-1]), itype)
    data = np.empty(int(indptr[-1]), F32)
    cursor = indptr[:-1].copy()
    for r, c, g in _red_links(idx, n_red, face):
        at = cursor[r]
        indices[at] = c
        data[at] = -g
        cursor[r] += 1
    del cursor
    return sp.csr_matrix((data, indices, indptr), shape=(n_red, n - n_red))


def _layer(idx: np.ndarray, ax: int, k: int) -> np.ndarray:
    return np.take(idx, k, axis=ax)


def operator(grid: _Grid, idx: np.ndarray, n: int, n_red: int) -> RedBlackLaplacian:
    """The level's operator: B and the diagonal (links + fixed-face conductances)."""
    B = coupling(idx, n, n_red, grid.face)
    diag = np.empty(n, F32)
    diag[:n_red] = -(B @ np.ones(n - n_red, F32))
    diag[n_red:] = -(B.T @ np.ones(n_red, F32))
    for k, g in ((0, grid.inlet), (idx.shape[grid.flow] - 1, grid.outlet)):
        layer = _layer(idx, grid.flow, k)
        diag[layer[layer >= 0]] += g[layer >= 0]
    op = RedBlackLaplacian(B, diag)
    op.dtype = np.dtype(F32)
    return op


def coarsen(grid: _Grid) -> _Grid:
    """The 2 × 2 × 2-block coarse grid of ``grid`` (Galerkin conductances, float32)."""
    c = grid.cond
    cond = pair_sum(c.astype(np.uint8), (0, 1, 2)) > 0
    faces = []
    for ax in range(3):
        f, scale = grid.face(ax)
        odd = [slice(None)] * 3
        odd[ax] = slice(1, None, 2)  # fine links 2C+1 -> 2C+2 cross coarse faces
        crossing = f[tuple(odd)].astype(F32)
        del f
        faces.append(pair_sum(crossing, tuple(a for a in range(3) if a != ax)) * F32(scale))
    other = tuple(range(2))
    return _Grid(cond=cond, face=lambda ax: (faces[ax], 1.0),
                 inlet=pair_sum(grid.inlet, other), outlet=pair_sum(grid.outlet, other),
                 flow=grid.flow)


def aggregates(idx: np.ndarray, cidx: np.ndarray, n: int) -> np.ndarray:
    """Coarse unknown of every fine unknown (the 2 × 2 × 2 block holding it)."""
    agg = np.empty(n, cidx.dtype)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                sub = idx[dz::2, dy::2, dx::2]
                m = sub >= 0
                agg[sub[m]] = cidx[: sub.shape[0], : sub.shape[1], : sub.shape[2]][m]
    return agg


class GeometricMG:
    """Symmetric V-cycle of the geometric multigrid (see the module docstring).

    Parameters
    ----------
    grid : _Grid
        The finest level.
    op : MaskLaplacian
        Its matrix-free operator.
    coarse_size : int
        Unknowns at or below which a level is solved by sparse LU.
    """

    def __init__(self, grid: _Grid, op: MaskLaplacian, *, coarse_size: int = 4000) -> None:
        self.levels: list[_Level] = [_Level(op)]
        idx = None
        while op.n > coarse_size and max(grid.cond.shape) > 2:
            grid = coarsen(grid)
            cidx, n_c, n_red_c = number_cells(grid.cond)
            lev = self.levels[-1]
            if idx is None:  # from the voxels: dense block transfers, no aggregate table
                lev.coarse = Layout(grid.cond)
            else:  # between coarse levels: aggregates from the two index volumes
                lev.agg = aggregates(idx, cidx, op.n)
            lev.n_coarse = n_c
            idx = cidx
            op = operator(grid, idx, n_c, n_red_c)
            self.levels.append(_Level(op))
        if idx is None:  # the finest level is the coarsest: its matrix for the LU
            op = operator(grid, *number_cells(grid.cond))
        self._lu = splu(op.tocsr().astype(np.float64).tocsc())

    @property
    def n_levels(self) -> int:
        """Number of levels, the finest included."""
        return len(self.levels)

    def __call__(self, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One V-cycle applied to ``b`` (zero initial guess), float32, into ``out``
        when given (any of its values are overwritten)."""
        return self._cycle(0, b, out)

    def _cycle(self, k: int, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if k == len(self.levels) - 1:
            return self._lu.solve(b.astype(np.float64)).astype(F32)
        lev = self.levels[k]
        op = lev.op
        x = op.smooth(None, b, True, out=out)
        for _ in range(SWEEPS - 1):
            x = op.smooth(x, b, True)
        if lev.coarse is not None:
            ec = self._coarse(k + 1, restrict(op, x, b, lev.coarse))
            ec *= F32(CORRECTION)
            prolong_add(op, lev.coarse, ec, x)
        else:
            ec = self._coarse(k + 1, _restrict(op, lev, x, b))
            ec *= F32(CORRECTION)
            for s in range(0, op.n, CHUNK):  # x += CORRECTION · ec[agg], chunk by chunk
                x[s:s + CHUNK] += ec[lev.agg[s:s + CHUNK]]
        del ec
        for _ in range(SWEEPS):
            x = op.smooth(x, b, False)
        return x

    def _coarse(self, k: int, b: np.ndarray) -> np.ndarray:
        """Two symmetric cycles at level ``k`` (one at the coarsest)."""
        e = self._cycle(k, b)
        if k == len(self.levels) - 1:
            return e
        r = self.levels[k].op.matvec(e)
        np.subtract(b, r, out=r)
        e += self._cycle(k, r)
        return e


def _restrict(op: RedBlackLaplacian, lev: _Level, x: np.ndarray, b: np.ndarray
              ) -> np.ndarray:
    """Aggregate sums of the red residual (after a forward red-black sweep the black
    residual is exactly zero), accumulated in float64 chunk by chunk: one red-sized
    float32 temporary."""
    nr = op.n_red
    neg = np.multiply(op.d_r, x[:nr])
    neg -= b[:nr]
    add_product(op.B, x[nr:], neg)  # neg = −(b − A x) on the red unknowns
    rc = np.zeros(lev.n_coarse, np.float64)
    for s in range(0, nr, CHUNK):
        e = min(s + CHUNK, nr)
        np.add.at(rc, lev.agg[s:e], neg[s:e])
    del neg
    return np.negative(rc).astype(F32)


def _axpy(y: np.ndarray, a: float, x: np.ndarray, buf: np.ndarray) -> None:
    """y += a·x in float32, a chunk at a time (``buf``: a scratch of ≥ one chunk)."""
    for s in range(0, y.size, CHUNK):
        y[s:s + CHUNK] += np.multiply(x[s:s + CHUNK], F32(a), out=buf[:y[s:s + CHUNK].size])


def dot64(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b of two float32 vectors: float32 products summed in float64 (chunked, no BLAS)."""
    buf = np.empty(min(CHUNK, a.size), F32)
    total = 0.0
    for s in range(0, a.size, CHUNK):
        part = np.multiply(a[s:s + CHUNK], b[s:s + CHUNK], out=buf[:min(CHUNK, a.size - s)])
        total += float(part.sum(dtype=np.float64))
    return total


def pcg(A: RedBlackLaplacian, r: np.ndarray, x: np.ndarray, M: Callable, *, target: float,
        maxiter: int) -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients in float32, dot products in float64.

    ``r`` is the initial residual b − A x (overwritten: no right-hand side is stored);
    ``x`` (the initial guess) is updated in place; ``M(r, out)`` applies the
    preconditioner into ``out``. Stops when the recurrence residual
    ‖r‖₂ < ``target``. Returns ``x`` and the iterations done.
    """
    z = M(r)
    rho = dot64(r, z)
    p = z
    q = np.empty_like(r)
    buf = np.empty(min(CHUNK, r.size), F32)
    it = 0
    while it < maxiter and np.sqrt(dot64(r, r)) >= target:
        A.matvec(p, out=q)
        alpha = rho / dot64(p, q)
        _axpy(x, alpha, p, buf)
        _axpy(r, -alpha, q, buf)
        it += 1
        z = M(r, q)  # q is free until the next product: z takes its place
        rho_new = dot64(r, z)
        p *= F32(rho_new / rho)
        p += z
        rho = rho_new
    return x, it


def _x64(x: np.ndarray, lo: np.ndarray, r: slice) -> np.ndarray:
    """x[r] + lo[r] in float64 (the solution is held as two float32 vectors)."""
    out = x[r].astype(np.float64)
    out += lo[r]
    return out


def residual64(op: MaskLaplacian, x: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, float]:
    """b − A (x + lo) formed in float64 a slab at a time (b = ``op.g_b`` on the inlet
    layer, 0 elsewhere; ``x``, ``lo`` float32). Returns it rounded to float32 and its
    float64 2-norm."""
    lay = op.layout
    r = np.empty(op.n, F32)
    total = 0.0
    for z0, z1 in lay.slabs():
        s, pos = op.sums(lambda part: _x64(x, lo, part), z0, z1, dtype=np.float64)
        op.add_faces(s[1:-1], z0, op.g_b, outlet=False)
        flat = s.reshape(-1)
        for c, p in zip((RED, BLACK), lay.inner(pos, z0, z1), strict=True):
            part = lay.range(z0, z1, c)
            v = flat[p]
            v -= op.diag[part] * _x64(x, lo, part)
            total += float(np.dot(v, v))
            r[part] = v
    return r, float(np.sqrt(total))


def refine(op: MaskLaplacian, norm_b: float, x: np.ndarray, M: Callable, *, rtol: float,
           maxiter: int, done: int) -> tuple[np.ndarray, int, float]:
    """Corrections solved on the float64 residual of x + lo until it is below ``rtol``
    (relative to ``norm_b`` = ‖b‖₂): float32 recurrences drift from the true residual
    near 1e-6. ``x`` (float32) is kept; the corrections accumulate in the float32 vector
    lo (the conjugate gradients iterate on it in place: no separate correction vector).

    Returns lo, the total iterations (``done`` included) and the true relative
    residual ‖b − A(x + lo)‖₂/‖b‖₂.
    """
    it = done
    lo = np.zeros_like(x)
    for k in range(REFINEMENTS + 1):
        r, norm_r = residual64(op, x, lo)
        res = norm_r / norm_b
        if res < rtol or it >= maxiter or k == REFINEMENTS:
            break
        inner = max(0.5 * rtol / res, FLOAT32_FLOOR)
        lo, n_it = pcg(op, r, lo, M, target=inner * norm_r, maxiter=maxiter - it)
        del r
        it += n_it
    return lo, it, res


@dataclass
class LeanSolve:
    """Fluxes and solver figures of one lean solve."""

    flux_inlet: float
    flux_outlet: float
    iterations: int
    relative_residual: float
    n_levels: int
    setup_s: float
    solve_s: float


def conductances(spacing: tuple[float, float, float]) -> tuple[list[float], float]:
    """Link conductances A/d per axis divided by the largest (the scale, µm), rounded to
    multiples of 2⁻¹⁸.

    Every diagonal entry (a sum of at most 8 such numbers ≤ 2) is then exact in float32,
    so each row of the float32 operator sums exactly to its fixed-face term: rounded
    diagonals would add a small source in every voxel, which biases the flux (~1e-3 at
    40³ with anisotropic voxels). The rounding changes a conductance by at most
    2⁻¹⁹ of the largest.
    """
    vol = float(np.prod(spacing))
    g = [vol / d**2 for d in spacing]
    scale = max(g)
    return [round(v / scale * 2**18) / 2**18 for v in g], scale


def finest_grid(cond: np.ndarray, spacing: tuple[float, float, float], flow: int) -> _Grid:
    """The voxel grid: links between face-neighbouring conducting voxels (conductance A/d,
    divided by :func:`conductances`' scale)."""
    g = conductances(spacing)[0]

    def face(ax: int) -> tuple[np.ndarray, float]:
        lo, hi = _sides(cond, ax)
        return lo & hi, g[ax]

    g_b = 2.0 * g[flow]
    return _Grid(cond=cond, face=face, inlet=_layer(cond, flow, 0) * F32(g_b),
                 outlet=_layer(cond, flow, cond.shape[flow] - 1) * F32(g_b), flow=flow)


def _initial_guess(layout: Layout, flow: int) -> np.ndarray:
    """Linear profile 1 − (k + ½)/N along ``flow`` at every unknown."""
    x = np.empty(layout.n, F32)
    size = layout.shape[flow]
    shape = [1, 1, 1]
    shape[flow] = size
    profile = (1.0 - (np.arange(size) + 0.5) / size).astype(F32).reshape(shape)
    for z0, z1 in layout.slabs():
        p = profile[z0:z1] if flow == 0 else profile
        layout.gather(np.broadcast_to(p, (z1 - z0, *layout.shape[1:])), z0, z1, x)
    return x


def solve(cond: np.ndarray, spacing: tuple[float, float, float], flow: int, *,
          rtol: float, maxiter: int) -> LeanSolve:
    """Solve the fixed-value problem on the percolating mask ``cond`` (see the module doc).

    ``cond`` is used in place (the finest level's operator reads it): not modified.
    """
    import time

    t0 = time.perf_counter()
    g, scale = conductances(spacing)
    g_b = 2.0 * g[flow]
    layout = Layout(cond)
    op = MaskLaplacian(layout, (g[0], g[1], g[2]), g_b, flow)
    inlet = layout.layer(flow, 0)
    outlet = layout.layer(flow, cond.shape[flow] - 1)
    x = _initial_guess(layout, flow)
    mg = GeometricMG(finest_grid(cond, spacing, flow), op)
    t1 = time.perf_counter()
    r = op.matvec(x)
    np.negative(r, out=r)
    r[inlet] += F32(g_b)
    norm_b = g_b * np.sqrt(inlet.size)
    x, it = pcg(op, r, x, mg, target=max(rtol, FLOAT32_FLOOR) * norm_b, maxiter=maxiter)
    del r
    lo, it, res = refine(op, norm_b, x, mg, rtol=rtol, maxiter=maxiter, done=it)
    t2 = time.perf_counter()
    f_in = scale * g_b * float(np.sum(1.0 - (x[inlet].astype(np.float64) + lo[inlet])))
    f_out = scale * g_b * float(np.sum(x[outlet].astype(np.float64) + lo[outlet]))
    return LeanSolve(f_in, f_out, it, res, mg.n_levels, t1 - t0, t2 - t1)
