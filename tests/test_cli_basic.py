import json

import numpy as np
import tifffile


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("electrode-ct ")


def test_info_json_real_sample(run_cli):
    from electrode_ct.data import path

    code, out, _ = run_cli("info", path("nmc1cal.tif"), "--json", "--voxel-size", "0.398")
    assert code == 0
    d = json.loads(out)
    assert d["format"] == "tiff" and d["shape"] == [75, 75, 75] and d["dtype"] == "uint16"
    assert d["spacing_um"] == [0.398] * 3
    assert d["min"] == 12471 and d["max"] == 48892


def test_info_missing_file(run_cli, tmp_path):
    code, out, err = run_cli("info", tmp_path / "nope.tif")
    assert code == 2 and "nope.tif" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_convert_roundtrip_anisotropic(run_cli, tmp_path):
    a = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    tifffile.imwrite(tmp_path / "a.tif", a)
    code, _, err = run_cli("convert", tmp_path / "a.tif", tmp_path / "b.npy",
                           "--voxel-size", "2", "0.5", "0.5")
    assert code == 0, err
    from electrode_ct.io import read

    v = read(tmp_path / "b.npy")
    np.testing.assert_array_equal(v.numpy(), a)
    assert v.spacing == (2.0, 0.5, 0.5)


def test_noise_estimate_on_flat_noise():
    from electrode_ct.inspect import noise_sigma

    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (64, 64, 64))
    img[:, :, 32:] += 400  # a step: structure must not inflate the estimate
    assert abs(noise_sigma(img, quantile=0.5) - 5) < 0.3
