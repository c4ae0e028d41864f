"""Tortuosity factor of a conducting phase by a finite-volume steady-diffusion solve.

Problem
-------
Steady diffusion ∇·(D∇c) = 0 in the voxels of one phase, c = 1 on the inlet face and
c = 0 on the outlet face of the volume along the chosen direction, no flux through the
other four faces nor into the other phases. The phase's intrinsic diffusivity D is 1.

Discretisation
--------------
Cell-centred finite volumes on the phase voxels only. Between two face-neighbouring phase
voxels the conductance is D·A/d, with d the voxel size along the link and A the area of the
shared face (the product of the two other voxel sizes) — the harmonic mean of two equal
diffusivities is D, so anisotropic voxels enter exactly through A/d. The fixed values sit
on the outer faces of the first and last voxel layers (half a voxel away: conductance
2·D·A/d), so the conducting length is the full volume length L = N·d and a straight
channel has τ = 1 exactly. Before solving, every cluster that does not touch both the
inlet and the outlet face (isolated pores, dead-end clusters) is removed: it carries no
flux and would make the matrix singular. Dead-end *branches* of the percolating cluster
are kept; they carry no flux at convergence.

Convention
----------
D_eff/D = F·L / (A_total·Δc) with F the flux through the volume, A_total the full
cross-section (all phases) and Δc = 1; the tortuosity factor is

    τ = ε · D / D_eff

with ε the volume fraction of the whole phase (isolated clusters included) — the
convention of TauFactor (Cooper et al. 2016). A phase that does not percolate has
D_eff = 0 and τ = inf (reported, not an error).

Solver
------
Conjugate gradients preconditioned by one symmetric V-cycle of an aggregation algebraic
multigrid (:mod:`electrode_ct.metrics._amg`, scipy.sparse only: red-black Gauss-Seidel
and unsmoothed 2×2×2-block aggregation on the voxels, smoothed aggregation below),
stopped when the
relative residual ‖b − Ac‖₂/‖b‖₂ < ``rtol`` (default 1e-6: τ is then within ~1e-5 relative
of the exact discrete solution). The flux is computed at both faces; their relative
mismatch is reported as a convergence check.

From :data:`LEAN_ABOVE` conducting voxels (``solver="auto"``) the same system is solved by
the memory-lean float32 solver of :mod:`electrode_ct.metrics._gmg` (geometric multigrid,
matrix-free on the voxels, ~36 instead of ~250 bytes per unknown at the peak; τ within
5e-5).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg
from threadpoolctl import threadpool_limits

from electrode_ct.errors import InputError
from electrode_ct.metrics import _gmg
from electrode_ct.metrics._amg import AggregationAMG, RedBlackLaplacian
from electrode_ct.metrics._phase import axis_index, axis_name, phase_mask
from electrode_ct.metrics.connectivity import percolating_mask
from electrode_ct.volume import as_spacing

DEFAULT_RTOL = 1e-6
"""Default relative residual at which the conjugate-gradient solve stops."""

SOLVER_NAME = "finite-volume + aggregation-AMG-preconditioned conjugate gradients"
LEAN_SOLVER_NAME = "float32 finite-volume + geometric-multigrid-preconditioned conjugate gradients"
SOLVERS = ("auto", "amg", "lean")
"""``solver`` choices: ``amg`` (float64, :mod:`~electrode_ct.metrics._amg`), ``lean``
(float32, :mod:`~electrode_ct.metrics._gmg`), ``auto`` (lean from :data:`LEAN_ABOVE`)."""

LEAN_ABOVE = 20_000_000
"""Conducting voxels from which ``solver="auto"`` uses the lean solver (docs/metrics.md)."""



@dataclass
class TortuosityResult:
    """Outcome of one tortuosity solve (one phase, one direction).

    Attributes
    ----------
    axis : str
        ``"x"``, ``"y"`` or ``"z"`` (array axes 2, 1, 0).
    tortuosity : float
        τ = ε·D/D_eff (dimensionless); ``inf`` when the phase does not percolate.
    effective_diffusivity_ratio : float
        D_eff/D (dimensionless, 0 when the phase does not percolate).
    volume_fraction : float
        ε, the fraction of the volume in the phase (0–1).
    percolating_fraction : float
        Fraction of the phase volume in clusters touching both faces (0–1).
    flux_inlet, flux_outlet : float
        Diffusive flux through the inlet and outlet faces, in µm²·(D·Δc/µm) with
        D = Δc = 1 (i.e. µm).
    flux_mismatch : float
        |flux_inlet − flux_outlet| / mean flux (a convergence check).
    iterations : int
        Conjugate-gradient iterations.
    relative_residual : float
        ‖b − Ac‖₂/‖b‖₂ reached.
    rtol : float
        Requested relative residual.
    converged : bool
        Whether ``relative_residual < rtol``.
    n_unknowns : int
        Voxels in the conducting (percolating) cluster.
    setup_s, solve_s : float
        Wall time of the multigrid setup and of the iterations, in seconds.
    solver : str
        Method name.
    """

    axis: str
    tortuosity: float
    effective_diffusivity_ratio: float
    volume_fraction: float
    percolating_fraction: float
    flux_inlet: float = 0.0
    flux_outlet: float = 0.0
    flux_mismatch: float = 0.0
    iterations: int = 0
    relative_residual: float = 0.0
    rtol: float = DEFAULT_RTOL
    converged: bool = True
    n_unknowns: int = 0
    setup_s: float = 0.0
    solve_s: float = 0.0
    solver: str = SOLVER_NAME

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict."""
        return asdict(self)


def _number_unknowns(cond: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Index of every conducting voxel (−1 elsewhere), red ((z+y+x) even) voxels first.

    Returns the index volume (int32/int64), the flat positions of the unknowns in
    index order, and the number of red unknowns.
    """
    shape = cond.shape
    parity = (
        (np.arange(shape[0], dtype=np.uint8)[:, None, None] & 1)
        ^ (np.arange(shape[1], dtype=np.uint8)[None, :, None] & 1)
        ^ (np.arange(shape[2], dtype=np.uint8)[None, None, :] & 1)
    ).astype(bool)
    red_pos = np.flatnonzero(cond & ~parity)
    black_pos = np.flatnonzero(cond & parity)
    del parity
    pos = np.concatenate([red_pos, black_pos])
    n_red = red_pos.size
    del red_pos, black_pos
    itype = np.int32 if pos.size < 2**31 - 1 else np.int64
    idx = np.full(shape, -1, dtype=itype)
    idx.ravel()[pos] = np.arange(pos.size, dtype=itype)
    return idx, pos, n_red


def _assemble(
    idx: np.ndarray, n: int, n_red: int, spacing: tuple[float, float, float], flow: int
) -> tuple[RedBlackLaplacian, np.ndarray, np.ndarray, np.ndarray, float]:
    """Finite-volume operator, right-hand side and boundary data.

    Every face link joins a red and a black voxel, so the operator is stored as its
    red-black coupling block plus the diagonal. Returns the operator, b, the inlet and
    outlet unknowns and the boundary conductance (2·A/d along ``flow``, µm).
    """
    vol = float(np.prod(spacing))
    rows, cols, vals = [], [], []
    diag = np.zeros(n, np.float64)
    for ax in range(3):
        g = vol / spacing[ax] ** 2  # face area / link length, µm
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        a = idx[tuple(lo)]
        c = idx[tuple(hi)]
        both = (a >= 0) & (c >= 0)
        i = a[both]
        j = c[both]
        del both
        diag += g * (np.bincount(i, minlength=n) + np.bincount(j, minlength=n))
        i_red = i < n_red
        rows.append(np.where(i_red, i, j))
        cols.append(np.where(i_red, j, i) - n_red)
        vals.append(np.full(i.size, -g))
        del i, j, i_red
    g_b = 2.0 * vol / spacing[flow] ** 2
    first = [slice(None)] * 3
    last = [slice(None)] * 3
    first[flow] = 0
    last[flow] = -1
    inlet = idx[tuple(first)].ravel()
    inlet = inlet[inlet >= 0].astype(np.int64)
    outlet = idx[tuple(last)].ravel()
    outlet = outlet[outlet >= 0].astype(np.int64)
    diag[inlet] += g_b
    diag[outlet] += g_b
    row = np.concatenate(rows)
    del rows
    col = np.concatenate(cols)
    del cols
    B = sp.csr_matrix((np.concatenate(vals), (row, col)), shape=(n_red, n - n_red))
    del row, col
    b = np.zeros(n)
    b[inlet] = g_b
    return RedBlackLaplacian(B, diag), b, inlet, outlet, g_b


def tortuosity(
    labels: Any,
    phase: str | int | None = None,
    *,
    axis: str | int = "z",
    spacing: float | Iterable[float] | None = None,
    class_map: Mapping[str, int] | None = None,
    rtol: float = DEFAULT_RTOL,
    maxiter: int = 1000,
    solver: str = "auto",
) -> TortuosityResult:
    """Tortuosity factor τ and D_eff/D of one phase along one direction.

    Parameters
    ----------
    labels : numpy.ndarray
        3-D label volume (z, y, x), or a boolean mask of the conducting phase when
        ``phase`` is None.
    phase : str or int, optional
        Class name (looked up in ``class_map``) or label value of the conducting phase.
    axis : {"x", "y", "z"} or int
        Direction of the imposed gradient (x, y, z = array axes 2, 1, 0).
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in µm. Only its ratios matter (τ is dimensionless); None
        means cubic voxels. Anisotropic voxels must be given here, or τ across the
        longer axes is wrong.
    class_map : mapping, optional
        name -> value.
    rtol : float
        Relative residual ‖b − Ac‖₂/‖b‖₂ at which conjugate gradients stop.
    maxiter : int
        Maximum conjugate-gradient iterations.
    solver : {"auto", "amg", "lean"}
        ``amg``: float64 matrix, aggregation AMG; ``lean``: float32, geometric multigrid,
        about a seventh of the memory (:mod:`~electrode_ct.metrics._gmg`); ``auto``: lean
        from :data:`LEAN_ABOVE` conducting voxels. Both give τ within 1e-4 relative
        (measured 4e-5 at 256³).

    Returns
    -------
    TortuosityResult
        τ (``inf`` for a non-percolating phase), D_eff/D, ε, fluxes at both faces and
        solver figures. See the module docstring for the exact convention.

    Raises
    ------
    ShapeError
        For a 2-D input (tortuosity needs a 3-D volume).
    InputError
        For an unknown or absent phase, a bad axis, spacing or tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((20, 10, 10), bool)
    >>> a[:, 2:5, 3:6] = True                   # a straight channel along z
    >>> r = tortuosity(a, axis="z")
    >>> round(r.tortuosity, 6), round(r.effective_diffusivity_ratio, 6)
    (1.0, 0.09)
    """
    mask = phase_mask(labels, phase, class_map=class_map, ndim3=True)
    sp3 = as_spacing(spacing, name="spacing")
    ax = axis_index(axis)
    if not (0 < rtol < 1):
        raise InputError(f"rtol: expected a relative tolerance in (0, 1), got {rtol!r}")
    if solver not in SOLVERS:
        raise InputError(f"solver: expected one of {', '.join(SOLVERS)}, got {solver!r}")
    eps = float(mask.mean())
    cond = percolating_mask(mask, ax)
    n = int(np.count_nonzero(cond))
    perc = n / max(int(np.count_nonzero(mask)), 1)
    shape = mask.shape
    del mask  # a phase-mask copy of a label volume: not held through the solve
    name = axis_name(ax)
    if n == 0:
        return TortuosityResult(name, float("inf"), 0.0, eps, 0.0, rtol=rtol)
    lean = solver == "lean" or (solver == "auto" and n >= LEAN_ABOVE)
    with threadpool_limits(limits=1, user_api="blas"):
        if lean:
            s = _gmg.solve(cond, sp3, ax, rtol=rtol, maxiter=maxiter)
            del cond
            fig = (s.flux_inlet, s.flux_outlet, s.iterations, s.relative_residual,
                   s.setup_s, s.solve_s, LEAN_SOLVER_NAME)
        else:
            fig = (*_solve_amg(cond, sp3, ax, rtol, maxiter), SOLVER_NAME)
    f_in, f_out, iterations, res, setup_s, solve_s, method = fig
    flux = 0.5 * (f_in + f_out)
    length = shape[ax] * sp3[ax]
    area = float(np.prod([shape[k] * sp3[k] for k in range(3) if k != ax]))
    d_rel = flux * length / area
    tau = eps / d_rel if d_rel > 0 else float("inf")
    return TortuosityResult(
        axis=name, tortuosity=float(tau), effective_diffusivity_ratio=float(d_rel),
        volume_fraction=eps, percolating_fraction=float(perc), flux_inlet=f_in,
        flux_outlet=f_out, flux_mismatch=float(abs(f_in - f_out) / flux) if flux > 0 else 0.0,
        iterations=iterations, relative_residual=res, rtol=float(rtol),
        converged=bool(res < rtol),
        n_unknowns=n, setup_s=setup_s, solve_s=solve_s, solver=method,
    )


def _solve_amg(cond: np.ndarray, sp3: tuple[float, float, float], ax: int, rtol: float,
               maxiter: int) -> tuple[float, float, int, float, float, float]:
    """The float64 AMG-preconditioned solve: fluxes, iterations, residual, times (s)."""
    t0 = time.perf_counter()
    n = int(np.count_nonzero(cond))
    idx, pos, n_red = _number_unknowns(cond)
    A, b, inlet, outlet, g_b = _assemble(idx, n, n_red, sp3, ax)
    del idx
    coords = np.stack(np.unravel_index(pos, cond.shape), axis=1).astype(np.int32)
    del pos
    x0 = 1.0 - (coords[:, ax] + 0.5) / cond.shape[ax]
    amg = AggregationAMG(A, coords)
    del coords
    t1 = time.perf_counter()
    count = [0]

    def _count(_: np.ndarray) -> None:
        count[0] += 1

    M = LinearOperator(A.shape, matvec=amg, dtype=np.float64)
    Aop = LinearOperator(A.shape, matvec=A.matvec, dtype=np.float64)
    # one BLAS thread (the caller's limit): multi-threaded dot products sum in another
    # order, and the result must not depend on the machine's thread count
    c, _ = cg(Aop, b, x0=x0, rtol=rtol, atol=0.0, maxiter=maxiter, M=M, callback=_count)
    t2 = time.perf_counter()
    res = float(np.linalg.norm(b - A @ c) / np.linalg.norm(b))
    f_in = float(g_b * np.sum(1.0 - c[inlet]))
    f_out = float(g_b * np.sum(c[outlet]))
    return f_in, f_out, count[0], res, t1 - t0, t2 - t1


def tortuosity_factors(
    labels: Any,
    phase: str | int | None = None,
    *,
    axes: Iterable[str | int] = ("x", "y", "z"),
    spacing: float | Iterable[float] | None = None,
    class_map: Mapping[str, int] | None = None,
    rtol: float = DEFAULT_RTOL,
    maxiter: int = 1000,
) -> dict[str, TortuosityResult]:
    """:func:`tortuosity` along several directions.

    Parameters
    ----------
    labels, phase, spacing, class_map, rtol, maxiter
        As for :func:`tortuosity`.
    axes : iterable of {"x", "y", "z"}
        Directions (x, y, z = array axes 2, 1, 0).

    Returns
    -------
    dict
        ``{"x": TortuosityResult, ...}`` in the order asked.
    """
    return {
        axis_name(axis_index(a)): tortuosity(
            labels, phase, axis=a, spacing=spacing, class_map=class_map, rtol=rtol,
            maxiter=maxiter,
        )
        for a in axes
    }
