"""Tests of electrode_ct.cracks.pvolume: the integral (partial-volume) crack volume."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.special import erf

from electrode_ct.cracks import three_phase
from electrode_ct.cracks.pvolume import crack_volume_pv, edge_sigma, pore_level


def _sphere_field(level_sd=0.0, noise=0.0, psf=1.2, width=2, seed=0):
    """72 spheres (radius 6 voxels) on a 16-voxel grid; every other one has a planar crack
    ``width`` voxels wide through its centre (random orientation). Grey: pore 100, solid
    100 + 100 x (1 + level_sd N(0,1)) per sphere, blurred by ``psf``, plus white noise."""
    rng = np.random.default_rng(seed)
    shape = (32, 96, 96)
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(np.float32)
    labels = np.zeros(shape, np.uint32)
    crack = np.zeros(shape, bool)
    ideal = np.full(shape, 100.0, np.float32)
    lab = 0
    for cz in range(8, shape[0], 16):
        for cy in range(8, shape[1], 16):
            for cx in range(8, shape[2], 16):
                lab += 1
                sph = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 36
                labels[sph] = lab
                cr = np.zeros(shape, bool)
                if lab % 2 == 0:
                    n = rng.normal(size=3)
                    n /= np.linalg.norm(n)
                    d = n[0] * (z - cz) + n[1] * (y - cy) + n[2] * (x - cx)
                    cr = sph & (np.abs(d) < width / 2)
                    crack |= cr
                ideal[sph & ~cr] = 100.0 + 100.0 * (1 + level_sd * rng.normal())
    grey = ndi.gaussian_filter(ideal, psf)
    grey += rng.normal(0, noise, shape).astype(np.float32) if noise else 0
    return grey, labels, crack


def test_pore_level_and_edge_sigma():
    grey, labels, _ = _sphere_field()
    dout = ndi.distance_transform_edt(labels == 0)
    assert pore_level(grey, dout) == pytest.approx(100.0, abs=0.5)
    layers = np.arange(-2, 6)
    prof = 0.5 * (1 + erf((layers - 0.5) / (1.3 * np.sqrt(2))))
    assert edge_sigma(prof, layers) == pytest.approx(1.3, abs=0.15)
    assert edge_sigma(np.zeros(8), layers) == 1.2  # flat: default


@pytest.mark.parametrize("noise", [0.0, 10.0])
def test_integral_crack_volume_known_answer(noise):
    grey, labels, crack = _sphere_field(noise=noise)
    ids = np.arange(1, labels.max() + 1)
    cracked, intact = ids[ids % 2 == 0], ids[ids % 2 == 1]
    tab, lv = crack_volume_pv(grey, labels, cracked, reference=intact, spacing=0.5)
    truth = crack.sum() * 0.125
    total = tab["crack_volume_pv_um3"].sum()
    # blur spreads a 2-voxel crack over ~6 voxels; the integral still finds its volume
    assert total == pytest.approx(truth, rel=0.05)
    # the voxel split of the same particles is far off on the blurred image
    _, split, _ = three_phase(grey, labels, cracked, spacing=0.5)
    assert abs(split["crack_volume_um3"].sum() / truth - 1) > 0.25
    assert lv["pore"] == pytest.approx(100.0, abs=2.0)
    # half of the intact particles measured against the other half: about zero in sum
    tab0, _ = crack_volume_pv(grey, labels, intact[1::2], reference=intact[::2], spacing=0.5)
    assert abs(tab0["crack_volume_pv_um3"].sum()) < 0.05 * truth
    frac = tab["crack_volume_fraction_pv"].to_numpy()
    sph_vol = np.bincount(labels.ravel())[cracked] * 0.125
    assert np.allclose(frac, tab["crack_volume_pv_um3"].to_numpy() / sph_vol)


def test_three_phase_adds_integral_columns():
    grey, labels, crack = _sphere_field(noise=5.0)
    ids = np.arange(1, labels.max() + 1)
    cracked = ids[ids % 2 == 0]
    _, tab, _ = three_phase(grey, labels, cracked, spacing=0.5)  # reference: other labels
    assert {"crack_volume_pv_um3", "crack_volume_fraction_pv"} <= set(tab.columns)
    assert tab["crack_volume_pv_um3"].sum() == pytest.approx(crack.sum() * 0.125, rel=0.05)
    _, off, _ = three_phase(grey, labels, cracked, spacing=0.5, integral=False)
    assert off["crack_volume_pv_um3"].isna().all()
    assert off["crack_voxels"].equals(tab["crack_voxels"])
