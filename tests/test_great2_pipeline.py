"""GREAT2 in the pipeline and its report: a scanner drift between states calibrated away,
condition pies summing to 100 % with the planted darker particles, particle columns
painted into image space, the change map of a darkened particle; the report renders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from electrode_ct.io import read, read_table
from electrode_ct.operando.phantom import shifted_series
from electrode_ct.pipeline import parse_config, run_pipeline

DROP, DRIFT = 6.0, 8.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("g2")
    s = shifted_series(shape=(32, 56, 56), radius=(6.0, 8.0), n_particles=25, noise=2.0,
                       drop=DROP, cracked_fraction=0.5, seed=3)
    paths = []
    for i, g in enumerate(s.greys):  # state 1 scanned DRIFT grey levels brighter
        tifffile.imwrite(d / f"s{i}.tif", (g + (DRIFT if i else 0)).astype(np.uint8))
        paths.append(str(d / f"s{i}.tif"))
    cfg = {"input": {"grey": paths, "voxel_size": 1.0}, "output": str(d / "out"),
           "steps": {"segment": {"threshold_method": "otsu"}, "metrics": {"enabled": False},
                     "track": {"calibrate": ["background"]},
                     "measure": {"properties": "basic", "exclude_layers": 1},
                     "stats": {"roi": False, "paint": ["z", "volume_um3"]}}}
    run_pipeline(parse_config(cfg), quiet=True)
    out = d / "out"
    return s, out, json.loads((out / "provenance.json").read_text())


def _cracked(s, out):
    """Labels of the run's reference particles that are planted-darker ones (the run's ids
    differ from the phantom's: matched by the largest overlap)."""
    lab = read(out / "volumes/labels_0.tif").compute().numpy()
    ids = np.unique(lab[lab > 0])
    truth = [np.bincount(s.ref_labels[lab == i]).argmax() for i in ids]
    return set(ids[np.isin(truth, s.cracked)].tolist())


def test_drift_is_calibrated_and_reported(run):
    s, out, man = run
    cal = man["steps"]["track"]["summary"]["registration"][1]["calibration"]
    assert cal["regions"] == ["background"] and cal["drift"][0] == pytest.approx(DRIFT, abs=0.6)
    t0, t1 = (read_table(out / f"tables/particles_{i}.parquet").set_index("label")
              for i in (0, 1))
    cracked = _cracked(s, out)
    intact = [lbl for lbl in t0.index if lbl not in cracked]
    assert 0 < len(cracked) < len(t0)
    d = (t1["grey_mean"] - t0["grey_mean"]).loc[intact]
    assert d.mean() == pytest.approx(0.0, abs=0.5)  # the drift is gone from the measurement


def test_condition_pies_find_the_darkened_particles(run):
    s, out, man = run
    shares = read_table(out / "tables/conditions.parquet")
    assert set(shares["state"]) == {1} and shares["percent"].sum() == pytest.approx(100.0)
    n = shares.set_index("category")["n"]
    kept = read_table(out / "tables/particles_1.parquet")["label"]
    n_cracked = int(np.isin(kept, list(_cracked(s, out))).sum())
    assert n.iloc[0] == pytest.approx(n_cracked, abs=1)  # darker: the planted drop
    assert n.iloc[1] <= 1  # brighter: none (the drift was calibrated away)
    assert man["steps"]["stats"]["summary"]["conditions"][0]["category"].startswith("darker")


def test_painted_columns_and_change_map(run):
    s, out, man = run
    outs = man["steps"]["stats"]["outputs"]
    assert {"paint_z_1", "paint_volume_um3_0", "paint_volume_um3_1"} <= set(outs)
    assert "paint_z_0" not in outs  # the reference has no change
    lab = read(out / "volumes/labels_1.tif").compute().numpy()
    z = read(out / outs["paint_z_1"]).compute().numpy()
    t1 = read_table(out / "tables/particles_1.parquet")
    t0 = read_table(out / "tables/particles_0.parquet")
    lbl = int(t1["label"].iloc[0])
    dz = (t1.set_index("label")["grey_mean"] - t0.set_index("label")["grey_mean"])[lbl]
    assert np.unique(z[lab == lbl]).size == 1 and np.sign(z[lab == lbl][0]) == np.sign(dz)
    assert np.isnan(z[lab == 0]).all()
    cm = man["steps"]["stats"]["summary"]["change_map"]
    assert cm["label"] in _cracked(s, out) and cm["state"] == 1
    diff = read(out / outs["change_map"]).compute().numpy()
    assert np.nanmean(diff) == pytest.approx(-DROP, abs=1.5)


def test_report_shows_great2_figures(run, tmp_path):
    from _browser import render

    _, out, _ = run
    html = (out / "report.html").read_text()
    for title in ("Grey-level calibration between states", "Particles per condition",
                  "modelled normal distributions", "Particle properties in image space"):
        assert title in html
    result = render(out / "report.html", tmp_path)
    alts = {img["alt"] for img in result["images"]}
    assert {"condition pies", "grey-level drift per state", "intra-particle change map",
            "modelled normal distributions of Ī per state", "z painted, state 1"} <= alts
    assert all(img["ok"] and img["w"] > 100 for img in result["images"]), result["images"]
    assert result["errors"] == [] and result["stderr_errors"] == []
    assert "http://" not in html and "https://" not in html  # self-contained
    assert result["layout"]["page"] <= result["layout"]["viewport"]


def test_the_engine_measures_the_calibrated_grey_as_in_memory(run, tmp_path):
    """The measure step on the block engine (compute.in_memory_below_mb 0) reads each
    state's grey through the track step's calibration, lazily per block: the tables equal
    the in-memory run's."""
    s, out, man = run
    cfg = json.loads(json.dumps(man["config"]))
    cfg["output"] = str(tmp_path / "eng")
    cfg["compute"] = {**(cfg.get("compute") or {}), "in_memory_below_mb": 0,
                      "block_shape": [32, 28, 28]}
    run_pipeline(parse_config(cfg), quiet=True)
    for i in (0, 1):
        mem = read_table(out / f"tables/particles_{i}.parquet").set_index("label")
        eng = read_table(tmp_path / f"eng/tables/particles_{i}.parquet").set_index("label")
        assert list(eng.index) == list(mem.index)
        np.testing.assert_allclose(eng["grey_mean"], mem["grey_mean"], rtol=1e-9)
        np.testing.assert_allclose(eng["grey_std"], mem["grey_std"], rtol=1e-6, atol=1e-9)
