"""Instance metrics on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.instances import contingency, match_instances, slice_instances


def blocks(n: int = 4) -> np.ndarray:
    ref = np.zeros((10, 10, 10 * n), np.uint32)
    for i in range(n):
        ref[2:8, 2:8, 10 * i + 2: 10 * i + 8] = i + 1
    return ref


def test_perfect_and_relabelled():
    ref = blocks()
    pred = np.where(ref > 0, ref + 100, 0)  # same particles, other ids
    m = match_instances(pred, ref)
    assert (m["precision"], m["recall"], m["f1"], m["ap50"], m["ap"]) == (1, 1, 1, 1, 1)
    assert m["splits"] == m["merges"] == 0 and m["n_pred"] == m["n_ref"] == 4


def test_split_merge_and_missing():
    ref = blocks()
    pred = ref.copy()
    pred[2:8, 2:8, 6:8] = 50  # particle 1 split: pieces of 2/3 (IoU 0.67) and 1/3
    pred[pred == 3] = 2  # particles 2 and 3 merged (IoU just below 0.5 with each)
    pred[0, 0, 15] = 2
    pred[pred == 4] = 0  # particle 4 missed
    m = match_instances(pred, ref)
    assert m["splits"] == 1 and m["merges"] == 1
    assert m["n_pred"] == 3 and m["n_ref"] == 4
    assert m["tp"] == 1 and m["fn"] == 3 and m["fp"] == 2
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 4)


def test_ap_with_confidences():
    ref = blocks()
    pred = ref.copy()
    pred[2:8, 2:8, 32:38] = 0
    pred[2:8, 2:8, 33:34] = 4  # a poor detection of particle 4 (IoU 1/6)
    pred[0, 0, 0] = 9  # a false positive speck
    good = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.2, 9: 0.1}
    m = match_instances(pred, ref, scores=good)
    # three true positives ranked first: precision 1 up to recall 0.75, then nothing
    assert m["ap50"] == pytest.approx(76 / 101)
    bad = {1: 0.1, 2: 0.8, 3: 0.7, 4: 0.2, 9: 0.95}
    assert match_instances(pred, ref, scores=bad)["ap50"] < m["ap50"]
    assert m["precision"] == pytest.approx(3 / 5) and m["recall"] == pytest.approx(3 / 4)
    assert m["pr_curve"]["recall"][:3] == pytest.approx([0.25, 0.5, 0.75])


def test_ap_over_iou_thresholds():
    ref = blocks(1)
    pred = ref.copy()
    pred[2:8, 2:8, 2:3] = 0  # IoU 5/6 = 0.833: matched up to threshold 0.80
    m = match_instances(pred, ref)
    assert m["ap50"] == 1.0
    assert m["ap"] == pytest.approx(7 / 10)  # thresholds .50 .. .80 of 10
    t = contingency(pred, ref)
    assert t["iou"][0] == pytest.approx(5 / 6)


def test_slice_metrics_and_errors():
    ref = blocks()
    pred = ref.copy()
    pred[pred == 3] = 2
    s = slice_instances(pred, ref, n_slices=4, seed=1)
    assert len(s["slices"]) == 4 and s["axis"] == 0
    sections = sum(len(np.unique(ref[k])) - 1 for k in s["slices"])
    assert s["n_ref"] == sections and s["merges"] >= 1
    with pytest.raises(ShapeError):
        match_instances(pred[1:], ref)
    with pytest.raises(InputError, match="integer"):
        match_instances(pred.astype(float), ref)
    empty = match_instances(np.zeros_like(ref), ref)
    assert empty["n_pred"] == 0 and empty["recall"] == 0 and empty["ap"] == 0
