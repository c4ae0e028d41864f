"""CLI: filter, crop, resample, segment threshold/watershed/kmeans, compare, variability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from conftest import SEGMENTPY
from electrode_ct.io import read, write
from electrode_ct.metrics.compare import compare
from electrode_ct.volume import Volume


@pytest.fixture
def phantom_files(tmp_path, three_phase_phantom):
    truth, grey = three_phase_phantom
    g, t = tmp_path / "grey.tif", tmp_path / "truth.tif"
    write(Volume(grey, spacing=(0.5, 0.5, 0.5)), g)
    write(Volume(truth, spacing=(0.5, 0.5, 0.5)).with_class_map({"pore": 0, "cbd": 1,
                                                                 "active": 2}), t)
    return tmp_path, g, t, truth, grey


def test_filter_crop_resample(run_cli, phantom_files):
    d, g, _, _, grey = phantom_files
    out = d / "g.tif"
    code, _, err = run_cli("filter", g, out, "--method", "gaussian", "--sigma", "1", "--um")
    assert code == 0, err
    np.testing.assert_allclose(read(out).numpy(), ndi.gaussian_filter(grey, 2.0), rtol=1e-5)
    code, _, err = run_cli("filter", g, d / "n.tif", "--method", "normalise", "--dtype", "uint8")
    assert code == 0 and read(d / "n.tif").dtype == np.uint8
    code, _, _ = run_cli("crop", g, d / "c.tif", "--z", "2:10", "--x", "5:")
    c = read(d / "c.tif")
    assert code == 0 and c.shape == (8, 40, 35)
    np.testing.assert_array_equal(c.numpy(), grey[2:10, :, 5:])
    assert c.origin == pytest.approx((1.0, 0.0, 2.5))
    code, _, _ = run_cli("resample", g, d / "r.tif", "--voxel-size", "1", "0.5", "0.5")
    r = read(d / "r.tif")
    assert code == 0 and r.shape == (20, 40, 40) and r.spacing == pytest.approx((1, 0.5, 0.5))


def test_segment_commands_and_compare(run_cli, phantom_files):
    d, g, t, truth, _ = phantom_files
    for args in (("threshold", "--method", "multiotsu", "--classes", "3"),
                 ("watershed", "--low", "80", "150", "--high", "90", "170"),
                 ("kmeans", "--classes", "3")):
        out = d / f"{args[0]}.tif"
        code, stdout, err = run_cli("segment", args[0], g, out, *args[1:], "--json")
        assert code == 0, err
        summary = json.loads(stdout)
        assert summary["class_map"] == {"pore": 0, "cbd": 1, "active": 2}
        seg = read(out)
        assert seg.class_map == {"pore": 0, "cbd": 1, "active": 2}
        assert compare(seg.numpy(), truth)["mean_iou"] >= 0.95
    code, stdout, _ = run_cli("compare", d / "threshold.tif", t, "--json")
    res = json.loads(stdout)
    assert code == 0
    for key in ("accuracy", "mean_iou", "iou", "dice", "volume_fraction",
                "volume_fraction_ref", "percent_different"):
        assert key in res
    assert set(res["iou"]) == {"pore", "cbd", "active"} and res["mean_iou"] >= 0.95


def test_variability_cli(run_cli, phantom_files):
    d, g, t, truth, _ = phantom_files
    for off in ("-10", "10"):
        run_cli("segment", "threshold", g, d / f"o{off}.tif", "--method", "multiotsu",
                "--offset", off)
    code, stdout, err = run_cli("variability", t, d / "o-10.tif", d / "o10.tif", "--json",
                                "--reference", "active=50.8%", "--agreement", d / "agree.tif")
    assert code == 0, err
    v = json.loads(stdout)
    for key in ("volume_fraction_mean", "volume_fraction_std", "pairwise_percent_different",
                "mean_percent_different"):
        assert key in v
    m = np.array(v["pairwise_percent_different"])
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    assert v["mean_percent_different"] == pytest.approx(m[np.triu_indices(3, 1)].mean())
    assert v["reference"]["reference"] == pytest.approx(0.508)
    agree = read(d / "agree.tif").numpy()
    assert agree.shape == truth.shape and agree.max() == 1.0


def test_two_d_on_segmentpy_slice(run_cli, tmp_path):
    src = SEGMENTPY / "100.tif"
    out = tmp_path / "s.tif"
    code, stdout, err = run_cli("segment", "threshold", src, out, "--method", "multiotsu",
                                "--classes", "3", "--2d", "--json")
    assert code == 0, err
    seg = tifffile.imread(out)
    img = tifffile.imread(src)
    assert seg.shape == img.shape and set(np.unique(seg)) == {0, 1, 2}
    means = [img[seg == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]
    assert read(out).class_map == {"pore": 0, "cbd": 1, "active": 2}


@pytest.mark.parametrize("args, match", [
    (("segment", "threshold", "{g}", "{o}", "--method", "manual", "--thresholds", "1e9"),
     "outside the data range"),
    (("segment", "threshold", "{g}", "{o}", "--method", "multiotsu", "--classes", "1"),
     "at least 2 classes"),
    (("segment", "kmeans", "{g}", "{o}", "--classes", "1"), "at least 2 classes"),
    (("compare", "{g}", "{small}"), "shape"),
    (("variability", "{t}", "{small}"), "shape"),
    (("segment", "threshold", "{nan}", "{o}"), "NaN"),
    (("filter", "{g}", "{o}", "--method", "blur"), "--method"),
    (("crop", "{g}", "{o}", "--z", "30:90"), "--z"),
])
def test_cli_errors_one_line(run_cli, phantom_files, args, match):
    d, g, t, truth, grey = phantom_files
    small = d / "small.tif"
    write(Volume(truth[:5]), small)
    nan = d / "nan.tif"
    bad = grey.copy()
    bad[0, 0, 0] = np.nan
    write(Volume(bad), nan)
    o = d / "out.tif"
    fmt = {"g": g, "t": t, "o": o, "small": small, "nan": nan}
    code, _, err = run_cli(*[a.format(**fmt) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error:") and match in lines[-1]
    assert "Traceback" not in err and not o.exists()
