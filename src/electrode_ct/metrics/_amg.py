"""Compact aggregation algebraic multigrid for voxel Laplacians (scipy.sparse only).

Finest level: the 7-point finite-volume operator on the voxels of one phase, stored as its
red-black coupling block only (every link joins a voxel with (z + y + x) even, "red", to an
odd, "black", one), smoothed by symmetric red-black Gauss-Seidel; its coarse operator is
the unsmoothed aggregation (Galerkin with 0/1 prolongation) over aggregates = connected
pieces of 2 × 2 × 2 voxel blocks — cheap in time and memory. Coarser levels use smoothed
aggregation (P = (I − ω D⁻¹A) P₀ over the same kind of block aggregates, 27-point
operators) with damped-Jacobi smoothing, down to a sparse LU solve. The symmetric
V-cycle is a fixed linear SPD preconditioner for conjugate gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

try:  # scipy's compiled kernels accumulate into their output (private module)
    from scipy.sparse._sparsetools import csc_matvec, csr_matvec
except ImportError:  # a scipy without them: products through a temporary
    csc_matvec = csr_matvec = None


def add_product(B: sp.csr_matrix, x: np.ndarray, y: np.ndarray, *,
                transpose: bool = False) -> np.ndarray:
    """y += B x (or y += Bᵀ x) in place: no temporary the size of ``y``.

    ``x`` and ``y`` are contiguous vectors of B's value type (scipy's own kernels, which
    accumulate into their output). Where scipy no longer has those private kernels, the
    same sum is formed through a temporary (more memory, same values).
    """
    if not (y.flags.c_contiguous and y.dtype == B.dtype == x.dtype):
        raise ValueError("add_product needs contiguous vectors of the matrix's type")
    if csr_matvec is None:
        y += (B.T if transpose else B) @ x
        return y
    m, k = B.shape
    if transpose:
        csc_matvec(k, m, B.indptr, B.indices, B.data, x, y)
    else:
        csr_matvec(m, k, B.indptr, B.indices, B.data, x, y)
    return y


class RedBlackLaplacian:
    """SPD operator [[D_r, B], [Bᵀ, D_b]] of a bipartite (7-point voxel) problem.

    Parameters
    ----------
    B : scipy.sparse.csr_matrix
        Red-black coupling block (n_red × n_black), float64.
    diag : numpy.ndarray
        Diagonal of the whole operator, red unknowns first.
    """

    def __init__(self, B: sp.csr_matrix, diag: np.ndarray) -> None:
        self.B = B
        self.Bt = B.T  # CSC view: no copy (as fast as a CSR copy here)
        self.n_red = B.shape[0]
        self.n = B.shape[0] + B.shape[1]
        self.shape = (self.n, self.n)
        self.dtype = np.dtype(np.float64)
        self.diag = diag
        self.d_r = diag[: self.n_red]
        self.d_b = diag[self.n_red:]

    def matvec(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """y = A x (into ``out`` when given: no other temporary)."""
        nr = self.n_red
        y = np.multiply(self.diag, x, out=out)
        add_product(self.B, x[nr:], y[:nr])
        add_product(self.B, x[:nr], y[nr:], transpose=True)
        return y

    __matmul__ = matvec

    def tocsr(self) -> sp.csr_matrix:
        """The whole operator as one CSR matrix (for small problems and tests)."""
        return sp.bmat([[sp.diags(self.d_r), self.B], [self.B.T, sp.diags(self.d_b)]],
                       format="csr")

    def _relax(self, x: np.ndarray, b: np.ndarray, red: bool) -> None:
        """Exact solve of one colour given the other, in place: x_c = (b_c − B x_o) / d_c."""
        nr = self.n_red
        own, other, d = ((slice(0, nr), slice(nr, None), self.d_r) if red
                         else (slice(nr, None), slice(0, nr), self.d_b))
        xc = x[own]
        np.negative(b[own], out=xc)
        add_product(self.B, x[other], xc, transpose=not red)
        np.divide(xc, d, out=xc)
        np.negative(xc, out=xc)

    def smooth(self, x: np.ndarray | None, b: np.ndarray, forward: bool, *,
               out: np.ndarray | None = None) -> np.ndarray:
        """One red-black Gauss-Seidel sweep (red then black; black then red backwards),
        ``x`` updated in place (no temporaries); from x = 0 into ``out`` (or a new vector)
        when ``x`` is None."""
        nr = self.n_red
        if x is None:
            x = np.empty_like(b) if out is None else out
            np.divide(b[:nr], self.d_r, out=x[:nr])
            self._relax(x, b, False)
            return x
        for red in ((True, False) if forward else (False, True)):
            self._relax(x, b, red)
        return x


@dataclass
class _Level:
    A: sp.csr_matrix
    dinv: np.ndarray
    omega: float = 1.0
    P: sp.csr_matrix | None = None


def _spectral_radius(A: sp.csr_matrix, dinv: np.ndarray, *, iters: int = 10) -> float:
    """Largest eigenvalue of D⁻¹A by power iteration (seeded), slightly inflated."""
    rng = np.random.default_rng(0)
    v = rng.random(A.shape[0]).astype(A.dtype)
    lam = 1.0
    for _ in range(iters):
        w = dinv * (A @ v)
        lam = float(np.linalg.norm(w) / max(np.linalg.norm(v), 1e-300))
        v = w / max(np.linalg.norm(w), 1e-300)
    return 1.05 * lam


def _block_key(coords: np.ndarray) -> np.ndarray:
    blocks = coords.astype(np.int64) // 2
    span = blocks.max(axis=0) + 1
    return (blocks[:, 0] * span[1] + blocks[:, 1]) * span[2] + blocks[:, 2]


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, int]:
    g = sp.csr_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(n, n))
    n_agg, agg = connected_components(g, directed=False)
    return agg.astype(np.int64), int(n_agg)


def _coarse_coords(coords: np.ndarray, agg: np.ndarray, n_agg: int) -> np.ndarray:
    out = np.empty((n_agg, 3), coords.dtype)
    out[agg] = coords // 2
    return out


def _smoothed_prolongator(
    A: sp.csr_matrix, agg: np.ndarray, n_agg: int, wdinv: np.ndarray
) -> sp.csr_matrix:
    """P = (I − ω D⁻¹ A) P₀ with P₀ the 0/1 aggregation matrix, built without a matrix product.

    (A P₀)[i, J] is the sum of row i of A over the columns in aggregate J: a column
    relabelling of A whose duplicates the CSR conversion adds up.
    """
    n = A.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(A.indptr))
    vals = -(A.data * wdinv[rows])
    ar = np.arange(n, dtype=np.int64)
    P = sp.csr_matrix(
        (np.concatenate([vals, np.ones(n, A.dtype)]),
         (np.concatenate([rows, ar]), np.concatenate([agg[A.indices], agg]))),
        shape=(n, n_agg),
    )
    P.sum_duplicates()
    P.eliminate_zeros()
    return P


class AggregationAMG:
    """Multigrid hierarchy of a :class:`RedBlackLaplacian` (see the module docstring).

    Parameters
    ----------
    op : RedBlackLaplacian
        Finest operator.
    coords : numpy.ndarray
        (n, 3) integer voxel coordinates (z, y, x) of the unknowns (red first).
    coarse_size : int
        Unknown count below which a level is solved directly (sparse LU).
    max_levels : int
        Maximum number of levels.
    dtype : numpy dtype
        Precision of the coarse levels (float32 halves memory; the finest level and the
        outer conjugate gradients stay float64).
    row_chunk : int
        Coupling entries processed at once when forming the first coarse operator
        (bounds the setup memory).
    """

    def __init__(
        self,
        op: RedBlackLaplacian,
        coords: np.ndarray,
        *,
        coarse_size: int = 2000,
        max_levels: int = 12,
        dtype: type = np.float32,
        row_chunk: int = 20_000_000,
    ) -> None:
        self.op = op
        self.levels: list[_Level] = []
        n, nr = op.n, op.n_red
        B = op.B
        # -- finest level: aggregates from the links inside 2x2x2 blocks -------------------
        key = _block_key(coords)
        red_rows = np.repeat(np.arange(nr, dtype=np.int64), np.diff(B.indptr))
        black = B.indices.astype(np.int64) + nr
        same = key[red_rows] == key[black]
        self.agg, n_agg = _components(n, red_rows[same], black[same])
        del key, same
        coords = _coarse_coords(coords, self.agg, n_agg)
        # Galerkin P0ᵀ A P0: aggregate-graph Laplacian, assembled in chunks of links
        agg = self.agg
        diag = np.bincount(agg, weights=op.diag, minlength=n_agg)
        parts = []
        for s in range(0, red_rows.size, row_chunk):
            i = agg[red_rows[s:s + row_chunk]]
            j = agg[black[s:s + row_chunk]]
            g = B.data[s:s + row_chunk]
            inner = i == j
            diag += 2.0 * np.bincount(i[inner], weights=g[inner], minlength=n_agg)
            keep = ~inner
            i, j, g = i[keep], j[keep], g[keep].astype(dtype)
            part = sp.csr_matrix((np.concatenate([g, g]), (np.concatenate([i, j]),
                                  np.concatenate([j, i]))), shape=(n_agg, n_agg))
            part.sum_duplicates()
            parts.append(part)
        del red_rows, black
        A = parts[0]
        for part in parts[1:]:
            A = A + part
        A = (A + sp.diags(diag.astype(dtype))).tocsr()
        A.sum_duplicates()
        # -- coarser levels: smoothed aggregation ---------------------------------------------
        while True:
            dinv = (1.0 / A.diagonal()).astype(dtype)
            lev = _Level(A=A, dinv=dinv)
            self.levels.append(lev)
            m = A.shape[0]
            if m <= coarse_size or len(self.levels) >= max_levels:
                break
            lev.omega = 4.0 / (3.0 * _spectral_radius(A, dinv))
            coo = A.tocoo()
            key = _block_key(coords)
            same = (key[coo.row] == key[coo.col]) & (coo.row != coo.col)
            agg_c, n_c = _components(m, coo.row[same], coo.col[same])
            del coo, key, same
            if n_c >= m:
                break
            P = _smoothed_prolongator(A, agg_c, n_c, lev.omega * dinv)
            A = (P.T @ (A @ P)).tocsr()
            A.sum_duplicates()
            lev.P = P
            coords = _coarse_coords(coords, agg_c, n_c)
        self._lu = splu(self.levels[-1].A.astype(np.float64).tocsc())

    @property
    def n_levels(self) -> int:
        """Number of levels, the finest included."""
        return 1 + len(self.levels)

    def __call__(self, b: np.ndarray) -> np.ndarray:
        """Apply one symmetric V-cycle to ``b`` (zero initial guess)."""
        op = self.op
        x = op.smooth(None, b, True)
        # after a forward red-black sweep the black residual is exactly zero
        nr = op.n_red
        r_red = b[:nr] - op.d_r * x[:nr] - op.B @ x[nr:]
        rc = np.bincount(self.agg[:nr], weights=r_red, minlength=self.levels[0].A.shape[0])
        x += self._cycle(0, rc.astype(self.levels[0].A.dtype))[self.agg]
        return op.smooth(x, b, False)

    def _cycle(self, k: int, b: np.ndarray) -> np.ndarray:
        lev = self.levels[k]
        if k == len(self.levels) - 1:
            return self._lu.solve(b.astype(np.float64)).astype(b.dtype)
        x = lev.omega * lev.dinv * b
        r = b - lev.A @ x
        x += lev.P @ self._cycle(k + 1, lev.P.T @ r)
        return x + lev.omega * lev.dinv * (b - lev.A @ x)
