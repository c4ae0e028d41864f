"""Volume fractions and phase profiles on shapes with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.fractions import phase_profile, volume_fractions

CMAP = {"pore": 0, "cbd": 1, "active": 2}


def test_cube_and_sphere_fractions():
    a = np.zeros((20, 20, 20), np.uint8)
    a[5:15, 5:15, 5:15] = 2
    a[0, 0, :4] = 1
    f = volume_fractions(a, class_map=CMAP)
    assert list(f) == ["pore", "cbd", "active"]
    assert f["active"] == 1000 / 8000
    assert f["cbd"] == 4 / 8000
    assert f["pore"] == pytest.approx(1 - 1004 / 8000)

    n, r = 64, 20
    z, y, x = np.ogrid[:n, :n, :n]
    ball = ((z - 31.5) ** 2 + (y - 31.5) ** 2 + (x - 31.5) ** 2) <= r**2
    f = volume_fractions(ball.astype(np.uint8))
    assert f["1"] == pytest.approx(4 / 3 * np.pi * r**3 / n**3, rel=0.01)


def test_mask_and_absent_named_class():
    a = np.zeros((4, 4, 4), np.uint8)
    a[:2] = 2
    mask = np.zeros_like(a, bool)
    mask[1:3] = True  # half active, half pore
    f = volume_fractions(a, mask=mask, class_map=CMAP)
    assert f == {"pore": 0.5, "cbd": 0.0, "active": 0.5}
    with pytest.raises(InputError, match="no voxels"):
        volume_fractions(a, mask=np.zeros_like(a, bool))
    with pytest.raises(ShapeError):
        volume_fractions(a, mask=np.ones((2, 2), bool))


def test_profile_along_z_matches_slices():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, size=(6, 7, 8)).astype(np.uint8)
    df = phase_profile(a, axis="z", class_map=CMAP, spacing=(2.0, 1.0, 1.0))
    assert list(df.columns) == ["slice", "position_um", "n_voxels", "fraction_pore",
                                "fraction_cbd", "fraction_active"]
    for k in range(6):
        assert df["fraction_active"][k] == pytest.approx(np.mean(a[k] == 2))
        assert df["position_um"][k] == pytest.approx(2.0 * k + 1.0)
    dfx = phase_profile(a, axis="x")
    assert len(dfx) == 8
    assert dfx["fraction_0"][3] == pytest.approx(np.mean(a[:, :, 3] == 0))
    # a mask that empties a slice gives NaN there
    m = np.ones_like(a, bool)
    m[2] = False
    dfm = phase_profile(a, axis=0, mask=m)
    assert np.isnan(dfm["fraction_1"][2]) and dfm["n_voxels"][2] == 0
