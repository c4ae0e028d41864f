"""Perturbed ground truth, interface maps, boundary targets and ensemble measures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.segment.cnn.boundary import boundary_targets
from electrode_ct.segment.cnn.perturb import (
    interface_frequency,
    interface_mask,
    perturb_labels,
    perturb_once,
)


def blobs(shape=(12, 40, 40), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.normal(size=shape), 3)
    return (np.digitize(smooth, np.quantile(smooth, [0.3, 0.7])) + 1).astype(np.uint8)


def test_interface_mask_matches_definition():
    lab = np.ones((1, 6, 6), np.uint8)
    lab[0, :, 3:] = 2
    mask = interface_mask(lab)
    expected = np.zeros_like(mask)
    expected[0, :, 2:4] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("fraction", [0.1, 0.35])
def test_one_round_changes_requested_fraction_of_interface_only(fraction):
    lab = blobs()
    iface = interface_mask(lab, mode="3d")
    out = perturb_once(lab, fraction=fraction, mode="3d", rng=np.random.default_rng(1))
    changed = out != lab
    assert changed.sum() == round(fraction * iface.sum())
    assert not (changed & ~iface).any()
    # a changed voxel takes the class of one of its face neighbours
    for idx in np.argwhere(changed)[:50]:
        z, y, x = idx
        nb = {lab[z + dz, y + dy, x + dx] for dz, dy, dx in
              [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
              if 0 <= z + dz < lab.shape[0] and 0 <= y + dy < lab.shape[1]
              and 0 <= x + dx < lab.shape[2]}
        assert out[z, y, x] in nb


def test_iterations_stay_near_interfaces_and_keep_unlabelled():
    lab = blobs()
    lab[:, :5, :] = 0  # unlabelled band
    out = perturb_labels(lab, fraction=0.1, iterations=5, seed=3)
    changed = out != lab
    assert changed.any()
    dist = ndi.distance_transform_cdt(~interface_mask(lab), metric="taxicab")
    assert dist[changed].max() <= 4
    np.testing.assert_array_equal(out == 0, lab == 0)
    np.testing.assert_array_equal(perturb_labels(lab, seed=3), out)  # seeded


def test_2d_mode_never_looks_across_slices():
    lab = np.ones((2, 10, 10), np.uint8)
    lab[1] = 2  # the only interface is between the two slices
    assert not interface_mask(lab, mode="2d").any()
    np.testing.assert_array_equal(perturb_labels(lab, mode="2d"), lab)
    assert (perturb_labels(lab, mode="3d", fraction=0.5) != lab).any()


def test_interface_frequency_is_high_at_interfaces():
    lab = np.ones((1, 60, 60), np.uint8)
    lab[0, :, 30:] = 2
    lab[0, 10:25, 5:20] = 3
    freq = interface_frequency(lab, n=6, seed=0)
    iface = interface_mask(lab)
    far = ndi.distance_transform_edt(~iface) > 6
    assert freq.min() >= 0 and freq.max() <= 1
    assert freq[iface].mean() > 0.5
    assert freq[far].max() == 0


def test_perturbation_bad_parameters():
    with pytest.raises(InputError, match="fraction"):
        perturb_labels(blobs(), fraction=0)
    with pytest.raises(InputError, match="mode"):
        interface_mask(blobs(), mode="4d")


def test_boundary_targets_mark_contacts():
    inst = np.zeros((1, 10, 12), np.uint32)
    inst[0, 2:8, 1:6] = 1
    inst[0, 2:8, 6:11] = 2
    out = boundary_targets(inst, touching_only=True)
    assert set(np.unique(out)) == {1, 2, 3}
    np.testing.assert_array_equal(np.argwhere(out[0] == 3)[:, 1], np.tile([5, 6], 6))
    full = boundary_targets(inst, width=1)
    assert (full[0, 1, 1:11] == 3).all()  # background edge next to a particle
    assert (full[0, 4, 2:5] == 2).all() and full[0, 0, 0] == 1
    with pytest.raises(InputError):
        boundary_targets(inst.astype(float))


def test_surface_area_of_a_cube():
    from electrode_ct.segment.cnn.ensemble import member_measures, surface_area

    lab = np.ones((10, 10, 10), np.uint8)
    lab[2:6, 2:6, 2:6] = 2
    assert surface_area(lab, 2, spacing=(0.5, 0.5, 0.5)) == pytest.approx(6 * 16 * 0.25)
    rows = member_measures(lab, [1, 2], ["a", "b"], reference=lab)
    assert rows[1]["volume_fraction"] == pytest.approx(64 / 1000)
    assert rows[1]["iou"] == 1.0
    inner = np.zeros_like(lab, bool)
    inner[2:6, 2:6, 2:6] = True
    inner[3:5, 3:5, 3:5] = False
    assert rows[1]["interface_voxel_percent"] == pytest.approx(100 * inner.sum() / 1000)
