"""Feature-set selection from held-out strokes, training on several labelled slices, and
their bad input (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import ShapeError
from electrode_ct.io import read, write
from electrode_ct.metrics.compare import compare
from electrode_ct.segment import forest_select as fs
from electrode_ct.segment.features import parse_features
from electrode_ct.segment.forest_train import stack_slices, train_forest
from electrode_ct.segment.scribbles import simulate_scribbles
from electrode_ct.volume import Volume


def _texture_slices(n: int = 3, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two phases with the SAME mean grey but different noise (σ 4 vs 20): only a texture
    feature separates them; smoothed grey values are pure noise with respect to the class."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, size, size), np.uint8)
    for z in range(n):
        blobs = ndi.gaussian_filter(rng.normal(size=(size, size)), 6)
        truth[z] = 1 + (blobs > 0)
    sigma = np.where(truth == 1, 4.0, 20.0)
    grey = 100.0 + rng.normal(size=truth.shape) * sigma
    return truth, grey.astype(np.float32)


def test_selection_picks_the_informative_family_on_a_texture_phantom():
    truth, grey = _texture_slices(n=1)
    scr = simulate_scribbles(truth, coverage=0.1, n_slices=1, style="uniform", seed=0)
    cands = {"smoothing": parse_features("gaussian:1,gaussian:3.5", mode="2d"),
             "texture": parse_features("std:1.6,std:3.5", mode="2d")}
    model = train_forest(grey, scr, features=cands, n_trees=20, n_jobs=1, oob=False)
    sel = model.report["feature_selection"]
    assert sel["chosen"] == "texture" and sel["folds"] == "strokes"
    scores = sel["held_out_iou"]
    assert scores["texture"] > scores["smoothing"] + 0.05
    assert model.config.names == ["std_1.6", "std_3.5"]
    # the chosen model segments a new image of the same kind
    t2, g2 = _texture_slices(n=1, seed=5)
    assert compare(model.predict(g2, n_jobs=1).labels, t2)["mean_iou"] > 0.8


def test_select_features_ranks_rows_not_names():
    """Synthetic rows: one candidate carries the class, the other is random numbers; the
    noisy one is listed first, so a tie-breaking bias towards it would show."""
    rng = np.random.default_rng(1)
    y = np.repeat([1, 2, 3], 400)
    fold = np.tile([0, 1], 600).astype(np.int8)
    informative = (y[:, None] + rng.normal(0, 0.3, (y.size, 2))).astype(np.float32)
    noise = rng.normal(size=(y.size, 2)).astype(np.float32)
    cfg = parse_features("gaussian:1,gaussian:2", mode="2d")
    name, scores = fs.select_features({"noise": (noise, cfg, 1.0),
                                       "informative": (informative, cfg, 1.0)},
                                      y, fold, augment=0.0)
    assert name == "informative"
    assert scores["informative"] > 0.8 and scores["noise"] < 0.5


def test_stroke_folds_keep_strokes_whole_and_every_class_in_each_fold():
    truth, _ = _texture_slices(n=1)
    scr = simulate_scribbles(truth, coverage=0.1, n_slices=1, style="perclass", seed=2)
    fold = fs.stroke_folds(scr, 2, seed=0)
    assert np.array_equal(fold >= 0, scr > 0)
    for v in (1, 2):
        comp, n = ndi.label(scr == v)
        if n >= 2:
            for c in range(1, n + 1):  # a stroke lies in one fold
                assert np.unique(fold[comp == c]).size == 1
        assert {0, 1} <= set(np.unique(fold[scr == v]).tolist())
    by_slice = fs.stroke_folds(np.stack([scr[0], 0 * scr[0], scr[0]]), by_slice=True)
    assert set(np.unique(by_slice[0])) == {-1, 0} and set(np.unique(by_slice[2])) == {-1, 1}
    assert (by_slice[1] == -1).all()


def test_several_labelled_slices_train_one_model_and_choose_by_slice():
    truth, grey = _texture_slices(n=3, seed=3)
    scr = simulate_scribbles(truth[:2], coverage=0.1, n_slices=2, style="uniform", seed=0)
    imgs = [Volume(grey[i], metadata={"source": f"g{i}.tif"}) for i in range(2)]
    labs = [Volume(scr[i], metadata={"source": f"s{i}.tif"}) for i in range(2)]
    img, lab = stack_slices(imgs, labs)
    assert img.shape == (2, 64, 64) and np.array_equal(lab.numpy(), scr)
    cands = {"smoothing": "gaussian:1,gaussian:3.5", "texture": "std:1.6,std:3.5"}
    model = train_forest(img, lab, features=cands, mode="2d", n_trees=20, n_jobs=1, oob=False)
    assert model.report["feature_selection"]["folds"] == "labelled slices"
    assert model.report["feature_selection"]["chosen"] == "texture"
    assert model.report["n_labelled"] == int(np.count_nonzero(scr))
    assert compare(model.predict(grey[2], n_jobs=1).labels, truth[2:])["mean_iou"] > 0.8


def test_cli_trains_on_several_slices_and_rejects_other_sizes(run_cli, tmp_path):
    truth, grey = _texture_slices(n=3, seed=4)
    scr = simulate_scribbles(truth, coverage=0.1, n_slices=3, style="uniform", seed=0)
    paths = []
    for i in range(2):
        paths += [tmp_path / f"g{i}.tif", tmp_path / f"s{i}.tif"]
        write(Volume(grey[i]), paths[-2])
        write(Volume(scr[i]), paths[-1])
    model = tmp_path / "m.forest"
    code, _, err = run_cli("segment", "train-forest", *paths, "--model", model,
                           "--features", "std:1.6,std:3.5", "--trees", "10", "--json")
    assert code == 0, err
    pred = tmp_path / "p.tif"
    write(Volume(grey[2]), tmp_path / "g2.tif")
    assert run_cli("segment", "predict", model, tmp_path / "g2.tif", pred)[0] == 0
    assert compare(read(pred).numpy(), truth[2:])["mean_iou"] > 0.8
    # a labelled slice of another size: one error line, exit 2, no model written
    write(Volume(grey[2][:40]), tmp_path / "small.tif")
    write(Volume(scr[2][:40]), tmp_path / "small_s.tif")
    bad = tmp_path / "bad.forest"
    code, out, err = run_cli("segment", "train-forest", *paths, tmp_path / "small.tif",
                             tmp_path / "small_s.tif", "--model", bad)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:")
    assert "small.tif" in lines[0] and "different sizes" in lines[0]
    assert "Traceback" not in err and not bad.exists()
    code, _, err = run_cli("segment", "train-forest", *paths, tmp_path / "small.tif",
                           "--model", bad)
    assert code == 2 and "pairs" in err and not bad.exists()
    # several pairs are one image's labels only: --seeded / --add need one image
    code, _, err = run_cli("segment", "train-forest", *paths, "--model", bad,
                           "--seeded", "ML1")
    assert code == 2 and err.count("error:") == 1 and "--seeded" in err and not bad.exists()


def test_stack_slices_names_the_odd_file():
    a = Volume(np.zeros((8, 8), np.float32), metadata={"source": "a.tif"})
    b = Volume(np.zeros((8, 9), np.float32), metadata={"source": "b.tif"})
    with pytest.raises(ShapeError, match="b.tif.*different sizes"):
        stack_slices([a, b], [a, b])
