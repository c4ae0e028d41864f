"""CLI: ect segment train-cnn / ensemble, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

from test_cnn import one_thread, phantom_slice  # noqa: E402, F401 (module fixture)

TINY_ARGS = ["--channels", "4", "--depth", "1", "--kernel", "3", "--patch", "24",
             "--patches-per-epoch", "16", "--epochs", "2", "--batch-size", "8", "--members", "1"]


@pytest.fixture
def files(tmp_path):
    img, lab = phantom_slice(0, size=48)
    vimg, vlab = phantom_slice(1, size=48)
    paths = {}
    for name, arr in [("img", img), ("lab", lab), ("vimg", vimg), ("vlab", vlab)]:
        paths[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(paths[name], arr)
    return paths


def test_train_cnn_with_val_pair_and_predict(run_cli, files, tmp_path):
    from electrode_ct.segment.models import load_model

    model = tmp_path / "m.cnn"
    code, out, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model",
                             model, "--val", files["vimg"], files["vlab"], *TINY_ARGS,
                             "--class-names", "pore,cbd,active", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs_run"] == 2 and len(summary["history"]) == 2
    assert summary["class_names"] == ["pore", "cbd", "active"]
    assert np.isfinite(summary["history"][0]["val_mean_iou"])
    m = load_model(model)
    pred = m.predict(tifffile.imread(files["img"]))
    assert pred.labels.shape == (1, 48, 48)


def test_train_cnn_val_image_labels_form_and_init(run_cli, files, tmp_path):
    m0, m1 = tmp_path / "m0.cnn", tmp_path / "m1.cnn"
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model", m0,
                           "--val-image", files["vimg"], "--val-labels", files["vlab"],
                           "--arch", "lrcs", *TINY_ARGS)
    assert code == 0, err
    code, _, err = run_cli("segment", "train-cnn", files["vimg"], files["vlab"], "--model", m1,
                           "--init", m0, *TINY_ARGS)
    assert code == 0, err
    from electrode_ct.segment.models import read_header

    assert read_header(m1)["arch"]["name"] == "lrcs"


def test_ensemble_cli_writes_outputs(run_cli, files, tmp_path):
    out = tmp_path / "ens"
    code, stdout, err = run_cli("segment", "ensemble", files["img"], files["lab"], "--n", "2",
                                "--out", out, "--channels", "4", "--patch", "24",
                                "--patches-per-epoch", "16", "--epochs", "1",
                                "--frequency-n", "2", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert len(res["summary"]) == 3
    for name in ["member_00.model", "member_01.model", "segmentation.tif", "disagreement.tif",
                 "interface_frequency.tif", "members.parquet", "summary.parquet",
                 "ensemble.json"]:
        assert (out / name).exists(), name
    from electrode_ct.io import read_table

    members = read_table(out / "members.parquet")
    assert len(members) == 6 and set(members["member"]) == {0, 1}
    assert members["volume_fraction"].groupby(members["member"]).sum().round(6).eq(1).all()


def test_train_cnn_members_and_tta_reach_segment_predict(run_cli, files, tmp_path):
    from electrode_ct.segment.models import load_model, read_header

    model, out = tmp_path / "e.cnn", tmp_path / "seg.tif"
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model", model,
                           *TINY_ARGS, "--members", "2", "--tta", "4", "--ema", "0.9",
                           "--keep", "best")
    assert code == 0, err
    head = read_header(model)
    assert head["members"] == 2 and head["prediction"]["transforms"] == 4
    assert head["training"]["config"]["ema"] == 0.9
    assert head["training"]["config"]["keep"] == "best"
    code, _, err = run_cli("segment", "predict", model, files["vimg"], out)
    assert code == 0, err
    # ect segment predict applies the stored defaults: both members, 4 transforms
    m = load_model(model)
    img = tifffile.imread(files["vimg"])
    want = m.predict(img, transforms=4).labels
    np.testing.assert_array_equal(tifffile.imread(out).reshape(want.shape), want)
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model",
                           tmp_path / "bad.cnn", *TINY_ARGS, "--tta", "9")
    assert code == 2 and "transforms 9: expected 1 to 8" in err
    assert not (tmp_path / "bad.cnn").exists()
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model",
                           tmp_path / "bad.cnn", *TINY_ARGS, "--ema", "1")
    assert code == 2 and "ema 1.0: expected a decay 0 <= value < 1" in err
    assert not (tmp_path / "bad.cnn").exists()


@pytest.mark.parametrize("case", ["shape", "single", "patch", "cuda", "kind"])
def test_cli_bad_input_one_line_errors(run_cli, files, tmp_path, case):
    import torch

    from electrode_ct.segment.models import write_archive

    args = ["segment", "train-cnn", files["img"], files["lab"], "--model", tmp_path / "x.cnn",
            *TINY_ARGS]
    if case == "shape":
        tifffile.imwrite(tmp_path / "small.tif", np.ones((40, 48), np.uint8))
        args[3] = tmp_path / "small.tif"
        want = "do not match the image"
    elif case == "single":
        tifffile.imwrite(tmp_path / "one.tif", np.ones((48, 48), np.uint8))
        args[3] = tmp_path / "one.tif"
        want = "at least 2 labelled classes"
    elif case == "patch":
        args += ["--patch", "64"]
        want = "larger than a training image"
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        args += ["--device", "cuda"]
        want = "use --device cpu"
    else:
        other = write_archive(tmp_path / "f.model", {"kind": "forest", "class_values": [1, 2],
                                                      "class_names": ["a", "b"]}, {})
        args += ["--init", other]
        want = "expected a 'cnn' model"
    code, _, err = run_cli(*args)
    assert code == 2
    assert err.startswith("error: ") and want in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.cnn").exists()


@pytest.mark.parametrize("retired", [["--label-smoothing", "0.1"], ["--priors", "em"],
                                     ["--distill"], ["--unlabelled", "x.tif"],
                                     ["--patience", "2"], ["--normalisation", "slice"]])
def test_train_cnn_refuses_retired_options(run_cli, files, tmp_path, retired):
    """Options measured without gain were removed (docs/cnn.md): refused, nothing written."""
    model = tmp_path / "r.cnn"
    code, _, err = run_cli("segment", "train-cnn", files["img"], files["lab"], "--model",
                           model, *TINY_ARGS, *retired)
    assert code == 2 and retired[0].lstrip("-") in err
    assert not model.exists()


def test_ensemble_predicts_a_volume_and_scores_test_slices(run_cli, files, tmp_path):
    out = tmp_path / "ens"
    vol = tmp_path / "vol.tif"
    tifffile.imwrite(vol, np.stack([tifffile.imread(files["vimg"])] * 2))
    code, stdout, err = run_cli("segment", "ensemble", files["img"], files["lab"], "--n", "2",
                                "--out", out, "--channels", "4", "--patch", "24",
                                "--patches-per-epoch", "16", "--epochs", "1", "--2d",
                                "--frequency-n", "1", "--predict", vol,
                                "--test-image", files["vimg"], "--test-labels", files["vlab"],
                                "--test-image", files["img"], "--test-labels", files["lab"],
                                "--class-names", "pore,cbd,active", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    pred, test = res["predicted"], res["test"]
    assert set(pred["volume_fraction"]) == {"pore", "cbd", "active"}
    assert sum(pred["volume_fraction"].values()) == pytest.approx(1.0)
    for key in ("volume_fraction", "surface_area_um2", "interface_voxel_percent"):
        assert set(pred[f"{key}_std"]) == set(pred[key]) and set(pred[f"{key}_ci95"]) == set(
            pred[key])
    assert {"pore-cbd", "pore-active", "cbd-active", "any"} == set(pred["interface_voxel_percent"])
    assert set(pred["interface_position"]) == {"pore-cbd", "pore-active", "cbd-active"}
    assert test["n_images"] == 2 and test["n_members"] == 2
    assert 0 <= test["mean_iou"] <= 1 and test["mean_iou_std"] >= 0
    # the members' own IoUs in the JSON give the reported mean
    assert test["mean_iou"] == pytest.approx(np.mean(test["members"]["mean_iou"]))
    for name in ("predicted_segmentation.tif", "predicted_disagreement.tif"):
        assert tifffile.imread(out / name).shape == (2, 48, 48)
    for name in ("predicted_interface_positions.png", "test_interface_positions.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "ensemble.json").read_text())["test"]["inputs"] == [
        str(files["vimg"]), str(files["img"])]


@pytest.mark.parametrize("case", ["one", "unpaired", "shape"])
def test_ensemble_bad_input_one_line(run_cli, files, tmp_path, case):
    out = tmp_path / "ens"
    args = ["segment", "ensemble", files["img"], files["lab"], "--out", out, "--epochs", "1"]
    if case == "one":
        args += ["--n", "1"]
        want = "one member has no spread to report"
    elif case == "unpaired":
        args += ["--test-image", files["vimg"]]
        want = "one labels file per test image"
    else:
        tifffile.imwrite(tmp_path / "small.tif", np.ones((40, 48), np.uint8))
        args += ["--test-image", files["vimg"], "--test-labels", tmp_path / "small.tif"]
        want = "do not match the test image"
    code, _, err = run_cli(*args)
    assert code == 2 and want in err and err.count("\n") == 1, err
    assert not out.exists()
