"""Percolation and isolated clusters on constructed volumes."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.metrics.connectivity import connectivity, percolating_mask


def _construct() -> np.ndarray:
    a = np.zeros((10, 12, 14), np.uint8)
    a[:, 2, 2] = 1  # column spanning z: 10 voxels
    a[4, :, 6:8] = 1  # sheet spanning y (not x, not z): 24 voxels
    a[7:9, 9:11, 10:12] = 1  # isolated 2x2x2 blob: 8 voxels
    a[0:3, 10, 0] = 1  # touches the z0 and x0 faces only: 3 voxels
    return a


def test_percolating_fractions_exact():
    a = _construct()
    r = connectivity(a, 1)
    total = 10 + 24 + 8 + 3
    assert r["phase_voxels"] == total
    assert r["percolating_fraction"]["z"] == pytest.approx(10 / total)
    assert r["percolating_fraction"]["y"] == pytest.approx(24 / total)
    assert r["percolating_fraction"]["x"] == 0.0
    assert r["n_clusters"] == 4
    assert r["n_isolated"] == 1
    assert r["isolated_fraction"] == pytest.approx(8 / total)
    assert r["largest_cluster_fraction"] == pytest.approx(24 / total)
    m = percolating_mask(a == 1, "z")
    assert m.sum() == 10 and m[:, 2, 2].all()


def test_diagonal_chain_depends_on_connectivity():
    a = np.zeros((5, 5, 5), bool)
    for k in range(5):
        a[k, k, 2] = True  # touches only along edges
    assert connectivity(a, connectivity=6)["percolating_fraction"]["z"] == 0.0
    assert connectivity(a, connectivity=18)["percolating_fraction"]["z"] == 1.0


def test_named_phase_and_errors():
    a = _construct()
    r = connectivity(a, "solid", class_map={"void": 0, "solid": 1}, axes=["z"])
    assert list(r["percolating_fraction"]) == ["z"]
    with pytest.raises(InputError, match="absent"):
        connectivity(a, 5)
    with pytest.raises(InputError, match="axis"):
        connectivity(a, 1, axes=["w"])
