"""Peak resident memory of the lean tortuosity solve, phase by phase (issue 22).

The pore phase along z of a ``--size``³ phase volume tiled like ``scale.py --tortuosity``
(spacing 0.5 µm), ``solver="lean"``; the process RSS is sampled every 50 ms and each
sample is charged to the solver phase running (percolation labels, set-up, first CG,
refinement). Prints JSON: bytes per unknown over the RSS before the call, per phase,
with one ``edt`` pass over the same mask (2 threads) timed in the same run::

    python benchmarks/tortuosity_phases.py --size 192
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import edt
import psutil
from scale import tiled_phases

from electrode_ct.metrics import _gmg

PHASES = {"percolating_mask": "percolation labels", "Layout": "set-up",
          "MaskLaplacian": "set-up", "GeometricMG": "set-up", "pcg": "first CG",
          "refine": "refinement"}


def _tag(module: Any, name: str, state: dict[str, str]) -> None:
    """Charge the samples taken while ``module.name`` runs to its phase."""
    f: Callable = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        outer = state["phase"]
        if outer != "refinement":  # the refinement's own CG stays in the refinement
            state["phase"] = PHASES[name]
        try:
            return f(*args, **kwargs)
        finally:
            state["phase"] = outer

    setattr(module, name, wrapped)


def main() -> None:
    """Run one lean solve with per-phase RSS sampling and print the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args()
    tmod = importlib.import_module("electrode_ct.metrics.tortuosity")
    pore = tiled_phases(args.size) == 0
    t0 = time.perf_counter()
    edt.edt(pore, black_border=False, parallel=2)
    ref_s = time.perf_counter() - t0
    state, peaks, proc = {"phase": "other"}, {}, psutil.Process(os.getpid())
    _tag(tmod, "percolating_mask", state)
    for name in ("Layout", "MaskLaplacian", "GeometricMG", "pcg", "refine"):
        _tag(_gmg, name, state)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss, phase = proc.memory_info().rss, state["phase"]
            peaks[phase] = max(peaks.get(phase, 0), rss)
            time.sleep(0.05)

    base = proc.memory_info().rss
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    r = tmod.tortuosity(pore, axis="z", spacing=0.5, solver="lean")
    total = time.perf_counter() - t0
    stop.set()
    thread.join()
    n = r.n_unknowns
    print(json.dumps({
        "size": args.size, "n_unknowns": n, "tau_z": r.tortuosity,
        "iterations": r.iterations, "total_s": round(total, 2),
        "edt_reference_s": round(ref_s, 2), "load_avg_1min": os.getloadavg()[0],
        "bytes_per_unknown": {k: round((v - base) / n, 1) for k, v in peaks.items()}}))


if __name__ == "__main__":
    main()
