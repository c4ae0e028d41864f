"""Size-subset radial profiles and population statistics (``ect stats --size-subset``,
``--radial``; the pipeline's stats step), ``ect measure --bootstrap`` and the % flawed
interval (#26)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from electrode_ct.errors import InputError
from electrode_ct.io import write
from electrode_ct.subsets import parse_size_subset, size_mask
from electrode_ct.volume import Volume

N = 100


@pytest.fixture
def tables(tmp_path):
    """Particles 1..100 with volume = label µm³; every radial layer of a particle holds
    grey_norm = label/100; odd labels near the collector (z 0), even ones far (z 10)."""
    lab = np.arange(1, N + 1)
    t0 = pd.DataFrame({"label": lab, "grey_mean": 100.0 + lab, "sem": 0.1,
                       "volume_um3": lab.astype(float),
                       "centroid_z_um": np.where(lab % 2 == 1, 0.0, 10.0)})
    rad = pd.DataFrame({"label": np.repeat(lab, 3), "layer": np.tile([1, 2, 3], N),
                        "grey_norm": np.repeat(lab / 100.0, 3)})
    t0.to_parquet(tmp_path / "a.parquet")
    rad.to_parquet(tmp_path / "ra.parquet")
    return tmp_path, t0, rad


@pytest.mark.parametrize(("spec", "labels"), [
    ("top25", range(76, 101)), ("q2-q4", range(26, 101)), ("q1", range(1, 26)),
    ("bottom10", range(1, 11)), ("volume_um3:q4", range(76, 101))])
def test_size_mask_selects_the_quantile(tables, spec, labels):
    _, t0, _ = tables
    sel = t0["label"][size_mask(t0, parse_size_subset(spec))]
    assert sel.tolist() == list(labels)


@pytest.mark.parametrize("spec", ["top0", "top101", "q3-q2", "q5", "largest", "x:"])
def test_bad_size_specs(spec):
    with pytest.raises(InputError, match="--size-subset: expected"):
        parse_size_subset(spec)


def test_stats_size_subset_with_depth_and_radial_profiles(run_cli, tables):
    d, _, _ = tables
    code, out, err = run_cli("stats", d / "a.parquet", "--size-subset", "top25", "--position",
                             "z:2", "--radial", d / "ra.parquet", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["size_subset"] == {"spec": "top25", "column": "volume_um3", "n_selected": [25]}
    rows = {(x["grouping"], str(x["subset"])): x for x in r["rows"]}
    assert rows[("all", "all")]["n"] == 25
    assert rows[("all", "all")]["I_mean"] == pytest.approx(100 + np.mean(range(76, 101)))
    assert rows[("depth_z:2:z0", "0")]["n"] == 12  # odd labels 77..99
    prof = pd.DataFrame(r["radial_profiles"])
    allp = prof[prof["grouping"] == "all"]
    assert allp["x"].tolist() == [1, 2, 3] and (allp["n"] == 25).all()
    assert allp["mean"].to_numpy() == pytest.approx(np.mean(range(76, 101)) / 100)
    near = prof[(prof["grouping"] == "depth_z:2:z0") & (prof["subset"] == "0")]
    assert near["mean"].to_numpy() == pytest.approx(np.mean(range(77, 100, 2)) / 100)
    # Q1 excluded, the rest pooled
    code, out, err = run_cli("stats", d / "a.parquet", "--size-subset", "q2-q4", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"][0]["n"] == 75


def test_stats_size_subset_bad_input(run_cli, tables):
    d, t0, rad = tables
    t0.assign(volume_um3=5.0).to_parquet(d / "same.parquet")  # every particle in Q4
    code, out, err = run_cli("stats", d / "same.parquet", "--size-subset", "q1", "--json")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        "error: --size-subset: 'q1' selects no particle of ")
    code, out, err = run_cli("stats", d / "a.parquet", "--size-subset", "top0")
    assert code == 2 and err.count("error:") == 1 and "--size-subset: expected" in err
    code, out, err = run_cli("stats", d / "a.parquet", "--radial", d / "ra.parquet",
                             "--radial", d / "ra.parquet")
    assert code == 2 and "--radial: got 2 radial tables for 1 tables" in err
    code, out, err = run_cli("stats", d / "a.parquet", "--size-subset", "nope:top5")
    assert code == 2 and "'nope'" in err and "Traceback" not in err


def _spheres(tmp_path):
    lab = np.zeros((24, 40, 40), np.uint32)
    g = np.ogrid[:24, :40, :40]
    for i, (c, r) in enumerate([((12, 10, 10), 6), ((12, 28, 28), 8), ((12, 10, 30), 4),
                                ((12, 30, 9), 5)], 1):
        lab[sum((gi - ci) ** 2 for gi, ci in zip(g, c, strict=True)) < r * r] = i
    write(Volume(lab, spacing=(0.5, 0.5, 0.5)), tmp_path / "labels.tif")
    return tmp_path / "labels.tif"


def test_measure_size_distribution_intervals(run_cli, tmp_path):
    path = _spheres(tmp_path)
    code, out, err = run_cli("measure", path, "--out", tmp_path / "t.parquet",
                             "--properties", "basic", "--bootstrap", "50", "--seed", "3",
                             "--json")
    assert code == 0, err
    psd = json.loads(out)["size_distribution"]
    assert psd["n_particles"] == 4 and psd["bootstrap"] == {
        "n": 50, "seed": 3, "method": psd["bootstrap"]["method"]}
    for key in ("mean_um", "d10_um", "d50_um", "d90_um"):
        lo, hi = psd[f"{key}_ci95"]
        assert lo <= hi and psd[f"{key}_std"] >= 0
        assert psd["number"][f"{key}_ci95"] is not None
    code, out, err = run_cli("measure", path, "--out", tmp_path / "u.parquet", "--bootstrap",
                             "0")
    assert code == 2 and out == "" and err.count("error:") == 1
    assert "--bootstrap: expected a number of resamples >= 1" in err
    assert not (tmp_path / "u.parquet").exists()


def test_pipeline_stats_size_subset_and_bootstrap_config():
    from electrode_ct.errors import ConfigError
    from electrode_ct.pipeline import parse_config

    base = {"input": {"grey": "g.tif"}}
    cfg = parse_config({**base, "steps": {"stats": {"size_subset": "q2-q4"},
                                          "measure": {"bootstrap": 20}}})
    assert cfg.steps.stats.size_subset == "q2-q4" and cfg.steps.measure.bootstrap == 20
    for steps, needle in (({"stats": {"size_subset": "top200"}}, "size_subset"),
                          ({"measure": {"bootstrap": 0}}, "bootstrap"),
                          ({"metrics": {"subvolume_um": 0}}, "subvolume_um")):
        with pytest.raises(ConfigError, match=needle):
            parse_config({**base, "steps": steps})


def test_pipeline_report_shows_intervals(tmp_path, three_phase_phantom):
    """Metrics with sub-volume companions, the size distribution with bootstrap intervals
    and size-subset radial profiles, from the pipeline into a report that renders."""
    import tifffile

    from _browser import render
    from electrode_ct.io import read_table
    from electrode_ct.pipeline import parse_config, run_pipeline

    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    cfg = parse_config({
        "input": {"grey": str(tmp_path / "grey.tif"), "voxel_size": 0.5},
        "output": str(tmp_path / "out"),
        "steps": {"segment": {"method": "threshold", "threshold_method": "multiotsu",
                              "classes": 3},
                  "particles": {"phase": "active"}, "measure": {"bootstrap": 50},
                  "metrics": {"tortuosity": ["z"], "subvolume_um": 5.0},
                  "stats": {"size_subset": "top50", "roi": False}}})
    run_pipeline(cfg, quiet=True)
    out = tmp_path / "out"
    m = json.loads((out / "tables" / "metrics.json").read_text())
    assert m["subvolumes"]["n"] == 64 and set(m["volume_fraction_ci95"]) == set(
        m["volume_fraction"])
    man = json.loads((out / "provenance.json").read_text())
    psd = man["steps"]["measure"]["summary"]["state_0"]["size_distribution"]
    assert psd["bootstrap"]["n"] == 50 and len(psd["d50_um_ci95"]) == 2
    assert man["steps"]["stats"]["summary"]["size_subset"]["n_selected"] == [2]
    prof = read_table(out / "tables" / "radial_profiles.parquet")
    assert set(prof["grouping"]) == {"all"} and (prof["n"] <= 2).all()
    html = (out / "report.html").read_text()
    assert "value ± std [95 % CI]" in html and "percentile bootstrap over particles" in html
    assert "within size subset top50" in html
    result = render(out / "report.html", tmp_path)
    assert len(result["images"]) >= 6
    assert all(img["ok"] for img in result["images"]) and result["errors"] == []
