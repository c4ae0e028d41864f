import numpy as np
import pytest

from electrode_ct.errors import ShapeError
from electrode_ct.metrics import compare, confusion_matrix


def test_hand_computed():
    seg = np.array([0, 1, 1, 1, 2, 2])
    ref = np.array([0, 0, 1, 1, 2, 1])
    r = compare(seg, ref)
    # class 1: tp=2, ref=3, seg=3 -> IoU 2/4, Dice 4/6
    assert r["iou"]["1"] == pytest.approx(0.5)
    assert r["dice"]["1"] == pytest.approx(2 / 3)
    assert r["iou"]["0"] == pytest.approx(0.5)
    assert r["iou"]["2"] == pytest.approx(0.5)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["percent_different"] == pytest.approx(100 * 2 / 6)
    assert r["volume_fraction_ref"]["1"] == pytest.approx(0.5)


def test_ignore_counts_prediction_of_ignored_value_as_wrong():
    seg = np.array([0, 0, 1, 2])
    ref = np.array([0, 1, 1, 2])
    r = compare(seg, ref, ignore=0)
    assert r["n_voxels"] == 3
    assert r["accuracy"] == pytest.approx(2 / 3)


def test_matches_sklearn_confusion():
    from sklearn.metrics import confusion_matrix as skcm

    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 1000), rng.integers(0, 4, 1000)
    mat, vals = confusion_matrix(a, b)
    np.testing.assert_array_equal(mat, skcm(b, a, labels=vals))


def test_shape_mismatch():
    with pytest.raises(ShapeError):
        compare(np.zeros(3, int), np.zeros(4, int))
