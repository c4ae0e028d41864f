"""Shared fixtures: small phantoms with exact ground truth, paths to real data, CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
SEGMENTPY = DATA / "segmentpy_nmc_nanoct"
SEGMENTPY_A = [1, 100, 200, 300, 400]
SEGMENTPY_C = [394, 470, 546, 622, 698, 774]


@pytest.fixture
def run_cli(capsys):
    """Run the ``ect`` CLI in-process: returns (exit_code, stdout, stderr)."""
    from electrode_ct.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def three_phase_phantom() -> tuple[np.ndarray, np.ndarray]:
    """A 40³ three-phase volume: truth labels (0 pore, 1 cbd, 2 active) and a noisy grey image.

    Spheres of active material, CBD shells around them, pore elsewhere; grey levels
    50 / 120 / 200 with Gaussian noise σ = 8 (well separated).
    """
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:40, :40, :40]
    truth = np.zeros((40, 40, 40), np.uint8)
    for cz, cy, cx, r in [(12, 12, 12, 8), (28, 26, 14, 9), (14, 28, 28, 7), (28, 12, 30, 6)]:
        d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        truth[(d <= r + 2) & (truth == 0)] = 1
        truth[d <= r] = 2
    levels = np.array([50.0, 120.0, 200.0])
    grey = levels[truth] + rng.normal(0, 8, truth.shape)
    return truth, grey.astype(np.float32)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the size of the CLI bad-input matrix (issue 27) when its cases ran."""
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
               if "test_cli_bad_input.py::test_bad_input[" in r.nodeid and r.when == "call"]
    if not reports:
        return
    import test_cli_bad_input as matrix

    failed = sum(r.failed for r in reports)
    terminalreporter.write_line(
        f"bad-input matrix: {len(reports)} cases ({len(matrix.COMMANDS)} commands x "
        f"{len(matrix.KINDS)} kinds of bad input), {failed} failed; "
        f"{len(matrix.NOT_APPLICABLE)} combinations not applicable and "
        f"{len(matrix.NOT_AN_ERROR)} valid inputs, each with its reason in "
        "tests/test_cli_bad_input.py")
