"""Tortuosity benchmark: electrode-ct's FV + SA-AMG-CG solver against TauFactor, side by side.

Prints ONE JSON object:

- ``analytic``: τ of geometries with exact answers (straight channels τ = 1; one-voxel-wide
  staircase and serpentine paths τ = (path voxels / length)²; a staircase in parallel with a
  straight channel; an anisotropic-spacing staircase) and the relative errors.
- ``electrode``: τ of the pore phase along z (through-plane) on a synthetic 256³ three-phase
  electrode (``electrode_ct.synth.electrode``) and on the embedded real packing
  ``electrode_ct.data.nmc_phases()`` (251 × 301 × 301, pore = 0): time, peak RSS, τ of both
  solvers at their own convergence criteria, τ of electrode-ct at a 1000× tighter tolerance
  (to show τ moved by < 0.1 %), and the relative difference. TauFactor (PyPI ``taufactor``,
  optional, CPU) is run when importable; otherwise its entries say so.
- ``large`` (unless ``--quick`` or ``--no-large``): a 512³ volume (the 256³ phantom mirrored
  along every axis, which leaves τ exactly unchanged) — time and peak RSS.

Every solve runs in its own spawned process, so its peak RSS (``ru_maxrss``) is its own.

Usage::

    flock /tmp/ect-heavy.lock .venv/bin/python benchmarks/metrics.py          # full
    .venv/bin/python benchmarks/metrics.py --quick                           # smoke, ~1 min
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

AXES = {"z": 0, "y": 1, "x": 2}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- workers (run in spawned processes) --------------------------------------------------

def _ours(path: str, axis: str, rtol: float, spacing: tuple, queue: Any) -> None:
    from electrode_ct.metrics.tortuosity import tortuosity

    mask = np.load(path)
    base = _rss_mb()
    t0 = time.perf_counter()
    r = tortuosity(mask, axis=axis, rtol=rtol, spacing=spacing)
    wall = time.perf_counter() - t0
    queue.put({"tau": r.tortuosity, "d_eff_ratio": r.effective_diffusivity_ratio,
               "time_s": wall, "setup_s": r.setup_s, "solve_s": r.solve_s,
               "iterations": r.iterations, "relative_residual": r.relative_residual,
               "flux_mismatch": r.flux_mismatch, "n_unknowns": r.n_unknowns,
               "rtol": rtol, "peak_rss_mb": _rss_mb(), "input_rss_mb": base})


def _taufactor(path: str, axis: str, conv_crit: float, queue: Any) -> None:
    try:
        import IPython  # noqa: F401  (taufactor imports IPython.display.clear_output)
    except ImportError:  # only used for notebook plotting: a stub is enough
        ipy = types.ModuleType("IPython")
        disp = types.ModuleType("IPython.display")
        disp.clear_output = lambda *a, **k: None  # type: ignore[attr-defined]
        ipy.display = disp  # type: ignore[attr-defined]
        sys.modules["IPython"], sys.modules["IPython.display"] = ipy, disp
    import taufactor
    import torch

    mask = np.load(path)
    img = np.ascontiguousarray(np.moveaxis(mask, AXES[axis], 0)).astype(np.uint8)
    base = _rss_mb()
    t0 = time.perf_counter()
    s = taufactor.Solver(img, device="cpu")
    tau = s.solve(verbose=False, conv_crit=conv_crit, iter_limit=100000)
    wall = time.perf_counter() - t0
    queue.put({"tau": float(np.ravel(tau)[0]), "time_s": wall, "iterations": int(s.iter),
               "converged": bool(s.converged), "conv_crit": conv_crit,
               "torch_threads": torch.get_num_threads(),
               "version": getattr(taufactor, "__version__", "unknown"),
               "peak_rss_mb": _rss_mb(), "input_rss_mb": base})


def _spawn(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    try:
        out = q.get()
    except Exception as exc:  # child died
        out = {"error": repr(exc)}
    p.join()
    if p.exitcode and "error" not in out:
        out["error"] = f"exit code {p.exitcode}"
    return out


def _taufactor_available() -> str | None:
    import importlib.util

    if importlib.util.find_spec("taufactor") is None:
        return "taufactor not installed (pip install --no-deps taufactor psutil)"
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    return None


# -- analytic geometries -----------------------------------------------------------------

def _staircase(a: np.ndarray, y: int, n: int) -> int:
    a[0, y, 0] = True
    count = 1
    for k in range(1, n):
        a[k, y, k - 1] = True
        count += 1
        if k < n - 1:
            a[k, y, k] = True
            count += 1
    return count


def _serpentine(a: np.ndarray, y: int, width: int) -> int:
    """Rows along x at odd z joined by one voxel at alternating ends; single-voxel ends."""
    nz = a.shape[0]
    a[0, y, 0] = True
    x_end = 0
    for z in range(1, nz - 1, 2):
        a[z, y, :width] = True
        if z + 1 < nz:
            x_end = width - 1 if (z // 2) % 2 == 0 else 0
            a[z + 1, y, x_end] = True
    return int(a[:, y].sum())


def analytic() -> dict[str, Any]:
    from electrode_ct.metrics.tortuosity import tortuosity

    out: dict[str, Any] = {}

    def rec(name: str, tau: float, exact: float) -> None:
        out[name] = {"tau": tau, "exact": exact, "rel_error": abs(tau - exact) / exact}

    a = np.zeros((64, 64, 64), bool)
    a[:, 10:20, 10:30] = True
    a[:, 40:44, 40:60] = True
    for ax in "xyz":
        b = np.moveaxis(a, 0, AXES[ax])
        rec(f"straight_channels_{ax}", tortuosity(b, axis=ax).tortuosity, 1.0)
    n = 48
    a = np.zeros((n, 3, n), bool)
    m = _staircase(a, 1, n)
    rec("staircase", tortuosity(a, axis="z", rtol=1e-10).tortuosity, (m / n) ** 2)
    a = np.zeros((41, 3, 20), bool)
    m = _serpentine(a, 1, 20)
    rec("serpentine", tortuosity(a, axis="z", rtol=1e-10).tortuosity, (m / 41) ** 2)
    a = np.zeros((n, 5, n), bool)
    m = _staircase(a, 1, n)
    a[:, 3, n // 2] = True
    d_rel = (1.0 / m + 1.0 / n) * n / (5 * n)
    rec("staircase_parallel_channel", tortuosity(a, axis="z", rtol=1e-10).tortuosity,
        ((m + n) / a.size) / d_rel)
    sp = (0.5, 1.0, 1.5)
    a = np.zeros((n, 3, n), bool)
    m = _staircase(a, 1, n)
    vol = float(np.prod(sp))
    res = (n * sp[0] ** 2 + (n - 2) * sp[2] ** 2) / vol
    d_rel = (1.0 / res) * n * sp[0] / (3 * sp[1] * n * sp[2])
    rec("staircase_anisotropic", tortuosity(a, axis="z", spacing=sp, rtol=1e-10).tortuosity,
        (m / a.size) / d_rel)
    out["max_rel_error"] = max(v["rel_error"] for v in out.values())
    return out


# -- electrodes --------------------------------------------------------------------------

def phantom(size: int) -> tuple[np.ndarray, str]:
    from electrode_ct.synth import electrode

    p = electrode((size,) * 3, voxel_size=0.5, cracked_fraction=0.0, seed=7)
    return np.asarray(p.phases.numpy()), "electrode_ct.synth.electrode(seed=7, 0.5 µm)"


def compare_on(mask: np.ndarray, name: str, tmp: Path, *, axis: str, rtol: float,
               conv_crit: float, tf_missing: str | None, tight: bool) -> dict[str, Any]:
    path = str(tmp / f"{name}.npy")
    np.save(path, mask)
    row: dict[str, Any] = {"shape": list(mask.shape), "axis": axis,
                           "porosity": float(mask.mean())}
    row["electrode_ct"] = _spawn(_ours, path, axis, rtol, (1.0, 1.0, 1.0))
    if tight:
        ref = _spawn(_ours, path, axis, rtol * 1e-3, (1.0, 1.0, 1.0))
        row["electrode_ct_tight"] = {k: ref.get(k) for k in ("tau", "rtol", "iterations")}
        if "tau" in ref and "tau" in row["electrode_ct"]:
            row["electrode_ct_tau_change_percent"] = 100 * abs(
                row["electrode_ct"]["tau"] / ref["tau"] - 1)
    if tf_missing:
        row["taufactor"] = {"skipped": tf_missing}
    else:
        row["taufactor"] = _spawn(_taufactor, path, axis, conv_crit)
        ours, tf = row["electrode_ct"], row["taufactor"]
        if "tau" in ours and "tau" in tf:
            ref_tau = row.get("electrode_ct_tight", {}).get("tau", ours["tau"])
            row["tau_rel_diff_percent"] = 100 * abs(tf["tau"] / ref_tau - 1)
            row["speedup_vs_taufactor"] = tf["time_s"] / ours["time_s"]
            row["memory_ratio_vs_taufactor"] = ours["peak_rss_mb"] / tf["peak_rss_mb"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (~1 min)")
    ap.add_argument("--no-large", action="store_true", help="skip the 512³ run")
    ap.add_argument("--no-taufactor", action="store_true", help="do not run TauFactor")
    ap.add_argument("--axis", default="z", choices=["x", "y", "z"])
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--conv-crit", type=float, default=1e-2,
                    help="TauFactor's convergence criterion (its default 1e-2)")
    args = ap.parse_args()

    from electrode_ct.data import nmc_phases

    size = 64 if args.quick else 256
    tf_missing = "disabled (--no-taufactor)" if args.no_taufactor else _taufactor_available()
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "tortuosity",
        "mode": "quick" if args.quick else "full",
        "convention": "tau = eps * D / D_eff (eps: whole phase), pore phase, Dirichlet faces",
        "electrode_ct_solver": "FV on phase voxels + SA-AMG-preconditioned CG (scipy.sparse)",
        "taufactor": tf_missing or "available",
        "analytic": analytic(),
    }
    with tempfile.TemporaryDirectory(prefix="ect-bench-metrics-") as td:
        tmp = Path(td)
        ph, ph_name = phantom(size)
        real = nmc_phases().numpy()
        if args.quick:
            real = real[:96, :96, :96]
        result["electrode"] = {
            "phantom": {"source": ph_name, **compare_on(
                ph == 0, "phantom", tmp, axis=args.axis, rtol=args.rtol,
                conv_crit=args.conv_crit, tf_missing=tf_missing, tight=True)},
            "nmc_phases": {"source": "electrode_ct.data.nmc_phases() pore=0", **compare_on(
                real == 0, "real", tmp, axis=args.axis, rtol=args.rtol,
                conv_crit=args.conv_crit, tf_missing=tf_missing, tight=True)},
        }
        if not (args.quick or args.no_large):
            big = ph == 0
            for ax in range(3):
                big = np.concatenate([big, np.flip(big, axis=ax)], axis=ax)
            path = str(tmp / "large.npy")
            np.save(path, big)
            del big
            r = _spawn(_ours, path, args.axis, args.rtol, (1.0, 1.0, 1.0))
            r["shape"] = [2 * size] * 3
            r["source"] = "the 256³ phantom mirrored along every axis (τ unchanged)"
            tau256 = result["electrode"]["phantom"]["electrode_ct"].get("tau")
            if tau256 and "tau" in r:
                r["tau_rel_diff_vs_256_percent"] = 100 * abs(r["tau"] / tau256 - 1)
            r["within_24_gb"] = r.get("peak_rss_mb", 1e9) < 24 * 1024
            result["large"] = r
    result["total_s"] = time.perf_counter() - t0
    from electrode_ct.io.tables import dumps

    print(dumps(result, indent=1))


if __name__ == "__main__":
    main()
