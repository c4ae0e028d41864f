"""`ect segment predict` for every model kind: --2d, JSON keys, one-line errors; the shared
prediction signature (two_d, unknown options) of the CNN kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from electrode_ct.errors import ConfigError
from electrode_ct.io import read
from electrode_ct.segment.scribbles import simulate_scribbles


@pytest.fixture
def forest_files(tmp_path_factory, three_phase_phantom):
    from electrode_ct.segment.forest_train import train_forest

    truth, grey = three_phase_phantom
    root = tmp_path_factory.mktemp("forest")
    scr = simulate_scribbles(truth, coverage=0.05, n_slices=4, style="uniform", seed=1)
    model = train_forest(grey, scr, features="minimal", n_trees=10, n_jobs=1,
                         class_names=["pore", "cbd", "active"])
    tifffile.imwrite(root / "grey.tif", grey)
    return model, model.save(root / "m.forest"), root / "grey.tif"


def test_forest_predict_json_reports_the_prediction_range(run_cli, forest_files, tmp_path):
    model, path, img = forest_files
    out = tmp_path / "seg.tif"
    code, stdout, err = run_cli("segment", "predict", path, img, out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    want = model.predict(read(img))
    assert res["kind"] == "forest" and res["outputs"] == {"labels": str(out)}
    np.testing.assert_allclose(res["intensity_range"], want.intensity_range)
    np.testing.assert_array_equal(read(out).numpy(), want.labels)
    frac = {n: float(np.mean(want.labels == v)) for n, v in res["class_map"].items()}
    assert res["volume_fraction"] == pytest.approx(frac)


def test_two_d_with_a_three_d_forest_is_one_error_line(run_cli, forest_files, tmp_path):
    _, path, img = forest_files
    out = tmp_path / "seg.tif"
    code, stdout, err = run_cli("segment", "predict", path, img, out, "--2d")
    assert code == 2 and err.startswith("error: ") and "trained on 2-D features" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def cnn_model():
    """A tiny untrained (seeded) network: enough to tell slice-wise from tri-planar."""
    torch = pytest.importorskip("torch")
    from electrode_ct.segment.cnn.model import CNNModel, net_from_arch

    torch.manual_seed(0)
    arch = {"name": "lrcs", "channels": 4, "depth": 1, "kernel": 3}
    return CNNModel(net_from_arch(arch, 3).eval(), arch=arch, class_values=[1, 2, 3],
                    class_names=["pore", "cbd", "active"], normalisation={"mode": "image"})


@pytest.fixture
def volume(three_phase_phantom):
    return three_phase_phantom[1][:8, :24, :24].copy()


def test_cnn_two_d_predicts_z_slices(cnn_model, volume):
    per_slice = cnn_model.predict(volume, two_d=True, probabilities=True, threads=1)
    by_z = cnn_model.predict(volume, mode="slice", axis=0, probabilities=True, threads=1)
    np.testing.assert_array_equal(per_slice.probabilities, by_z.probabilities)
    default = cnn_model.predict(volume, probabilities=True, threads=1)  # tri-planar
    assert np.abs(default.probabilities - by_z.probabilities).max() > 1e-3
    with pytest.raises(ConfigError, match="two_d"):
        cnn_model.predict(volume, two_d=True, mode="triplanar")
    with pytest.raises(ConfigError, match="two_d"):
        cnn_model.predict(volume, two_d=True, axis=2)


def test_cnn_unknown_options_are_a_project_error(cnn_model, volume):
    for bad in ("block_shape", "transfroms", "adapt_bn", "priors"):
        with pytest.raises(ConfigError, match=f"cnn model: unknown prediction option.*{bad}"):
            cnn_model.predict(volume, **{bad: 1})


def test_cli_two_d_reaches_a_cnn_model(run_cli, cnn_model, volume, tmp_path):
    from electrode_ct.segment.cnn import _torch

    path = cnn_model.save(tmp_path / "m.cnn")
    tifffile.imwrite(tmp_path / "v.tif", volume)
    out, prob = tmp_path / "seg.tif", tmp_path / "prob.tif"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch, "DEFAULT_THREADS", 1)
        code, stdout, err = run_cli("segment", "predict", path, tmp_path / "v.tif", out,
                                    "--2d", "--probabilities", prob, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["kind"] == "cnn" and "intensity_range" not in res
    want = cnn_model.predict(volume, mode="slice", axis=0, probabilities=True, threads=1)
    np.testing.assert_array_equal(read(out).numpy(), want.labels)
    got = read(prob).numpy().reshape(want.probabilities.shape)
    np.testing.assert_allclose(got, want.probabilities, atol=1e-6)
