"""GREAT2 from the CLI: a column painted into image space (`ect measure --paint`), the
condition pies (`ect stats --condition`, shares summing to 100 %) and the grey-level
calibration of `ect track --calibrate`, on phantoms with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from electrode_ct.io import read, write, write_table
from electrode_ct.operando.phantom import shifted_series
from electrode_ct.stats import TRACKING_KEY
from electrode_ct.volume import Volume


@pytest.fixture
def labels(tmp_path):
    lab = np.zeros((20, 30, 30), np.uint32)
    g = np.ogrid[:20, :30, :30]
    for i, (c, r) in enumerate([((10, 8, 8), 6), ((10, 21, 20), 7), ((4, 4, 25), 3)], 1):
        lab[sum((gi - ci) ** 2 for gi, ci in zip(g, c, strict=True)) < r * r] = i * 10
    write(Volume(lab, spacing=(0.5, 0.5, 0.5)), tmp_path / "labels.tif")
    return lab


def test_measure_paints_a_column_into_the_particles(run_cli, labels, tmp_path):
    code, out, err = run_cli("measure", tmp_path / "labels.tif", "--out", tmp_path / "t.csv",
                             "--properties", "basic", "--paint", "volume_um3",
                             tmp_path / "vol.tif", "--json")
    assert code == 0, err
    assert json.loads(out)["painted"] == {"column": "volume_um3", "out": str(tmp_path / "vol.tif")}
    img = read(tmp_path / "vol.tif").compute().numpy()
    assert img.dtype == np.float32 and np.isnan(img[labels == 0]).all()
    for lbl in (10, 20, 30):  # each particle carries its own volume: n_voxels · 0.125 µm³
        assert np.all(img[labels == lbl] == np.float32((labels == lbl).sum() * 0.125))


def test_measure_paint_of_a_missing_column_is_one_line(run_cli, labels, tmp_path):
    code, _, err = run_cli("measure", tmp_path / "labels.tif", "--out", tmp_path / "t.csv",
                           "--properties", "basic", "--paint", "nonesuch", tmp_path / "p.tif")
    assert code == 2 and "Traceback" not in err
    errs = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "--paint" in errs[0] and "volume_um3" in errs[0]
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "p.tif").exists()


def _tracked_tables(tmp_path):
    """Reference and one state, tracked: 10 particles darker by 10 (SEM 1), 5 brighter
    by 10, 5 unchanged."""
    n = 20
    delta = np.r_[np.full(10, -10.0), np.full(5, 10.0), np.zeros(5)]
    stamp = {"tracked": True, "reference_id": "x", "reference_state": 0, "n_states": 2}
    paths = []
    for i, d in enumerate((np.zeros(n), delta)):
        t = pd.DataFrame({"label": np.arange(1, n + 1), "grey_mean": 100.0 + d,
                          "sem": np.full(n, 1 / np.sqrt(2)), "volume_um3": np.arange(n) + 1.0})
        paths.append(write_table(t, tmp_path / f"p{i}.parquet",
                                 metadata={TRACKING_KEY: {**stamp, "state": i}}))
    return paths


def test_stats_default_condition_pies_sum_to_100(run_cli, tmp_path):
    code, out, err = run_cli("stats", *_tracked_tables(tmp_path), "--json")
    assert code == 0, err
    rows = pd.DataFrame(json.loads(out)["conditions"])
    assert set(rows["state"]) == {1}  # the reference has no change to classify
    got = dict(zip(rows["category"], rows["percent"], strict=True))
    assert list(got.values()) == [50.0, 25.0, 25.0]  # darker, brighter, none of these
    assert rows["percent"].sum() == 100.0 and rows["n"].sum() == 20


def test_stats_own_conditions_first_match_wins(run_cli, tmp_path):
    code, out, err = run_cli("stats", *_tracked_tables(tmp_path), "--condition",
                             "small=volume_um3 <= 4", "--condition", "darker=delta < 0",
                             "--json")
    assert code == 0, err
    rows = pd.DataFrame(json.loads(out)["conditions"])
    # particles 1-4 are small (and darker): counted once, under the first condition
    assert rows.set_index("category")["n"].to_dict() == {"small": 4, "darker": 6,
                                                         "none of these": 10}
    assert rows["percent"].sum() == pytest.approx(100.0, abs=1e-12)


@pytest.mark.parametrize("bad", ["nameless", "x=nonesuch > 1", "x=volume_um3 + 1"])
def test_stats_bad_condition_is_one_line(run_cli, tmp_path, bad):
    code, out, err = run_cli("stats", *_tracked_tables(tmp_path), "--condition", bad)
    errs = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errs) == 1 and "--condition" in errs[0] and out == ""


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """Two states, the second scanned with an offset of +8 grey levels; half the particles
    5 grey levels darker in it."""
    d = tmp_path_factory.mktemp("drift")
    s = shifted_series(shape=(32, 48, 48), radius=(6.0, 8.0), n_particles=16, noise=2.0,
                       drop=5.0, cracked_fraction=0.5, seed=2)
    write(Volume(s.ref_labels), d / "ref.tif")
    write(Volume(s.greys[0].astype(np.float32)), d / "g0.tif")
    write(Volume(s.greys[1].astype(np.float32) + 8.0), d / "g1.tif")
    return d, s


def test_track_calibrates_the_drift(run_cli, drifted):
    d, s = drifted
    cracked = int(s.cracked[0])
    args = ["track", d / "ref.tif", d / "g0.tif", d / "g1.tif", "--exclude-layers", "2",
            "--metric", "correlation", "--json"]
    code, out, err = run_cli(*args, "--out", d / "raw")
    assert code == 0, err
    code, out2, err = run_cli(*args, "--out", d / "cal", "--calibrate", "background",
                              "--change-map", str(cracked))
    assert code == 0, err
    res = json.loads(out2)
    cal = res["calibration"][1]
    assert cal["state"] == 1 and cal["regions"] == ["background"]
    assert cal["drift"][0] == pytest.approx(8.0, abs=0.5)
    assert json.loads(out)["calibration"] == []
    raw = [read_table_(d / "raw" / f"particles_{i}.parquet") for i in (0, 1)]
    fix = [read_table_(d / "cal" / f"particles_{i}.parquet") for i in (0, 1)]
    intact = [lbl for lbl in raw[0].index if lbl not in s.cracked]
    assert (raw[1] - raw[0])[intact].mean() == pytest.approx(8.0, abs=1.0)  # the drift ...
    assert (fix[1] - fix[0])[intact].mean() == pytest.approx(0.0, abs=1.0)  # ... removed
    (cm,) = res["change_maps"]  # the planted drop inside the cracked particle, drift removed
    assert cm["label"] == cracked and cm["state"] == 1
    assert cm["mean_change"] == pytest.approx(-5.0, abs=1.5)
    diff = read(cm["file"]).compute().numpy()
    assert np.nanmean(diff) == pytest.approx(cm["mean_change"], rel=1e-5)
    on_disk = json.loads((d / "cal" / "registration.json").read_text())
    assert on_disk["calibration"][1]["drift"] == cal["drift"]


def read_table_(path):
    from electrode_ct.io import read_table

    return read_table(path).set_index("label")["grey_mean"]


def test_track_calibration_bad_input_is_one_line(run_cli, drifted):
    d, _ = drifted
    base = ["track", d / "ref.tif", d / "g0.tif", d / "g1.tif", "--out", d / "bad"]
    code, _, err = run_cli(*base, "--change-map", "9999")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: --change-map")
    assert not (d / "bad").exists()
    code, _, err = run_cli(*base, "--calibrate", "pore")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error:") and "--phases" in err
    ph = np.zeros((32, 48, 48), np.uint8)
    write(Volume(ph).with_class_map({"pore": 0, "active": 2}), d / "ph.tif")
    code, _, err = run_cli(*base, "--phases", d / "ph.tif", "--phases", d / "ph.tif",
                           "--phase", "pore", "--calibrate", "active")
    assert code == 2 and "no voxel" in err and "Traceback" not in err
    assert not (d / "bad").exists()
