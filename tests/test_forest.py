"""Random-forest training/prediction: phantom accuracy, blockwise identity, model files,
the shared prediction signature (two_d, unknown options)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from electrode_ct.errors import ConfigError, InputError, ModelError, ShapeError
from electrode_ct.metrics.compare import compare
from electrode_ct.segment import forest_train as fo
from electrode_ct.segment.forest import ForestModel
from electrode_ct.segment.models import SegmentationModel, load_model
from electrode_ct.segment.scribbles import simulate_scribbles
from electrode_ct.volume import Volume

FAST = {"n_trees": 20, "features": "minimal", "n_jobs": 1}


@pytest.fixture(scope="module")
def phantom():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:32, :32, :32]
    truth = np.zeros((32, 32, 32), np.uint8)
    for cz, cy, cx, r in [(10, 10, 10, 7), (22, 21, 12, 8), (11, 22, 23, 6), (23, 10, 24, 5)]:
        d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        truth[(d <= r + 2) & (truth == 0)] = 1
        truth[d <= r] = 2
    grey = (np.array([50.0, 120.0, 200.0])[truth] + rng.normal(0, 8, truth.shape))
    return truth, grey.astype(np.float32)


@pytest.fixture(scope="module")
def trained(phantom):
    truth, grey = phantom
    scr = simulate_scribbles(truth, coverage=0.08, n_slices=4, style="uniform", seed=1)
    model = fo.train_forest(grey, scr, class_names=["pore", "cbd", "active"], **FAST)
    return model, scr


def test_one_percent_scribbles_reach_high_iou(phantom, trained):
    truth, grey = phantom
    model, scr = trained
    assert 0.009 < (scr > 0).mean() < 0.011  # 8 % of 4 of 32 slices = 1 % of the volume
    pred = model.predict(grey, uncertainty=True)
    res = compare(pred.labels, truth + 1)
    assert min(res["iou"].values()) >= 0.9
    assert pred.labels.dtype == np.uint8 and set(np.unique(pred.labels)) == {1, 2, 3}
    assert pred.uncertainty.shape == truth.shape
    # the uncertainty is highest at class borders
    from scipy import ndimage as ndi

    border = ndi.morphological_gradient(truth, size=3) > 0
    assert pred.uncertainty[border].mean() > 2 * pred.uncertainty[~border].mean()
    assert model.report["oob_accuracy"] > 0.9
    assert set(model.report["n_samples"]) == {"pore", "cbd", "active"}
    assert len(model.report["feature_importance"]) == model.config.n_features


def test_blockwise_prediction_identical(phantom, trained):
    _, grey = phantom
    model, _ = trained
    whole = model.predict(grey, probabilities=True, block_shape=(32, 32, 32))
    blocky = model.predict(grey, probabilities=True, block_shape=(12, 32, 13))
    np.testing.assert_array_equal(whole.labels, blocky.labels)
    np.testing.assert_allclose(whole.probabilities, blocky.probabilities, atol=1e-6)


def test_model_roundtrip(tmp_path, phantom, trained):
    _, grey = phantom
    model, _ = trained
    path = model.save(tmp_path / "m.ectmodel")
    back = load_model(path)
    assert back.class_values == [1, 2, 3] and back.class_names == ["pore", "cbd", "active"]
    assert back.config == model.config and back.spacing == model.spacing
    np.testing.assert_array_equal(back.predict(grey[:8]).labels, model.predict(grey[:8]).labels)
    head = json.loads(zipfile.ZipFile(path).read("model.json"))
    assert head["kind"] == "forest" and head["feature_names"] == model.config.names
    assert "package_version" in head and "training_spacing_um" in head


def test_incompatible_model_is_a_model_error(tmp_path, trained):
    model, _ = trained
    path = model.save(tmp_path / "m.ectmodel")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    head = json.loads(files["model.json"])
    for key, value, match in [("forest_format", 99, "format 99"),
                              ("feature_names", ["x"], "feature list"),
                              ("stage2.pkl", None, "old-format model")]:
        bad = dict(head, **{key: value}) if value is not None else head
        out = tmp_path / f"bad_{key}.ectmodel"
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("model.json", json.dumps(bad))
            for n, b in files.items():
                if n != "model.json":
                    zf.writestr(n, b)
            if value is None:  # a two-stage forest of an older release
                zf.writestr(key, b"not read")
        with pytest.raises(ModelError, match=match):
            load_model(out)
    with pytest.raises(ModelError, match="2-D image"):
        model.predict(np.ones((10, 10), np.float32))
    with pytest.raises(ModelError, match="anisotropy"):
        model.predict(Volume(np.random.default_rng(0).random((8, 8, 8)), spacing=(2, 1, 1)))


def test_bad_training_input(phantom):
    truth, grey = phantom
    scr = np.zeros(truth.shape, np.uint8)
    with pytest.raises(ShapeError, match="same shape"):
        fo.train_forest(grey, scr[:10], **FAST)
    with pytest.raises(InputError, match="no labelled voxels"):
        fo.train_forest(grey, scr, **FAST)
    scr[5, 5:10, 5:10] = 1
    scr[20, 5:10, 5:10] = 2
    with pytest.raises(InputError, match="class 3 .'active'. has no scribbles"):
        fo.train_forest(grey, scr, class_names=["pore", "cbd", "active"], **FAST)
    with pytest.raises(InputError, match="every voxel has the value"):
        fo.train_forest(np.full(truth.shape, 3.0), scr, **FAST)
    one = np.zeros_like(scr)
    one[5, 5:10, 5:10] = 1
    with pytest.raises(InputError, match="at least two classes"):
        fo.train_forest(grey, one, **FAST)


def test_two_d_training_on_a_slice(phantom):
    truth, grey = phantom
    sl, img = truth[16], grey[16]
    scr = simulate_scribbles(sl, coverage=0.1, style="perclass", seed=0)
    model = fo.train_forest(img, scr, **FAST)
    assert model.config.mode == "2d"
    pred = model.predict(img)
    assert pred.labels.shape == (1, 32, 32)
    assert compare(pred.labels[0], sl + 1)["mean_iou"] > 0.8
    # a 2-D model segments a volume slice by slice
    assert model.predict(grey[14:18]).labels.shape == (4, 32, 32)


def test_affine_features_equal_features_of_rescaled_image(phantom):
    from electrode_ct.segment import features as ft

    _, grey = phantom
    cfg = ft.parse_features("gaussian:1,log:1.6,ggm:1,dog:3.5,ste:1.6,hge:1.6,std:1.6",
                            normalise="none")
    a, b = 1.3, 2.0  # derivative kernels cut at 3σ leak ~0.3 % of an offset: keep b small
    f = ft.compute_features(grey, cfg).reshape(cfg.n_features, -1).T
    f2 = ft.compute_features(a * grey + b, cfg).reshape(cfg.n_features, -1).T
    got = fo.affine_features(f, cfg, a, b)
    scale = np.abs(f2).mean(axis=0)  # per feature
    assert np.max(np.abs(got - f2) / scale) < 1e-2
    assert not np.allclose(f, f2, rtol=1e-2)  # the transform is not the identity


def test_augmented_training_keeps_accuracy_and_reports_original_samples(phantom):
    truth, grey = phantom
    scr = simulate_scribbles(truth, coverage=0.1, n_slices=4, style="perclass", seed=2)
    model = fo.train_forest(grey, scr, augment=0.1, **FAST)
    assert sum(model.report["n_samples"].values()) == int((scr > 0).sum())
    assert model.report["augment"] == 0.1 and model.stage1.n_features_in_ == 4
    assert model.stage1.oob_decision_function_.shape[0] == 3 * int((scr > 0).sum())
    res = compare(model.predict(grey).labels, truth + 1)
    assert min(res["iou"].values()) >= 0.85
    with pytest.raises(Exception, match="augment"):
        fo.train_forest(grey, scr, augment=1.5, **FAST)


def test_offset_normalised_model_round_trips_and_ignores_grey_shifts(phantom, tmp_path):
    from electrode_ct.segment import features as ft

    truth, grey = phantom
    scr = simulate_scribbles(truth, coverage=0.05, n_slices=4, style="uniform", seed=1)
    cfg = ft.parse_features("minimal", normalise="offset")
    model = fo.train_forest(grey, scr, n_trees=20, features=cfg, n_jobs=1)
    back = load_model(model.save(tmp_path / "off.ectmodel"))
    assert back.config.normalise == "offset"
    pred = back.predict(grey).labels
    assert min(compare(pred, truth + 1)["iou"].values()) >= 0.85
    # a constant shift of every grey value (slice-to-slice drift) does not change labels
    # (float32 rounding may flip a voxel on a tie)
    assert np.mean(back.predict(grey + 40.0).labels == pred) > 0.999


def test_auto_normalised_model_corrects_a_gain_change_but_not_a_small_range_change(
        phantom, tmp_path):
    from electrode_ct.segment import features as ft

    truth, grey = phantom
    grey = grey.astype(np.float32)
    scr = simulate_scribbles(truth, coverage=0.05, n_slices=4, style="uniform", seed=1)
    model = fo.train_forest(grey, scr, n_trees=20, features="minimal", n_jobs=1)
    assert model.config.normalise == "auto"  # the default
    lo, hi = np.percentile(grey, [0.5, 99.5])
    assert model.reference_width == pytest.approx(hi - lo, rel=0.02)  # subsampled range
    back = load_model(model.save(tmp_path / "auto.ectmodel"))
    assert back.reference_width == pytest.approx(model.reference_width)
    pred = back.predict(grey).labels
    assert min(compare(pred, truth + 1)["iou"].values()) >= 0.85
    # another scan: gain x2.5 and an offset -> rescaled to the training grey scale
    other = grey * 2.5 + 30.0
    scaled = back.predict(other)
    assert np.mean(scaled.labels == pred) > 0.999
    lo, hi = scaled.intensity_range  # the range travels with the prediction
    assert hi - lo == pytest.approx(2.5, rel=0.02)
    # the same image under a pure-shift model is wrong: the test can fail
    off = fo.train_forest(grey, scr, n_trees=20, n_jobs=1,
                          features=ft.parse_features("minimal", normalise="offset"))
    assert np.mean(off.predict(other).labels == pred) < 0.95
    # a 1.2x wider range stays within the tolerance: grey scale kept (a pure shift)
    lo, hi = back.predict(grey * 1.2).intensity_range
    assert hi - lo == 1.0
    assert not hasattr(back, "last_range")  # nothing is left on the model


def test_unknown_or_retired_prediction_options_raise(phantom, trained):
    _, grey = phantom
    model, _ = trained
    assert isinstance(model, SegmentationModel) and model.prediction_options == (
        "block_shape", "n_jobs")
    for bad in ({"blok_shape": (8, 8, 8)}, {"transforms": 4}, {"adapt_priors": True}):
        with pytest.raises(ConfigError, match=f"unknown prediction option.*{next(iter(bad))}"):
            model.predict(grey[:8], **bad)
    # the forest's own options still work
    assert model.predict(grey[:8], block_shape=(8, 16, 16), n_jobs=1).labels.shape == (8, 32, 32)


def test_two_d_prediction_needs_a_two_d_model(phantom, trained):
    truth, grey = phantom
    model, _ = trained  # 3-D features
    with pytest.raises(ModelError, match="trained on 2-D features"):
        model.predict(grey, two_d=True)
    scr = simulate_scribbles(truth, coverage=0.1, n_slices=4, style="uniform", seed=0)
    from electrode_ct.segment.features import parse_features

    cfg = parse_features("minimal", mode="2d", normalise="none")  # no per-image range
    flat = fo.train_forest(grey, scr, features=cfg, n_trees=20, n_jobs=1)
    per_slice = flat.predict(grey, two_d=True, probabilities=True)
    np.testing.assert_array_equal(per_slice.labels, flat.predict(grey).labels)
    # every slice is segmented on its own: slice 5 alone gives the same probabilities
    alone = flat.predict(grey[5:6], two_d=True, probabilities=True).probabilities
    np.testing.assert_allclose(per_slice.probabilities[:, 5:6], alone, atol=1e-6)


def test_prediction_signature_is_shared_by_every_kind():
    import inspect

    from electrode_ct.segment.models import SegmentationModel as Protocol_

    want = inspect.signature(Protocol_.predict)
    assert inspect.signature(ForestModel.predict) == want
    torch = pytest.importorskip("torch")  # noqa: F841
    from electrode_ct.segment.cnn.model import CNNModel

    assert inspect.signature(CNNModel.predict) == want
