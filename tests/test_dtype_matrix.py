"""Every command that reads grey values, on one phantom stored as uint8, uint16 and float32.

The phantom's 8-bit grey image (stretched to use most of 0..255) is written exactly as
uint16 (× 257: 0..65535) and float32 (/ 255), so all three hold the same information: the
commands must give identical labels and tables whose grey-valued columns scale by the
grey factor (issue #19). Each command runs through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from electrode_ct.io import read, read_table, write
from electrode_ct.volume import Volume

DTYPES = {"uint8": 1.0, "uint16": 257.0, "float32": 1 / 255}
"""Grey value of one 8-bit level in each stored dtype."""

QUANTILES = ("grey_median", "grey_p05", "grey_p25", "grey_p75", "grey_p95")
"""Per-particle quantiles: exact on integer data, within 1/1024 of the grey range on
float data (per-particle histograms of 1024 bins, docs/great2.md)."""

NOISE = ("sem", "SEM", "SE_tot")
"""Columns carrying σ_bg: float data's background histogram has 2¹⁶ bins over the range,
so its levels sit within half a bin of their values (1e-4 of σ here)."""

GREY_COLUMNS = ("grey_mean", "grey_std", "grey_min", "grey_max", "roi_mean", "roi_std",
                "sem") + QUANTILES


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict:
    """The phantom's files (grey per dtype, particles, phases, scribbles) in one folder."""
    from electrode_ct.segment.scribbles import simulate_scribbles
    from electrode_ct.synth import electrode

    d = tmp_path_factory.mktemp("dtype_matrix")
    ph = electrode((40, 40, 40), voxel_size=0.5, radius_mean_um=2.5, radius_sd_um=0.5,
                   bits=8, seed=3)
    g = ph.grey.numpy().astype(np.float64)
    u8 = np.rint((g - g.min()) * (250.0 / np.ptp(g)) + 2).astype(np.uint8)
    stored = {"uint8": u8, "uint16": u8.astype(np.uint16) * 257,
              "float32": u8.astype(np.float32) / np.float32(255)}
    for name, arr in stored.items():
        write(ph.grey.with_data(arr), d / f"grey_{name}.tif")
    write(ph.particles, d / "particles.tif")
    write(ph.phases, d / "phases.tif")
    scr = simulate_scribbles(ph.phases.numpy(), coverage=0.1, n_slices=5, style="uniform",
                             seed=1)
    write(Volume(scr.astype(np.uint8), spacing=ph.phases.spacing), d / "scribbles.tif")
    return {"dir": d, "u8": u8}


def _each(run_cli, matrix: dict, make_args, out_name: str) -> dict[str, Path]:
    """Run one command per dtype; ``make_args(grey_path, out_path, scale)``."""
    outs = {}
    for name, scale in DTYPES.items():
        out = matrix["dir"] / name / out_name
        out.parent.mkdir(exist_ok=True)
        code, _, err = run_cli(*make_args(matrix["dir"] / f"grey_{name}.tif", out, scale))
        assert code == 0, f"{name}: {err}"
        outs[name] = out
    return outs


def _same_labels(outs: dict[str, Path]) -> np.ndarray:
    ref = read(outs["uint8"])
    for name in ("uint16", "float32"):
        other = read(outs[name])
        assert other.class_map == ref.class_map, name
        np.testing.assert_array_equal(other.numpy(), ref.numpy(), err_msg=name)
    return ref.numpy()


def _same_table(tables: dict[str, pd.DataFrame], grey_columns, rtol: float = 1e-5) -> None:
    """Equal tables once the grey-valued columns are divided by the grey factor."""
    ref = tables["uint8"]
    for name in ("uint16", "float32"):
        t = tables[name]
        assert list(t.columns) == list(ref.columns), name
        for col in t.columns:
            a, b = t[col].to_numpy(), ref[col].to_numpy()
            if col in grey_columns:
                atol = 256 / 1024 if name == "float32" and col in QUANTILES else 1e-9
                tol = 5e-4 if name == "float32" and col in NOISE else rtol
                np.testing.assert_allclose(a / DTYPES[name], b, rtol=tol, atol=atol,
                                           err_msg=f"{name}: {col}")
            elif a.dtype.kind in "fc":
                np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=f"{name}: {col}")
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: {col}")


def _results(obj):
    """A JSON answer without its input paths and timings (``*_s``)."""
    if isinstance(obj, dict):
        return {k: _results(v) for k, v in obj.items() if k != "input" and not k.endswith("_s")}
    return obj


def test_info(run_cli, matrix):
    res = {}
    for name in DTYPES:
        code, out, err = run_cli("info", matrix["dir"] / f"grey_{name}.tif", "--json")
        assert code == 0, err
        res[name] = json.loads(out)
    ref = res["uint8"]
    for name in ("uint16", "float32"):
        s, f = res[name], DTYPES[name]
        for key in ("min", "max", "mean", "std", "noise_sigma"):
            assert s[key] / f == pytest.approx(ref[key], rel=1e-5), (name, key)
        for key, val in ref["percentiles"].items():
            assert s["percentiles"][key] / f == pytest.approx(val, rel=1e-5), (name, key)
        assert s["histogram"]["counts"] == ref["histogram"]["counts"], name


@pytest.mark.parametrize("method, options", [
    ("gaussian", ("--sigma", "1")),
    ("median", ("--size", "3")),
    ("unsharp", ("--radius", "1")),
    ("normalise", ("--dtype", "uint8")),
])
def test_filter(run_cli, matrix, method, options):
    outs = _each(run_cli, matrix, lambda g, o, s: ("filter", g, o, "--method", method,
                                                   *options), f"filter_{method}.tif")
    ref = read(outs["uint8"]).numpy().astype(np.float64)
    for name in ("uint16", "float32"):
        got = read(outs[name]).numpy().astype(np.float64)
        scale = 1.0 if method == "normalise" else DTYPES[name]
        np.testing.assert_allclose(got / scale, ref, rtol=1e-5, atol=1e-3, err_msg=name)


def test_segment_threshold_watershed_kmeans(run_cli, matrix):
    for args in (("threshold",), ("threshold", "--method", "otsu"),
                 ("threshold", "--method", "li"), ("threshold", "--method", "triangle"),
                 ("threshold", "--method", "fraction", "--fractions", "0.5,0.2,0.3"),
                 ("kmeans", "--classes", "3")):
        outs = _each(run_cli, matrix, lambda g, o, s, a=args: ("segment", a[0], g, o, *a[1:]),
                     "_".join(args).replace(",", "") + ".tif")
        labels = _same_labels(outs)
        assert len(np.unique(labels)) >= 2
    outs = _each(run_cli, matrix, lambda g, o, s: (
        "segment", "watershed", g, o, "--low", f"{100 * s!r}", "--high", f"{160 * s!r}"),
        "watershed.tif")
    _same_labels(outs)


def test_train_forest_and_predict(run_cli, matrix):
    d = matrix["dir"]
    models = _each(run_cli, matrix, lambda g, o, s: (
        "segment", "train-forest", g, d / "scribbles.tif", "--model", o, "--features",
        "minimal", "--trees", "10"), "forest.model")
    outs = {}
    for name, model in models.items():
        out = d / name / "predicted.tif"
        code, _, err = run_cli("segment", "predict", model, d / f"grey_{name}.tif", out)
        assert code == 0, err
        outs[name] = out
    _same_labels(outs)


def test_measure_and_stats(run_cli, matrix):
    d = matrix["dir"]
    outs = _each(run_cli, matrix, lambda g, o, s: (
        "measure", d / "particles.tif", "--grey", g, "--out", o, "--radial",
        o.with_name("radial.parquet"), "--exclude-layers", "1"), "particles.parquet")
    tables = {k: read_table(v) for k, v in outs.items()}
    _same_table(tables, GREY_COLUMNS)
    radial = {k: read_table(v.with_name("radial.parquet")) for k, v in outs.items()}
    _same_table(radial, ("grey_mean", "grey_std"))
    res = {}
    for name, path in outs.items():
        code, out, err = run_cli("stats", path, "--roi", "--json")
        assert code == 0, err
        res[name] = pd.DataFrame(json.loads(out)["rows"])
    _same_table(res, ("I_mean", "sigma", "SES", "SEM", "SE_tot"))


def test_cracks_classify(run_cli, matrix):
    d = matrix["dir"]
    outs = _each(run_cli, matrix, lambda g, o, s: (
        "cracks", "classify", g, d / "particles.tif", "--out", o, "--no-csv"), "cracks")
    tables = {k: read_table(v / "cracks.parquet") for k, v in outs.items()}
    _same_table(tables, ())
    _same_labels({k: v / "particle_phases.tif" for k, v in outs.items()})


def test_metrics_on_each_segmentation(run_cli, matrix):
    segs = _each(run_cli, matrix, lambda g, o, s: ("segment", "threshold", g, o),
                 "phases.tif")
    res = {}
    for name, seg in segs.items():
        code, out, err = run_cli("metrics", seg, "--tortuosity", "z", "--json")
        assert code == 0, err
        res[name] = _results(json.loads(out))
    assert res["uint16"] == res["uint8"] == res["float32"]


def test_run_pipeline(run_cli, matrix):
    d = matrix["dir"]
    tables = {}
    for name in DTYPES:
        cfg = {"input": {"grey": str(d / f"grey_{name}.tif"), "voxel_size": 0.5},
               "output": str(d / name / "run"),
               "steps": {"segment": {"method": "threshold", "threshold_method": "multiotsu",
                                     "classes": 3},
                         "particles": {"phase": "active"},
                         "metrics": {"enabled": False}}}
        path = d / name / "run.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        code, _, err = run_cli("run", path)
        assert code == 0, f"{name}: {err}"
        tables[name] = sorted((d / name / "run").rglob("*.parquet"))
    names = [p.relative_to(d / "uint8" / "run") for p in tables["uint8"]]
    assert names and names == [p.relative_to(d / "uint16" / "run") for p in tables["uint16"]]
    for rel in names:
        _same_table({k: read_table(d / k / "run" / rel) for k in DTYPES},
                    GREY_COLUMNS + ("I_mean", "sigma", "SES", "SEM", "SE_tot"))
    _same_labels({k: next((d / k / "run").rglob("phases*.*")) for k in DTYPES})
