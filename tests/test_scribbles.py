"""Scribble simulation (coverage, slices, styles, corrections) and the forest CLI round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.segment.scribbles import (
    correction_scribbles,
    coverage_of,
    interior,
    merge_scribbles,
    scribble_slices,
    simulate_scribbles,
    threshold_seeds,
    uncertain_regions,
)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    z, y, x = np.mgrid[:21, :60, :60]
    ref = np.zeros((21, 60, 60), np.uint8)
    ref[(y - 30) ** 2 + (x - 30) ** 2 < 15 ** 2] = 2
    ref[x < 10] = 5
    return ref


def test_slices_central_and_equally_spaced():
    assert scribble_slices(21, 7).tolist() == [1, 4, 7, 10, 13, 16, 19]
    assert scribble_slices(21, 1).tolist() == [10]
    assert scribble_slices(3, 7).tolist() == [0, 1, 2]


@pytest.mark.parametrize("style", ["perclass", "uniform"])
@pytest.mark.parametrize("coverage", [0.1, 0.25])
def test_coverage_as_requested(reference, style, coverage):
    s = simulate_scribbles(reference, coverage=coverage, n_slices=7, style=style, seed=4)
    cov = coverage_of(s)
    assert cov["slices"] == scribble_slices(21, 7).tolist()
    assert cov["coverage_on_slices"] == pytest.approx(coverage, abs=0.002)
    assert sorted(np.unique(s).tolist()) == [0, 1, 2, 3]
    # labels agree with the reference (value order 0, 2, 5 -> 1, 2, 3)
    lut = np.array([1, 0, 2, 0, 0, 3])
    assert np.all(lut[reference[s > 0]] == s[s > 0])
    # same seed, same strokes; another seed, other strokes
    assert np.array_equal(s, simulate_scribbles(reference, coverage=coverage, style=style,
                                                seed=4))
    assert not np.array_equal(s, simulate_scribbles(reference, coverage=coverage, style=style,
                                                    seed=5))


def test_perclass_strokes_stay_away_from_borders(reference):
    s = simulate_scribbles(reference, coverage=0.1, style="perclass", seed=0)
    z = 10
    for v, lab in ((0, 1), (2, 2), (5, 3)):
        dist = ndi.distance_transform_edt(reference[z] == v)
        assert dist[s[z] == lab].min() > 3
    counts = np.bincount(s[z].ravel(), minlength=4)[1:]
    assert counts.max() - counts.min() <= 2  # the same share per class
    u = simulate_scribbles(reference, coverage=0.1, style="uniform", seed=0)
    border = ndi.morphological_gradient(reference[z], size=3) > 0
    assert np.any(border & (u[z] > 0))


def test_correction_adds_strokes_on_errors(reference):
    s = simulate_scribbles(reference, coverage=0.05, n_slices=3, seed=0)
    wrong = np.ones_like(reference)  # predicts class 1 everywhere
    c = correction_scribbles(reference, wrong, s, coverage=0.02, seed=1)
    new = (c > 0) & (s == 0)
    assert new.sum() > 0 and np.all(c[new] != 1)
    assert np.array_equal(c[s > 0], s[s > 0])


def test_bad_scribble_options(reference):
    with pytest.raises(InputError, match="coverage"):
        simulate_scribbles(reference, coverage=0)
    with pytest.raises(InputError, match="style"):
        simulate_scribbles(reference, style="random")


def test_cli_roundtrip_train_predict(tmp_path, run_cli, three_phase_phantom):
    truth, grey = three_phase_phantom
    img, ref = tmp_path / "grey.tif", tmp_path / "truth.tif"
    tifffile.imwrite(img, grey)
    tifffile.imwrite(ref, truth)
    scr, model = tmp_path / "scr.tif", tmp_path / "forest.model"
    code, out, err = run_cli("scribbles", ref, scr, "--coverage", "0.1", "--slices", "5",
                             "--style", "uniform", "--seed", "2", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["coverage_on_slices"] == pytest.approx(0.1, abs=0.002)
    assert len(info["slices"]) == 5
    code, out, err = run_cli("segment", "train-forest", img, scr, "--model", model,
                             "--features", "minimal", "--trees", "20",
                             "--class-names", "pore,cbd,active", "--json")
    assert code == 0, err
    assert json.loads(out)["class_names"] == ["pore", "cbd", "active"]
    seg, unc = tmp_path / "seg.tif", tmp_path / "unc.tif"
    code, out, err = run_cli("segment", "predict", model, img, seg, "--uncertainty", unc,
                             "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["class_map"] == {"pore": 1, "cbd": 2, "active": 3}
    from electrode_ct.io import read

    labels = read(seg)
    assert labels.class_map == {"pore": 1, "cbd": 2, "active": 3}
    acc = np.mean(labels.numpy() == truth + 1)
    assert acc > 0.95
    assert read(unc).shape == truth.shape
    # bad input: one line, exit 2, no output written
    code, out, err = run_cli("segment", "train-forest", img, scr, "--model",
                             tmp_path / "m2.model", "--class-names", "a,b,c,d")
    assert code == 2 and "class 4 ('d') has no scribbles" in err
    assert "Traceback" not in err and not (tmp_path / "m2.model").exists()
    code, _, err = run_cli("segment", "predict", tmp_path / "none.model", img, seg)
    assert code == 2 and "no such model file" in err


def test_perclass_margin_adapts_to_thin_phase():
    # a 2-px shell between two wide phases: no pixel is 3 px from its border, yet the
    # careful user must still paint it, and the wide phases keep their 3-px margin
    ref = np.zeros((64, 64), np.uint8)
    ref[:, 33:] = 2
    ref[:, 31:33] = 1
    s = simulate_scribbles(ref, coverage=0.1, style="perclass", seed=3)
    counts = np.bincount(s.ravel(), minlength=4)
    assert counts[2] > 0 and counts[1] > 0 and counts[3] > 0
    dist = ndi.distance_transform_edt(ref == 0)
    assert dist[s == 1].min() > 3
    assert np.all(ref[s == 2] == 1)


def test_interior_picks_largest_margin_that_fits():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    dist = ndi.distance_transform_edt(mask)
    assert np.array_equal(interior(mask, border_px=3, need=10), dist > 3)
    # needing more than the 3-px interior (576 px) relaxes to margin 2 (676 px)
    assert np.array_equal(interior(mask, border_px=3, need=600), dist > 2)
    assert interior(mask, border_px=3, need=10_000).sum() == mask.sum()


def test_threshold_seeds_and_uncertain_regions(three_phase_phantom):
    truth, grey = three_phase_phantom
    seeds = threshold_seeds(grey, [85.0, 160.0], variant="ML1")
    on = np.flatnonzero(np.any(seeds > 0, axis=(1, 2)))
    assert on.tolist() == [20]  # the central slice of 40
    lab = seeds[seeds > 0]
    assert np.mean(lab == truth[seeds > 0] + 1) > 0.99
    ml3 = threshold_seeds(grey, [85.0, 160.0], variant="ML3")
    assert np.any(ml3 > 0, axis=(1, 2)).all()
    unc = np.zeros((20, 20, 20), np.float32)
    unc[3:6, 3:6, 3:6] = 1.0
    unc[15:17, 15:17, 15:17] = 0.5
    regions = uncertain_regions(unc, n=3, size=3)
    assert len(regions) == 2  # nothing uncertain left after the two blobs
    assert (regions[0]["z"], regions[0]["y"], regions[0]["x"]) == (4, 4, 4)
    assert all(14 <= regions[1][k] <= 17 for k in "zyx")
    assert regions[0]["mean_uncertainty"] > regions[1]["mean_uncertainty"]


def test_merge_scribbles_draws_new_strokes_over_old():
    base = np.zeros((2, 4, 4), np.uint8)
    base[0, 0] = 1
    base[1, 1] = 2
    added = np.zeros_like(base)
    added[0, 0, :2] = 3  # repaints two of the old strokes' pixels
    added[1, 3] = 1
    got = merge_scribbles(base, added)
    want = base.copy()
    want[0, 0, :2] = 3
    want[1, 3] = 1
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint8
    with pytest.raises(ShapeError, match="differ in shape"):
        merge_scribbles(base, added[:1])
