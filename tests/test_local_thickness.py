"""Local thickness and chord lengths of shapes with known sizes."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.metrics.local_thickness import (
    chord_length_summary,
    chord_lengths,
    local_thickness,
    thickness_distribution,
)


def test_plate_thickness_everywhere_even_width():
    m = np.zeros((14, 20, 20), bool)
    m[2:12] = True  # 10 voxels thick along z
    lt = local_thickness(m, spacing=(0.5, 1.0, 1.0))
    assert np.all(lt[m] == pytest.approx(5.0))
    assert np.all(lt[~m] == 0)


def test_ball_centred_on_a_voxel_is_exact():
    n, r = 31, 10
    z, y, x = np.ogrid[:n, :n, :n]
    ball = ((z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2) <= r**2
    lt = local_thickness(ball)
    assert np.all(lt[ball] == 2 * r)
    table, s = thickness_distribution(ball.astype(np.uint8), 1)
    assert table["cumulative"].iloc[-1] == pytest.approx(1.0)
    assert s["d10_um"] == s["d50_um"] == 2 * r


def test_ball_off_grid_within_documented_bias():
    n, r = 32, 10
    z, y, x = np.ogrid[:n, :n, :n]
    ball = ((z - 15.5) ** 2 + (y - 15.5) ** 2 + (x - 15.5) ** 2) <= r**2
    v = local_thickness(ball)[ball]
    assert v.max() <= 2 * r
    assert np.mean(v >= 2 * r - 2) >= 0.9  # only the staircase caps get less


def test_two_plates_distribution():
    m = np.zeros((30, 8, 8), bool)
    m[1:5] = True  # 4 thick: 4*64 voxels
    m[10:22] = True  # 12 thick, 12*64 voxels
    table, s = thickness_distribution(m, spacing=2.0)
    frac = dict(zip(table["thickness_um"], table["volume_fraction"], strict=True))
    assert frac[8.0] == pytest.approx(4 / 16)
    assert frac[24.0] == pytest.approx(12 / 16)
    assert s["d10_um"] == 8.0 and s["d50_um"] == 24.0


def test_chords():
    m = np.zeros((3, 4, 12), bool)
    m[1, 1, 2:5] = True  # 3
    m[1, 1, 7:9] = True  # 2
    m[1, 2, 0:4] = True  # touches the border: left out
    c = np.sort(chord_lengths(m, axis="x", spacing=(1, 1, 0.5)))
    assert c.tolist() == [1.0, 1.5]
    assert np.sort(chord_lengths(m, axis="x", include_border=True)).tolist() == [2, 3, 4]
    s = chord_length_summary(m, axes=["x", "z"])
    assert s["x"]["n_chords"] == 2 and s["x"]["mean_um"] == 2.5
    assert s["z"]["n_chords"] == 9 and s["z"]["median_um"] == 1.0
