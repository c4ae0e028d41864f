"""`ect measure`, `ect track`, `ect stats` end to end on small phantoms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from electrode_ct.io import read, read_table, write
from electrode_ct.volume import Volume


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(0)
    lab = np.zeros((30, 40, 40), np.uint32)
    g = np.ogrid[:30, :40, :40]
    for i, (c, r) in enumerate([((15, 12, 12), 8), ((15, 28, 27), 9), ((5, 5, 35), 4)], 1):
        lab[sum((gi - ci) ** 2 for gi, ci in zip(g, c, strict=True)) < r * r] = i * 10
    grey = np.clip(np.where(lab > 0, 170, 60) + rng.normal(0, 3, lab.shape), 0, 255)
    write(Volume(lab, spacing=(0.5, 0.5, 0.5)), tmp_path / "labels.tif")
    write(Volume(grey.astype(np.uint8), spacing=(0.5, 0.5, 0.5)), tmp_path / "grey.tif")
    return tmp_path, lab, grey.astype(np.uint8)


def test_measure_joins_morphology_and_grey(run_cli, volumes):
    d, lab, grey = volumes
    code, out, err = run_cli("measure", d / "labels.tif", "--grey", d / "grey.tif", "--out",
                             d / "t.parquet", "--radial", d / "r.parquet", "--properties",
                             "basic", "--exclude-layers", "2", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_particles"] == 3
    t = read_table(d / "t.parquet").set_index("label")
    for lbl in (10, 20, 30):
        vals = grey[lab == lbl]
        assert t.loc[lbl, "n_voxels"] == vals.size == t.loc[lbl, "grey_n"]
        assert t.loc[lbl, "grey_mean"] == pytest.approx(vals.mean())
    assert {"volume_um3", "touches_border", "roi_mean", "sem", "grey_median"} <= set(t.columns)
    r = read_table(d / "r.parquet")
    assert list(r.columns[:7]) == ["label", "layer", "distance_um", "relative_radius",
                                   "n_voxels", "grey_mean", "grey_std"]
    assert r.groupby("label")["n_voxels"].sum().to_dict() == t["n_voxels"].to_dict()
    assert r["distance_um"].min() == 0.5


def test_measure_bad_input(run_cli, volumes, tmp_path):
    d, lab, _ = volumes
    write(Volume(np.zeros((30, 40, 41), np.uint8)), tmp_path / "g2.tif")
    code, out, err = run_cli("measure", d / "labels.tif", "--grey", tmp_path / "g2.tif",
                             "--out", tmp_path / "x.parquet")
    assert code == 2 and "differs" in err and "Traceback" not in err
    assert not (tmp_path / "x.parquet").exists()
    write(Volume(lab.astype(np.float32)), tmp_path / "flt.tif")
    code, _, err = run_cli("measure", tmp_path / "flt.tif", "--out", tmp_path / "y.parquet")
    assert code == 2 and "integer" in err
    np.save(tmp_path / "empty.npy", np.zeros((0, 4, 4), np.uint16))
    np.save(tmp_path / "empty_grey.npy", np.zeros((0, 4, 4), np.float32))
    code, _, err = run_cli("measure", tmp_path / "empty.npy", "--grey", tmp_path / "empty_grey.npy",
                           "--out", tmp_path / "z.parquet")
    assert code == 2 and "empty" in err and "Traceback" not in err
    assert not (tmp_path / "z.parquet").exists()
    write(Volume(np.zeros((6, 7, 8), np.uint32)), tmp_path / "none.tif")
    code, _, err = run_cli("measure", tmp_path / "none.tif", "--out", tmp_path / "n.parquet")
    assert code == 2 and "no particles" in err and err.count("\n") == 1
    assert not (tmp_path / "n.parquet").exists()


def test_track_and_stats(run_cli, tmp_path):
    from electrode_ct.operando.phantom import shifted_series

    s = shifted_series(shape=(40, 64, 64), radius=(7.0, 9.0), n_particles=30, noise=2.0,
                       seed=2)
    write(Volume(s.ref_labels), tmp_path / "ref.tif")
    for i, g in enumerate(s.greys):
        write(Volume(g), tmp_path / f"g{i}.tif")
    out = tmp_path / "track"
    code, stdout, err = run_cli("track", tmp_path / "ref.tif", tmp_path / "g0.tif",
                                tmp_path / "g1.tif", "--out", out, "--exclude-layers", "2",
                                "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["n_tracked"] > 0
    assert abs(res["states"][1]["shift_um_zyx"][1] - (-2.2)) < 0.2
    for name in ("labels_0.tif", "labels_1.tif", "timeseries.parquet", "registration.json"):
        assert (out / name).exists()
    lab1 = read(out / "labels_1.tif").numpy()
    assert set(np.unique(lab1)) <= set(np.unique(s.ref_labels))
    ts = read_table(out / "timeseries.parquet")
    kept = ts[ts["kept"]]
    t0 = read_table(out / "particles_0.parquet").set_index("label")
    assert sorted(t0.index) == sorted(kept["label"].unique())
    assert {"volume_um3", "touches_border", "roi_mean", "sem"} <= set(t0.columns)
    k0 = kept[kept.state == 0].set_index("label")
    np.testing.assert_allclose(t0["roi_mean"], k0.loc[t0.index, "roi_mean"])
    code, stdout, err = run_cli("stats", out / "particles_0.parquet", out / "particles_1.parquet",
                                "--roi", "--json")
    assert code == 0, err
    got = json.loads(stdout)
    rows = got["rows"]
    assert got["paired"] and "paired by label" in got["pairing_note"]
    assert rows[1]["state"] == 1 and rows[1]["n_tracked"] == res["n_tracked"]
    assert {"I_mean", "dI", "SE_tot", "Z", "p"} <= set(rows[1])
    # a second tracking from another reference: its tables are not paired with the first
    other = s.ref_labels.copy()
    other[other == other.max()] = 0
    write(Volume(other), tmp_path / "ref2.tif")
    code, _, err = run_cli("track", tmp_path / "ref2.tif", tmp_path / "g0.tif",
                           tmp_path / "g1.tif", "--out", tmp_path / "track2",
                           "--exclude-layers", "2", "--json")
    assert code == 0, err
    code, stdout, err = run_cli("stats", out / "particles_0.parquet",
                                tmp_path / "track2" / "particles_1.parquet", "--roi", "--json")
    got = json.loads(stdout)
    assert code == 0 and not got["paired"] and "different reference" in got["pairing_note"]
    assert got["rows"][1]["n_tracked"] == 0 and "different reference" in err


def test_stats_unrelated_scans_are_not_paired(run_cli, tmp_path):
    from electrode_ct.operando.phantom import shifted_series

    tables = []
    for seed in (4, 5):  # two independent phantoms: label ids overlap by chance only
        s = shifted_series(shape=(32, 56, 56), radius=(6.0, 8.0), n_particles=25, noise=2.0,
                           seed=seed)
        write(Volume(s.ref_labels), tmp_path / f"lab{seed}.tif")
        write(Volume(s.greys[0]), tmp_path / f"grey{seed}.tif")
        tables.append(tmp_path / f"t{seed}.parquet")
        code, _, err = run_cli("measure", tmp_path / f"lab{seed}.tif", "--grey",
                               tmp_path / f"grey{seed}.tif", "--out", tables[-1],
                               "--properties", "basic", "--exclude-layers", "1")
        assert code == 0, err
    code, stdout, err = run_cli("stats", *tables, "--json")
    assert code == 0, err
    got = json.loads(stdout)
    assert not got["paired"] and "no tracking stamp" in got["pairing_note"]
    assert "note: two-sample statistics" in err and "no tracking stamp" in err
    t = [read_table(p) for p in tables]
    inner = [x[~x["touches_border"]] for x in t]
    assert got["n_border_excluded"] == [int(x["touches_border"].sum()) for x in t]
    assert min(got["n_border_excluded"]) > 0  # the phantoms do have border particles
    row = got["rows"][1]
    assert row["n"] == len(inner[1]) and row["n_tracked"] == 0
    assert row["percent_darker"] is None and row["Z"] == row["Z_independent"]
    assert row["I_mean"] == pytest.approx(inner[1]["grey_mean"].mean())
    code, stdout, _ = run_cli("stats", *tables, "--keep-border", "--json")
    got = json.loads(stdout)
    assert got["rows"][1]["n"] == len(t[1]) and got["n_border_excluded"] == [0, 0]


def test_stats_subsets_cli(run_cli, tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 200
    t0 = pd.DataFrame({"label": np.arange(1, n + 1), "grey_mean": rng.normal(170, 5, n),
                       "sem": 0.1, "volume_um3": rng.uniform(10, 100, n),
                       "centroid_z_um": rng.uniform(0, 50, n)})
    t1 = t0.assign(grey_mean=t0.grey_mean - 1)
    t0.to_parquet(tmp_path / "a.parquet")
    t1.to_parquet(tmp_path / "b.parquet")
    code, stdout, err = run_cli("stats", tmp_path / "a.parquet", tmp_path / "b.parquet",
                                "--by", "volume_um3:4", "--position", "z:2", "--collector",
                                "z1", "--json")
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    assert len(rows) == 2 * (1 + 4 + 2)
    assert all(r["dI"] == pytest.approx(-1.0) for r in rows if r["state"] == 1)
    code, _, err = run_cli("stats", tmp_path / "a.parquet", "--by", "nope:3", "--json")
    assert code == 2 and "nope" in err
