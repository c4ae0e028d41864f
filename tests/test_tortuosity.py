"""Tortuosity factor: known answers of resistor-network geometries, solver checks, bad input.

One-voxel-wide paths are exact 1-D resistor chains in the finite-volume discretisation:
a link along axis a has resistance d_a² / V (V the voxel volume, D = 1) and each end a
half-link to the fixed-value faces, so τ follows from series/parallel sums.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.tortuosity import tortuosity, tortuosity_factors

# the package re-exports the function under the module's name: reach the module itself
tmod = importlib.import_module("electrode_ct.metrics.tortuosity")


def _staircase(a: np.ndarray, y: int, n: int) -> int:
    """Draw a staircase along z (z-step, x-step, ...) at row y; returns its voxel count."""
    a[0, y, 0] = True
    count = 1
    for k in range(1, n):
        a[k, y, k - 1] = True
        count += 1
        if k < n - 1:
            a[k, y, k] = True
            count += 1
    return count


def _staircase_resistance(n: int, sp: tuple[float, float, float]) -> float:
    vol = sp[0] * sp[1] * sp[2]
    return (n * sp[0] ** 2 + (n - 2) * sp[2] ** 2) / vol  # (n-1) + 2 halves along z


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_straight_channels_tau_one(axis):
    a = np.zeros((12, 14, 16), bool)
    ax = {"z": 0, "y": 1, "x": 2}[axis]
    sl = [slice(2, 5), slice(3, 7), slice(8, 10)]
    sl[ax] = slice(None)
    a[tuple(sl)] = True
    r = tortuosity(a, axis=axis, spacing=(2.0, 0.5, 1.0))
    assert r.tortuosity == pytest.approx(1.0, rel=1e-6)
    assert r.effective_diffusivity_ratio == pytest.approx(a.mean(), rel=1e-6)
    assert r.converged and r.flux_mismatch < 1e-5


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 1.0, 1.5)])
def test_staircase_series(spacing):
    n, ny, nx = 12, 3, 12
    a = np.zeros((n, ny, nx), bool)
    m = _staircase(a, 1, n)
    r = tortuosity(a, axis="z", spacing=spacing, rtol=1e-10)
    flux = 1.0 / _staircase_resistance(n, spacing)
    d_rel = flux * n * spacing[0] / (ny * spacing[1] * nx * spacing[2])
    assert r.effective_diffusivity_ratio == pytest.approx(d_rel, rel=1e-6)
    assert r.tortuosity == pytest.approx((m / a.size) / d_rel, rel=1e-6)
    if spacing == (1.0, 1.0, 1.0):
        assert r.tortuosity == pytest.approx((m / n) ** 2, rel=1e-6)  # (path/length)²


def test_parallel_channel_and_staircase():
    n, ny, nx = 10, 5, 10
    a = np.zeros((n, ny, nx), bool)
    m = _staircase(a, 1, n)
    a[:, 3, 5] = True  # straight channel beside it (row 2 left empty: no contact)
    r = tortuosity(a, axis="z", rtol=1e-10)
    flux = 1.0 / _staircase_resistance(n, (1.0, 1.0, 1.0)) + 1.0 / n
    d_rel = flux * n / (ny * nx)
    assert r.tortuosity == pytest.approx(((m + n) / a.size) / d_rel, rel=1e-6)


def test_isolated_and_dead_end_clusters_do_not_conduct():
    a = np.zeros((10, 8, 8), bool)
    a[:, 2, 2] = True
    base = tortuosity(a, axis="z")
    a[3:6, 5:7, 5:7] = True  # isolated blob: 12 voxels
    a[:4, 5, 0] = True  # dead-end cluster touching the inlet only
    r = tortuosity(a, axis="z")
    assert r.effective_diffusivity_ratio == pytest.approx(base.effective_diffusivity_ratio)
    # τ = ε/(D_eff/D) with ε of the whole phase
    assert r.tortuosity == pytest.approx(base.tortuosity * a.sum() / 10, rel=1e-9)
    assert r.percolating_fraction == pytest.approx(10 / a.sum())
    assert r.n_unknowns == 10


def test_non_percolating_is_infinite_not_an_error():
    a = np.zeros((10, 8, 8), np.uint8)
    a[:, 2, 2] = 1
    res = tortuosity_factors(a, 1, axes=("x", "z"))
    assert res["x"].tortuosity == float("inf")
    assert res["x"].effective_diffusivity_ratio == 0.0
    assert res["z"].tortuosity == pytest.approx(1.0)


def test_amg_cg_matches_direct_solve_on_random_medium():
    rng = np.random.default_rng(3)
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.random((28, 30, 26)), 2)
    a = noise > np.quantile(noise, 0.55)
    r = tortuosity(a, axis="y", rtol=1e-8, spacing=(1.0, 1.0, 0.8))
    assert r.converged and r.iterations < 40
    # the same system solved directly
    cond = tmod.percolating_mask(a, 1)
    idx, _, n_red = tmod._number_unknowns(cond)
    A, b, inlet, _, g_b = tmod._assemble(idx, int(cond.sum()), n_red, (1.0, 1.0, 0.8), 1)
    c = spla.spsolve(A.tocsr().tocsc(), b)
    flux = g_b * np.sum(1 - c[inlet])
    d_rel = flux * a.shape[1] / (a.shape[0] * a.shape[2] * 0.8)
    assert r.effective_diffusivity_ratio == pytest.approx(d_rel, rel=1e-6)
    assert 1.0 < r.tortuosity < 10.0
    assert r.flux_mismatch < 1e-5


def test_bad_input():
    a = np.zeros((6, 6, 6), np.uint8)
    a[:, 1, 1] = 1
    with pytest.raises(ShapeError, match="3-D"):
        tortuosity(a[0], 1, axis="x")
    with pytest.raises(ShapeError, match="3-D"):
        tortuosity(a[:1], 1, axis="x")
    with pytest.raises(InputError, match="absent"):
        tortuosity(a, 7)
    with pytest.raises(InputError, match="not a class name"):
        tortuosity(a, "active")  # no class map
    with pytest.raises(InputError, match="axis"):
        tortuosity(a, 1, axis="w")
    with pytest.raises(InputError, match="spacing"):
        tortuosity(a, 1, spacing=(1.0, 2.0))
    with pytest.raises(InputError, match="rtol"):
        tortuosity(a, 1, rtol=0)


def test_result_does_not_depend_on_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    from electrode_ct.synth import electrode

    arr = electrode((64, 64, 64), seed=3).phases.numpy()
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            r = tortuosity(arr, phase=0, spacing=0.5, axis="x").to_dict()
        runs.append({k: v for k, v in r.items() if not k.endswith("_s")})
    assert runs[0] == runs[1]  # bit for bit: same inputs, same figures on any machine


# --- the lean (float32, geometric multigrid) solver -------------------------------------


def _gaussian_medium(shape, seed, keep):
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
    return noise > np.quantile(noise, keep)


@pytest.mark.parametrize(("shape", "seed", "spacing"), [
    ((40, 44, 36), 5, (1.0, 1.0, 1.0)),
    ((33, 40, 47), 8, (0.5, 1.0, 1.5)),  # odd sizes, anisotropic voxels
])
def test_lean_solver_equals_amg_solver(shape, seed, spacing):
    a = _gaussian_medium(shape, seed, 0.5)
    for axis in ("x", "y", "z"):
        old = tortuosity(a, axis=axis, spacing=spacing, solver="amg", rtol=1e-9)
        new = tortuosity(a, axis=axis, spacing=spacing, solver="lean")
        assert new.solver != old.solver and new.n_unknowns == old.n_unknowns
        assert new.tortuosity == pytest.approx(old.tortuosity, rel=1e-4)
        assert new.converged and new.flux_mismatch < 1e-3
        assert 1.0 < new.tortuosity < 20.0


def test_lean_solver_on_the_electrode_phantom():
    from electrode_ct.synth import electrode

    arr = electrode((64, 64, 64), seed=4).phases.numpy()
    old = tortuosity(arr, phase=0, axis="z", solver="amg", rtol=1e-9)
    new = tortuosity(arr, phase=0, axis="z", solver="lean")
    assert new.tortuosity == pytest.approx(old.tortuosity, rel=1e-4)


@pytest.mark.parametrize("axis", ["x", "z"])
def test_lean_solver_known_answers(axis):
    a = np.zeros((12, 14, 16), bool)
    ax = {"z": 0, "y": 1, "x": 2}[axis]
    sl = [slice(2, 5), slice(3, 7), slice(8, 10)]
    sl[ax] = slice(None)
    a[tuple(sl)] = True
    r = tortuosity(a, axis=axis, spacing=(2.0, 0.5, 1.0), solver="lean")
    assert r.tortuosity == pytest.approx(1.0, rel=1e-5)
    n, ny, nx = 12, 3, 12
    s = np.zeros((n, ny, nx), bool)
    m = _staircase(s, 1, n)
    r = tortuosity(s, axis="z", spacing=(0.5, 1.0, 1.5), solver="lean")
    d_rel = (1.0 / _staircase_resistance(n, (0.5, 1.0, 1.5))) * n * 0.5 / (ny * nx * 1.5)
    assert r.tortuosity == pytest.approx((m / s.size) / d_rel, rel=1e-5)


def test_lean_solver_non_percolating_and_thread_count():
    from threadpoolctl import threadpool_limits

    a = np.zeros((10, 8, 8), bool)
    a[:, 2, 2] = True
    assert tortuosity(a, axis="x", solver="lean").tortuosity == float("inf")
    b = _gaussian_medium((36, 36, 36), 2, 0.5)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            r = tortuosity(b, axis="y", solver="lean").to_dict()
        runs.append({k: v for k, v in r.items() if not k.endswith("_s")})
    assert runs[0] == runs[1]


def test_lean_matrix_free_level_equals_the_csr_operator():
    """The matrix-free finest level of the lean solver (numbering, diagonal, product,
    sweep, block transfers, float64 residual) against the assembled CSR operator: odd
    sizes, anisotropic voxels, flow along y, slabs of 2 planes so slab borders are
    crossed."""
    from electrode_ct.metrics import _gmg, _stencil

    cond = _gaussian_medium((17, 22, 25), 3, 0.45)
    spacing, flow = (0.5, 1.0, 1.5), 1
    g, _ = _gmg.conductances(spacing)
    lay = _stencil.Layout(cond)
    assert lay.planes == 2
    op = _stencil.MaskLaplacian(lay, tuple(g), 2.0 * g[flow], flow)
    grid = _gmg.finest_grid(cond, spacing, flow)
    idx, n, nr = _gmg.number_cells(cond)
    A = _gmg.operator(grid, idx, n, nr).tocsr().astype(np.float64)
    assert (lay.n, lay.n_red) == (n, nr)
    ids = np.full(cond.shape, -1)  # the same numbering
    for z0, z1 in lay.slabs():
        for c in (_stencil.RED, _stencil.BLACK):
            r = lay.range(z0, z1, c)
            ids[z0:z1].reshape(-1)[lay.positions(z0, z1, c)] = np.arange(r.start, r.stop)
    np.testing.assert_array_equal(ids, idx)
    np.testing.assert_array_equal(lay.positions(0, 17, _stencil.RED),  # many planes at once
                                  np.flatnonzero((idx >= 0) & (idx < nr)))
    for ax, k in ((0, 16), (1, 0), (2, 24)):
        ref = np.take(idx, k, axis=ax)
        np.testing.assert_array_equal(np.sort(lay.layer(ax, k)), np.sort(ref[ref >= 0]))
    np.testing.assert_array_equal(op.diag, A.diagonal())  # exact in float32
    rng = np.random.default_rng(1)
    x, b, lo = (rng.random(n).astype(np.float32) for _ in range(3))
    lo *= np.float32(1e-4)
    out = np.full(n, np.nan, np.float32)
    assert op.matvec(x, out=out) is out
    np.testing.assert_allclose(out, A @ x, rtol=1e-5, atol=1e-5)
    # one forward sweep from x: red cells solved from black x, then black from new red
    y = op.smooth(x.copy(), b, True)
    red = (b[:nr] - A[:nr, nr:] @ x[nr:]) / A.diagonal()[:nr]
    black = (b[nr:] - A[nr:, :nr] @ y[:nr]) / A.diagonal()[nr:]
    np.testing.assert_allclose(y, np.concatenate([red, black]), rtol=1e-5, atol=1e-5)
    back = op.smooth(x.copy(), b, False)  # backwards: black from x, then red
    black = (b[nr:] - A[nr:, :nr] @ x[:nr]) / A.diagonal()[nr:]
    red = (b[:nr] - A[:nr, nr:] @ back[nr:]) / A.diagonal()[:nr]
    np.testing.assert_allclose(back, np.concatenate([red, black]), rtol=1e-5, atol=1e-5)
    # block transfers: sums of the red residual, and the 0/1 prolongation
    coarse = _gmg.coarsen(grid).cond
    cidx, n_c, _ = _gmg.number_cells(coarse)
    agg = _gmg.aggregates(idx, cidx, n)
    ref = np.bincount(agg[:nr], weights=(b - A @ y)[:nr], minlength=n_c)
    np.testing.assert_allclose(_stencil.restrict(op, y, b, _stencil.Layout(coarse)), ref,
                               rtol=1e-4, atol=1e-4)
    ec = rng.random(n_c).astype(np.float32)
    z = x.copy()
    _stencil.prolong_add(op, _stencil.Layout(coarse), ec, z)
    np.testing.assert_array_equal(z, x + ec[agg])
    # float64 residual of x + lo, b = g_b on the inlet layer
    inlet = lay.layer(flow, 0)
    rhs = np.zeros(n)
    rhs[inlet] = 2.0 * g[flow]
    ref = rhs - A @ (x.astype(np.float64) + lo)
    r32, norm = _gmg.residual64(op, x, lo)
    np.testing.assert_array_equal(r32, ref.astype(np.float32))
    assert norm == pytest.approx(np.linalg.norm(ref), rel=1e-12)


# TauFactor's own test suite (github.com/tldr-group/taufactor, tests/test_taufactor.py):
# the same convention (fixed values half a voxel outside the first and last layers,
# tau = eps * D / D_eff), so the same answers.
@pytest.mark.parametrize("solver", ["amg", "lean"])
def test_taufactor_cases(solver):
    n = 20
    block = np.ones((n, n, n), bool)
    block[:, :, 0] = False  # a uniform block less one layer across the flow
    assert tortuosity(block, axis="z", solver=solver).tortuosity == pytest.approx(1, abs=1e-5)
    for shape in ((2 * n, n, n), (n, n, 2 * n)):  # rectangular blocks
        rect = np.ones(shape, bool)
        rect[:, :, 0] = False
        assert tortuosity(rect, axis="z", solver=solver).tortuosity == pytest.approx(
            1, abs=1e-5)
    strip = np.zeros((n, n, n), bool)
    strip[:, :10, :10] = True  # a strip of a quarter of the volume
    assert tortuosity(strip, axis="z", solver=solver).tortuosity == pytest.approx(1, abs=1e-5)
    empty = np.zeros((n, n, n), bool)
    empty[0] = True  # only the inlet layer conducts
    assert tortuosity(empty, axis="z", solver=solver).tortuosity == float("inf")
    dead = np.zeros((10, 50, 50), bool)
    dead[:8, 25, 25] = True  # a dead-end pore
    r = tortuosity(dead, axis="z", solver=solver)
    assert r.tortuosity == float("inf") and r.effective_diffusivity_ratio == 0.0


def test_bad_solver_name():
    a = np.zeros((6, 6, 6), np.uint8)
    a[:, 1, 1] = 1
    with pytest.raises(InputError, match="solver"):
        tortuosity(a, 1, solver="fast")


@pytest.mark.parametrize("transpose", [False, True])
def test_add_product_without_scipys_private_kernels(monkeypatch, transpose):
    """``add_product`` gives y + B x (y + Bᵀ x) with scipy's in-place kernels and through
    a temporary where a scipy lacks them."""
    import scipy.sparse as sp

    from electrode_ct.metrics import _amg

    B = sp.random(40, 30, density=0.2, format="csr", random_state=3, dtype=np.float32)
    rng = np.random.default_rng(2)
    x = rng.random(40 if transpose else 30).astype(np.float32)
    y0 = rng.random(30 if transpose else 40).astype(np.float32)
    ref = y0 + (B.T if transpose else B) @ x
    fast = _amg.add_product(B, x, y0.copy(), transpose=transpose)
    monkeypatch.setattr(_amg, "csr_matvec", None)
    slow = _amg.add_product(B, x, y0.copy(), transpose=transpose)
    np.testing.assert_allclose(fast, ref, rtol=1e-6)
    np.testing.assert_allclose(slow, ref, rtol=1e-6)
