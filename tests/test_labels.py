"""Label-volume utilities: x-runs, contact pairs and border labels against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.labels import border_labels, contact_pairs, label_runs


def blobs(shape=(13, 17, 19), n=12, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, n, shape).astype(np.uint32)
    return ndi.median_filter(lab, 3).astype(np.uint32)


def brute_pairs(lab: np.ndarray) -> set[tuple[int, int]]:
    out = set()
    for axis in range(lab.ndim):
        a = np.moveaxis(lab, axis, 0)
        for u, v in zip(a[:-1].ravel(), a[1:].ravel(), strict=True):
            if u and v and u != v:
                out.add((int(min(u, v)), int(max(u, v))))
    return out


@pytest.mark.parametrize("slab", [1, 200, 1 << 24])
def test_runs_rebuild_the_volume(slab):
    lab = blobs()
    rebuilt = np.zeros_like(lab)
    for r in label_runs(lab, slab_voxels=slab):
        assert (r.label != 0).all() and (r.length >= 1).all()
        for lbl, z, y, x0, n in zip(r.label, r.z, r.y, r.x0, r.length, strict=True):
            assert (rebuilt[z, y, x0:x0 + n] == 0).all()
            rebuilt[z, y, x0:x0 + n] = lbl
    assert np.array_equal(rebuilt, lab)


@pytest.mark.parametrize("slab", [1, 150, 1 << 24])
def test_contact_pairs_match_brute_force(slab):
    lab = blobs(seed=3)
    lab[lab == 5] = 4_000_000_000  # a large id
    pairs = contact_pairs(lab, slab_voxels=slab)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert {tuple(p) for p in pairs.tolist()} == brute_pairs(lab)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    two_d = lab[4]
    assert {tuple(p) for p in contact_pairs(two_d).tolist()} == brute_pairs(two_d)
    assert contact_pairs(np.zeros((3, 4, 5), np.uint8)).shape == (0, 2)


def test_contact_pairs_ignore_row_and_slice_wrap():
    lab = np.zeros((2, 3, 4), np.uint16)
    lab[0, 0, 3] = 1  # end of a row ...
    lab[0, 1, 0] = 2  # ... is not next to the start of the next row
    lab[0, 2, 1] = 3  # last row of slice 0 is not next to row 0 of slice 1
    lab[1, 0, 1] = 4
    assert contact_pairs(lab).tolist() == []
    with pytest.raises(InputError, match="2\\*\\*32"):
        contact_pairs(np.array([[1, 1 << 33]], np.int64))


def test_border_labels():
    lab = np.zeros((5, 6, 7), np.int32)
    lab[0, 2, 2] = 3
    lab[2, 2, 2] = 8  # interior
    lab[2, 5, 3] = 9
    lab[3, 3, 6] = 11
    assert border_labels(lab).tolist() == [3, 9, 11]
    assert border_labels(np.zeros((0, 3), np.uint8)).size == 0


def test_check_labels_accepts_integer_labels_and_names_the_bad_ones():
    from electrode_ct.errors import ShapeError
    from electrode_ct.labels import check_labels

    ok = np.array([[0, 2], [3, 0]], np.int16)
    assert check_labels(ok) is not None and check_labels(ok).dtype == np.int16
    assert check_labels(ok > 0).dtype == np.uint8
    with pytest.raises(InputError, match="seg.tif: a label volume must have an integer"):
        check_labels(ok.astype(np.float32), name="seg.tif")
    with pytest.raises(InputError, match=">= 0, got minimum -1"):
        check_labels(ok - 1)
    with pytest.raises(ShapeError, match="expected a 3-D label array"):
        check_labels(ok, ndim=(3,))
    with pytest.raises(InputError, match="empty"):
        check_labels(np.zeros((0, 4), np.uint8))
