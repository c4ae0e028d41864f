"""``ect segment train-cnn --compare-forest``: the forest on the same labels, both scored on
the validation slice; the bad inputs of issue #23 (one ``error:`` line each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

from test_cnn import one_thread, phantom_slice  # noqa: E402, F401 (module fixture)
from test_cnn_cli import TINY_ARGS, files  # noqa: E402, F401 (fixture)

WEAK = [*TINY_ARGS[:6], "--patch", "24", "--patches-per-epoch", "8", "--epochs", "1",
        "--batch-size", "8", "--members", "1", "--ema", "0"]
"""A CNN trained for one step of 8 patches: far below the forest on the phantom."""


def _val_iou(model, image, labels):
    from electrode_ct.metrics.compare import compare

    pred = model.predict(image).labels.reshape(labels.shape)
    return compare(pred[labels != 0], labels[labels != 0])["mean_iou"]


def test_compare_forest_scores_both_and_flags_a_weak_cnn(run_cli, files, tmp_path):  # noqa: F811
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.models import load_model

    model = tmp_path / "m.cnn"
    code, out, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model",
                             model, "--val", files["vimg"], files["vlab"], *WEAK,
                             "--compare-forest", "--json")
    assert code == 0, err
    cmp = json.loads(out)["forest_comparison"]
    img, lab = tifffile.imread(files["img"]), tifffile.imread(files["lab"])
    vimg, vlab = tifffile.imread(files["vimg"]), tifffile.imread(files["vlab"])
    # both scores are those of the two models on the validation slice, recomputed here
    forest = train_forest(img, lab, seed=0, n_jobs=2)
    assert cmp["forest_val_mean_iou"] == pytest.approx(_val_iou(forest, vimg, vlab))
    assert cmp["forest_val_mean_iou"] > 0.85  # the phantom is easy for the forest
    saved = load_model(model)
    assert cmp["cnn_val_mean_iou"] == pytest.approx(_val_iou(saved, vimg, vlab))
    assert cmp["margin"] == pytest.approx(cmp["cnn_val_mean_iou"] - cmp["forest_val_mean_iou"])
    assert cmp["cnn_beats_forest"] is False and "does not beat a forest" in cmp["warning"]
    assert "warning: the CNN does not beat a forest" in err
    assert saved.training["forest_comparison"]["forest_val_mean_iou"] == pytest.approx(
        cmp["forest_val_mean_iou"])


def test_compare_forest_no_flag_when_the_model_wins():
    """The flag follows the margin: a model fitted on the validation slice itself beats the
    forest fitted on the training slice there, and is not flagged."""
    from electrode_ct.segment.cnn.versus_forest import compare_with_forest
    from electrode_ct.segment.forest_train import train_forest

    img, lab = phantom_slice(3, size=48)
    vimg, vlab = phantom_slice(4, size=48)
    insider = train_forest(vimg, vlab, seed=1, n_jobs=1)
    cmp = compare_with_forest(insider, img, lab, (vimg, vlab), n_jobs=1)
    assert cmp["cnn_val_mean_iou"] == pytest.approx(_val_iou(insider, vimg, vlab))
    assert cmp["cnn_val_mean_iou"] > cmp["forest_val_mean_iou"]
    assert cmp["cnn_beats_forest"] is True and cmp["warning"] is None


@pytest.mark.parametrize("case", ["no_val", "val_classes", "init_classes", "val_size"])
def test_compare_forest_bad_input(run_cli, files, tmp_path, case):  # noqa: F811
    args = ["segment", "train-cnn", files["img"], files["lab"], "--model", tmp_path / "x.cnn",
            *WEAK]
    if case == "no_val":
        args += ["--compare-forest"]
        want = "--compare-forest: needs validation labels"
    elif case == "val_classes":
        vlab = tifffile.imread(files["vlab"])
        tifffile.imwrite(tmp_path / "v2.tif", np.where(vlab == 3, 1, vlab).astype(np.uint8))
        args += ["--val", files["vimg"], tmp_path / "v2.tif", "--compare-forest"]
        want = "v2.tif: classes [1, 2] differ from the training labels' classes [1, 2, 3]"
    elif case == "init_classes":
        lab = tifffile.imread(files["lab"])
        tifffile.imwrite(tmp_path / "two.tif", np.where(lab == 3, 2, lab).astype(np.uint8))
        code, _, err = run_cli("segment", "train-cnn", files["img"], tmp_path / "two.tif",
                               "--model", tmp_path / "two.cnn", *WEAK)
        assert code == 0, err
        args += ["--init", tmp_path / "two.cnn"]
        want = "--init: the base model has 2 classes"
    else:
        tifffile.imwrite(tmp_path / "vsmall.tif", np.ones((40, 48), np.uint8))
        args += ["--val", files["vimg"], tmp_path / "vsmall.tif", "--compare-forest"]
        want = "do not match the image"
    code, _, err = run_cli(*args)
    assert code == 2, err
    assert err.startswith("error: ") and want in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.cnn").exists()


def test_pipeline_reports_the_stored_comparison(run_cli, files, tmp_path):  # noqa: F811
    """steps.segment.compare_forest: the model's comparison goes to the segment summary and
    the report shows both scores and the flag; a model without one is a config error."""
    from electrode_ct.errors import ConfigError
    from electrode_ct.pipeline import parse_config, run_pipeline
    from electrode_ct.segment.models import load_model

    model, plain = tmp_path / "m.cnn", tmp_path / "plain.cnn"
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model", model,
                           "--val", files["vimg"], files["vlab"], *WEAK, "--compare-forest",
                           "--2d")
    assert code == 0, err
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model", plain,
                           *WEAK, "--2d")
    assert code == 0, err
    grey = np.stack([phantom_slice(s, size=48)[0] for s in (5, 6)])
    tifffile.imwrite(tmp_path / "g.tif", grey)
    off = {"enabled": False}

    def run(path, out):
        cfg = parse_config({"input": {"grey": str(tmp_path / "g.tif"), "voxel_size": 1.0},
                            "output": str(tmp_path / out),
                            "steps": {"segment": {"method": "cnn", "model": str(path),
                                                  "compare_forest": True, "two_d": True},
                                      "particles": off, "measure": off, "metrics": off,
                                      "stats": off}})
        run_pipeline(cfg, quiet=True)
        return tmp_path / out

    out = run(model, "run")
    man = json.loads((out / "provenance.json").read_text())
    got = man["steps"]["segment"]["summary"]["forest_comparison"]
    stored = load_model(model).training["forest_comparison"]
    assert got["forest_val_mean_iou"] == pytest.approx(stored["forest_val_mean_iou"])
    assert got["cnn_val_mean_iou"] == pytest.approx(stored["cnn_val_mean_iou"])
    html = (out / "report.html").read_text()
    assert "CNN against a forest" in html and "does not beat a forest" in html
    assert f"{stored['forest_val_mean_iou']:.3g}"[:4] in html
    with pytest.raises(ConfigError, match="carries no forest comparison"):
        run(plain, "run2")


def test_compare_forest_volume_labels_2d_validation(run_cli, files, tmp_path):  # noqa: F811
    """Labels on one slice of a volume, a 2-D validation slice: the forest uses 2-D
    features, so it can segment the validation image."""
    img, lab = tifffile.imread(files["img"]), tifffile.imread(files["lab"])
    vol = np.stack([phantom_slice(7, size=48)[0], img, phantom_slice(8, size=48)[0]])
    sparse = np.stack([np.zeros_like(lab), lab, np.zeros_like(lab)])
    tifffile.imwrite(tmp_path / "vol.tif", vol)
    tifffile.imwrite(tmp_path / "vlab3.tif", sparse)
    code, out, err = run_cli("segment", "train-cnn", tmp_path / "vol.tif", tmp_path / "vlab3.tif",
                             "--model", tmp_path / "v.cnn", "--val", files["vimg"], files["vlab"],
                             *WEAK, "--2d", "--compare-forest", "--json")
    assert code == 0, err
    assert json.loads(out)["forest_comparison"]["forest_val_mean_iou"] > 0.85


def test_pipeline_compare_forest_needs_cnn(tmp_path):
    from electrode_ct.errors import ConfigError
    from electrode_ct.pipeline import parse_config

    with pytest.raises(ConfigError, match="compare_forest needs method 'cnn'"):
        parse_config({"input": {"grey": str(tmp_path / "g.tif"), "voxel_size": 1.0},
                      "output": str(tmp_path / "o"),
                      "steps": {"segment": {"method": "threshold", "compare_forest": True}}})
