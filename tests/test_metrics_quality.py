"""Quality and variability metrics against hand-computed small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics import (
    agreement_map,
    fraction_vs_reference,
    image_quality,
    interface_percentage,
    phase_statistics,
    variability,
)

CMAP = {"pore": 0, "cbd": 1, "active": 2}


def test_interface_percentage_hand_computed():
    lab = np.array([[0, 0, 1, 2],
                    [0, 0, 2, 2]])
    # face neighbours: 0-1 at (0,1)-(0,2); 1-2 at (0,2)-(0,3), (0,2)-(1,2); 0-2 at (1,1)-(1,2)
    got = interface_percentage(lab, class_map=CMAP)
    assert got["pore-cbd"] == pytest.approx(100 * 2 / 8)      # (0,1), (0,2)
    assert got["pore-active"] == pytest.approx(100 * 2 / 8)   # (1,1), (1,2)
    assert got["cbd-active"] == pytest.approx(100 * 3 / 8)    # (0,2), (0,3), (1,2)
    assert got["any"] == pytest.approx(100 * 5 / 8)           # all but (0,0), (1,0), (1,3)
    vol = np.zeros((3, 3, 3), np.uint8)
    vol[1, 1, 1] = 2  # one voxel: 6 face neighbours + itself
    assert interface_percentage(vol)["0-2"] == pytest.approx(100 * 7 / 27)


def test_phase_statistics_and_contrast_hand_computed():
    img = np.array([[1.0, 3.0, 10.0, 14.0]])
    lab = np.array([[0, 0, 2, 2]])
    st = phase_statistics(img, lab, class_map=CMAP)
    assert st["pore"] == {"n_voxels": 2, "mean": 2.0, "std": 1.0, "snr": 2.0}
    assert st["active"]["mean"] == 12.0 and st["active"]["std"] == 2.0
    q = image_quality(img, lab, class_map=CMAP)
    pair = q["pairs"]["pore-active"]
    assert pair["contrast"] == 10.0
    assert pair["cnr"] == pytest.approx(10.0 / np.sqrt((1 + 4) / 2))
    assert pair["snr"] == pytest.approx(10.0)
    with pytest.raises(ShapeError):
        phase_statistics(img, lab[:, :3])


def test_fraction_vs_reference_users_and_mean():
    users = [np.array([2, 2, 0, 1]), np.array([2, 2, 2, 0])]  # active 0.50 and 0.75
    r = fraction_vs_reference(users, phase="active", reference=0.508, class_map=CMAP)
    per = r["per_segmentation"]
    assert per[0]["absolute_difference"] == pytest.approx(0.5 - 0.508)
    assert per[1]["relative_difference_percent"] == pytest.approx(100 * (0.75 - 0.508) / 0.508)
    assert r["mean"]["volume_fraction"] == pytest.approx(0.625)
    assert r["mean"]["std"] == pytest.approx(np.std([0.5, 0.75], ddof=1))
    with pytest.raises(InputError, match="0.508"):
        fraction_vs_reference(users, phase="active", reference=50.8, class_map=CMAP)
    with pytest.raises(InputError, match="not a class name"):
        fraction_vs_reference(users, phase="nmc", reference=0.5, class_map=CMAP)


def test_variability_constructed_example():
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 5:] = 2
    truth[:, 4] = 1
    a = truth.copy()
    b = truth.copy()
    b[:, 4] = 2          # user b calls the CBD column active: 10 % of voxels differ
    c = truth.copy()
    c[:2, 4] = 0         # user c: 2 % differ from a, 10 % from b... see matrix below
    v = variability(a, b, c, class_map=CMAP)
    fa = np.array([[0.4, 0.1, 0.5], [0.4, 0.0, 0.6], [0.42, 0.08, 0.5]])
    for i, k in enumerate(["pore", "cbd", "active"]):
        assert v["volume_fraction_mean"][k] == pytest.approx(fa[:, i].mean())
        assert v["volume_fraction_std"][k] == pytest.approx(fa[:, i].std(ddof=1))
    expected = [[0, 10, 2], [10, 0, 10], [2, 10, 0]]
    np.testing.assert_allclose(v["pairwise_percent_different"], expected)
    assert v["mean_percent_different"] == pytest.approx((10 + 2 + 10) / 3)
    agree = v["agreement"]
    assert agree.shape == truth.shape and agree[0, 0] == 1.0
    assert agree[0, 4] == pytest.approx(1 / 3) and agree[5, 4] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(agree, agreement_map([a, b, c]))
    assert v["percent_unanimous"] == pytest.approx(90.0)


def test_variability_bad_input():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(InputError, match="at least 2"):
        variability(a)
    with pytest.raises(ShapeError, match="shape"):
        variability(a, np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError, match="integer"):
        variability(a, np.full((4, 4), 0.5))
