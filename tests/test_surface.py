"""Surface areas of analytic shapes by the three methods, each within its documented bias.

Documented biases (``electrode_ct.metrics.surface``): face counting = |n_x|+|n_y|+|n_z| times
the true area (exact for axis-aligned faces, 3/2 for a sphere); marching cubes on a binary
indicator: axis-aligned faces exact, cube edges chamfered (−2 to −3 %), spheres +8 to +12 %,
tilted planes −1 to +8 %; gradient (σ = 1 voxel): planes and spheres within ±1.5 %, cube
edges rounded (−7 to −8 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.metrics.surface import phase_surface_area, surface_areas


def _ratio(mask, true, method, spacing=None):
    return phase_surface_area(mask, method=method, spacing=spacing) / true


def test_cube_anisotropic_spacing():
    m = np.zeros((30, 30, 30), bool)
    m[5:25, 5:25, 5:25] = True
    sp = (1.0, 0.5, 2.0)
    ext = [20 * s for s in sp]
    true = 2 * (ext[0] * ext[1] + ext[0] * ext[2] + ext[1] * ext[2])
    assert _ratio(m, true, "face", sp) == pytest.approx(1.0, abs=1e-12)
    assert 0.96 <= _ratio(m, true, "marching_cubes", sp) <= 0.99
    assert 0.91 <= _ratio(m, true, "gradient", sp) <= 0.94


@pytest.mark.parametrize("radius", [10, 16])
def test_sphere(radius):
    n = 2 * radius + 8
    c = (n - 1) / 2
    z, y, x = np.ogrid[:n, :n, :n]
    m = ((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2) <= radius**2
    true = 4 * np.pi * radius**2
    assert _ratio(m, true, "face") == pytest.approx(1.5, rel=0.04)
    assert 1.05 <= _ratio(m, true, "marching_cubes") <= 1.13
    assert _ratio(m, true, "gradient") == pytest.approx(1.0, abs=0.015)
    # physical spacing scales the area by spacing²
    assert phase_surface_area(m, method="gradient", spacing=0.5) == pytest.approx(
        0.25 * phase_surface_area(m, method="gradient"), rel=1e-5)


@pytest.mark.parametrize(("slope", "mc_lo", "mc_hi"), [(1.0, 0.98, 1.01), (0.5, 1.05, 1.10)])
def test_tilted_plane(slope, mc_lo, mc_hi):
    # plane z = slope * x + c crossing the whole x and y extent of a 80 x 40 x 40 box
    n = 40
    z, y, x = np.mgrid[: 2 * n, :n, :n] + 0.5
    m = (z - slope * x) < n / 2
    true = n * n * np.sqrt(1 + slope**2)
    normal_l1 = (1 + slope) / np.sqrt(1 + slope**2)
    assert _ratio(m, true, "face") == pytest.approx(normal_l1, rel=0.02)
    assert mc_lo <= _ratio(m, true, "marching_cubes") <= mc_hi
    assert _ratio(m, true, "gradient") == pytest.approx(1.0, abs=0.015)


@pytest.mark.parametrize("method", ["face", "marching_cubes", "gradient"])
def test_pair_areas_of_layers(method):
    a = np.zeros((30, 16, 20), np.uint8)
    a[10:20] = 1
    a[20:] = 2
    r = surface_areas(a, method=method, spacing=0.5, class_map={"pore": 0, "cbd": 1, "active": 2})
    plane = 16 * 20 * 0.25
    assert r["method"] == method
    assert r["area_um2"]["cbd"] == pytest.approx(2 * plane, rel=0.01)
    assert r["interfacial_area_um2"]["pore|cbd"] == pytest.approx(plane, rel=0.01)
    assert r["interfacial_area_um2"]["cbd|active"] == pytest.approx(plane, rel=0.01)
    assert r["interfacial_area_um2"]["pore|active"] == pytest.approx(0.0, abs=0.01 * plane)
    total = a.size * 0.125
    assert r["total_volume_um3"] == total
    assert r["specific_surface_area_per_um"]["pore"] == pytest.approx(plane / total, rel=0.01)


def test_errors_and_empty():
    m = np.zeros((5, 5, 5), bool)
    assert phase_surface_area(m, method="marching_cubes") == 0.0
    with pytest.raises(InputError, match="surface method"):
        phase_surface_area(m, method="voxels")
    with pytest.raises(InputError, match="sigma"):
        phase_surface_area(m, method="gradient", sigma=0)
