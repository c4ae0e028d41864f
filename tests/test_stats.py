"""Population statistics vs hand computation and the paper's Z-test example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from electrode_ct.errors import InputError
from electrode_ct.stats import (
    TRACKING_KEY,
    aggregate_radial,
    paired,
    pairing,
    parse_subsets,
    percent,
    population,
    position_subsets,
    prepare_tables,
    quantile_subsets,
    summarise,
    z_test,
)


def _stamped(table, reference_id, state):
    t = table.copy()
    t.attrs["electrode_ct"] = {TRACKING_KEY: {"tracked": True, "reference_id": reference_id,
                                              "reference_state": 0, "state": state}}
    return t


def test_paper_z_example():
    # Jones et al. 2024: Ī 173.00 vs 174.41, σ 11.27 and 11.08, n = 3650 each
    a = z_test(173.00, 11.27 / math.sqrt(3650), 174.41, 11.08 / math.sqrt(3650))
    assert round(a["Z"], 2) == -5.39
    assert a["sigma_level"] == pytest.approx(5.39, abs=0.005)
    assert a["p"] == pytest.approx(2 * a["p_one_sided"])
    assert a["p_one_sided"] < 1e-7


def test_population_by_hand():
    t = pd.DataFrame({"label": [1, 2, 3, 4], "grey_mean": [10.0, 12.0, 11.0, 15.0],
                      "sem": [0.3, 0.4, 0.0, 0.5]})
    p = population(t)
    v = np.array([10.0, 12.0, 11.0, 15.0])
    sigma = math.sqrt(((v - v.mean()) ** 2).sum() / 3)
    ses = sigma / 2
    sem = math.sqrt((0.09 + 0.16 + 0 + 0.25) / 4)
    assert p["n"] == 4 and p["I_mean"] == 12.0
    assert p["sigma"] == pytest.approx(sigma)
    assert p["SES"] == pytest.approx(ses) and p["SEM"] == pytest.approx(sem)
    assert p["SE_tot"] == pytest.approx(math.sqrt(ses**2 + sem**2))


def test_paired_change_by_hand():
    t0 = pd.DataFrame({"label": [1, 2, 3, 9], "grey_mean": [100.0, 110, 120, 5],
                       "sem": [0.2, 0.2, 0.2, 1]})
    t1 = pd.DataFrame({"label": [3, 2, 1], "grey_mean": [118.0, 109, 99.5],
                       "sem": [0.1, 0.3, 0.2]})
    s, per = paired(t0, t1)
    d = np.array([-0.5, -1.0, -2.0])  # labels 1, 2, 3
    assert s["n"] == 3 and s["dI"] == pytest.approx(d.mean())
    ses = d.std(ddof=1) / math.sqrt(3)
    sem_i = np.array([math.hypot(0.2, 0.2), math.hypot(0.2, 0.3), math.hypot(0.2, 0.1)])
    sem = math.sqrt(np.mean(sem_i**2))
    assert s["SE_tot"] == pytest.approx(math.hypot(ses, sem))
    assert s["Z"] == pytest.approx(d.mean() / math.hypot(ses, sem))
    assert sorted(per["label"]) == [1, 2, 3]
    assert percent(per, "delta < -0.75") == pytest.approx(
        {"n": 3, "n_true": 2, "percent": 200 / 3, "se_percent": 100 * math.sqrt(2 / 27)})


def test_subsets():
    t = pd.DataFrame({"label": np.arange(1, 9), "volume_um3": [5, 1, 7, 3, 8, 2, 6, 4.0],
                      "centroid_z_um": [0, 1, 2, 3, 4, 5, 6, 7.0]})
    q = quantile_subsets(t, "volume_um3", 4)
    assert q.tolist() == [2, 0, 3, 1, 3, 0, 2, 1]
    near, edges = position_subsets(t, axis="z", n_bins=2, collector="z0")
    far, _ = position_subsets(t, axis="z", n_bins=2, collector="z1")
    assert near.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert far.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert edges.tolist() == [0.0, 3.5, 7.0]
    with pytest.raises(InputError):
        position_subsets(t, collector="top")
    with pytest.raises(InputError, match="not in the table"):
        quantile_subsets(t, "sphericity", 2)


def test_summarise_states_and_subsets():
    rng = np.random.default_rng(0)
    n = 400
    base = rng.normal(170, 10, n)
    sub = np.arange(n) % 2
    t0 = pd.DataFrame({"label": np.arange(1, n + 1), "grey_mean": base, "sem": 0.1})
    t1 = t0.assign(grey_mean=base - 1.0 * sub + rng.normal(0, 0.2, n))
    s = summarise([t0, t1], subsets=pd.Series(sub, index=t0["label"]), subset_name="cracked",
                  paired=True)  # the caller vouches: same particles in both tables
    row = s[(s.state == 1) & (s.subset == 1)].iloc[0]
    assert row["dI"] == pytest.approx(-1.0, abs=0.05)
    assert row["Z"] < -5 and row["percent_darker"] > 95
    intact = s[(s.state == 1) & (s.subset == 0)].iloc[0]
    assert abs(intact["Z"]) < 4
    # the independent test cannot see a 1-level drop under σ = 10 with 200 particles
    assert abs(row["Z_independent"]) < 2


def test_aggregate_radial():
    r = pd.DataFrame({"label": [1, 1, 2, 2, 3], "layer": [1, 2, 1, 2, 1],
                      "relative_radius": [0.5, 1.0, 0.5, 1.0, 1.0],
                      "grey_norm": [0.0, 1.0, 0.2, 0.8, 0.5]})
    a = aggregate_radial(r, {1: "a", 2: "a", 3: "b"})
    first = a[(a.subset == "a") & (a.x == 1)].iloc[0]
    assert first["mean"] == pytest.approx(0.1) and first["n"] == 2
    assert first["std"] == pytest.approx(np.std([0.0, 0.2], ddof=1))
    assert first["se"] == pytest.approx(first["std"] / math.sqrt(2))
    b = aggregate_radial(r, x="relative_radius", bins=2)
    assert sorted(b["x"].unique()) == [0.25, 0.75]


def test_great2_plots():
    from matplotlib.figure import Figure

    from electrode_ct.report.great2_plots import (
        change_map_figure,
        condition_chart,
        paint_property,
        painted_figure,
        radial_profile_plot,
        state_plot,
    )

    lab = np.zeros((3, 6, 6), np.uint32)
    lab[:, 1:3, 1:3] = 4
    lab[:, 4:6, 4:6] = 9
    t = pd.DataFrame({"label": [4, 9], "grey_mean": [1.5, 2.5]})
    img = paint_property(lab, t, "grey_mean")
    assert img[0, 1, 1] == 1.5 and img[2, 5, 5] == 2.5 and np.isnan(img[0, 0, 0])
    r = pd.DataFrame({"label": [4, 4, 9, 9], "layer": [1, 2, 1, 2],
                      "relative_radius": [0.5, 1, 0.5, 1], "grey_norm": [0, 1, 0.2, 0.9]})
    s = summarise([t.assign(sem=0.1), t.assign(grey_mean=[1.0, 2.0], sem=0.1)])
    figs = [radial_profile_plot(aggregate_radial(r)), state_plot(s), state_plot(s, value="dI"),
            condition_chart({"a": 40.0, "b": 75.0}), painted_figure(lab, t, "grey_mean"),
            change_map_figure(np.random.default_rng(0).normal(size=(5, 6, 7)))]
    assert all(isinstance(f, Figure) for f in figs)


def test_unstamped_tables_get_two_sample_statistics():
    # two unrelated scans whose label ids happen to overlap: nothing may be paired
    rng = np.random.default_rng(3)
    n = 300
    t0 = pd.DataFrame({"label": np.arange(1, n + 1), "grey_mean": rng.normal(170, 10, n),
                       "sem": 0.5})
    t1 = t0.assign(grey_mean=rng.normal(168, 10, n))
    ok, note = pairing([t0, t1], names=["a.parquet", "b.parquet"])
    assert not ok and "no tracking stamp" in note and "a.parquet, b.parquet" in note
    s = summarise([t0, t1])
    row = s[s.state == 1].iloc[0]
    a, b = population(t0), population(t1)
    z = z_test(b["I_mean"], b["SE_tot"], a["I_mean"], a["SE_tot"])
    assert not row["paired"] and row["n_tracked"] == 0 and np.isnan(row["percent_darker"])
    assert row["Z"] == pytest.approx(z["Z"]) == row["Z_independent"]
    assert row["dI"] == pytest.approx(b["I_mean"] - a["I_mean"])
    assert row["dI_SE_tot"] == pytest.approx(math.hypot(a["SE_tot"], b["SE_tot"]))
    # stamped from one reference: paired, exactly as paired() computes it
    s0, s1 = _stamped(t0, "ref-A", 0), _stamped(t1, "ref-A", 1)
    ok, note = pairing([s0, s1])
    assert ok and "paired by label" in note
    row = summarise([s0, s1]).iloc[1]
    ch, _ = paired(t0, t1)
    assert row["paired"] and row["n_tracked"] == n and row["Z"] == pytest.approx(ch["Z"])
    # stamped from two different references: not paired
    ok, note = pairing([s0, _stamped(t1, "ref-B", 1)])
    assert not ok and "different reference" in note
    assert not summarise([s0, _stamped(t1, "ref-B", 1)]).iloc[1]["paired"]
    assert not pairing([s0])[0]


def test_border_particles_left_out():
    t0 = pd.DataFrame({"label": [1, 2, 3, 4], "grey_mean": [10.0, 20, 30, 40],
                       "touches_border": [True, False, False, False]})
    t1 = pd.DataFrame({"label": [1, 2, 3, 4], "grey_mean": [11.0, 21, 31, 41],
                       "touches_border": [False, False, True, False]})
    prep = prepare_tables([t0, t1])
    assert not prep.paired
    assert [t["label"].tolist() for t in prep.tables] == [[2, 3, 4], [1, 2, 4]]
    assert prep.n_border == [1, 1] and "2 border particle rows excluded" in prep.border_note
    # tracked: a particle at the border in any state leaves every state
    prep = prepare_tables([_stamped(t0, "r", 0), _stamped(t1, "r", 1)])
    assert prep.paired and [t["label"].tolist() for t in prep.tables] == [[2, 4], [2, 4]]
    kept = prepare_tables([t0, t1], keep_border=True)
    assert [len(t) for t in kept.tables] == [4, 4] and kept.n_border == [0, 0]
    # the grey table's `border` flag serves when there is no touches_border
    g = t0.rename(columns={"touches_border": "border"})
    assert prepare_tables([g]).tables[0]["label"].tolist() == [2, 3, 4]
    bare = prepare_tables([t0.drop(columns="touches_border")], names=["x.csv"])
    assert len(bare.tables[0]) == 4 and "x.csv has no touches_border or border" in \
        bare.border_note


def test_parse_subsets():
    assert parse_subsets("volume_um3:3", name="--by") == ("volume_um3", 3)
    assert parse_subsets("volume_um3", name="--by") == ("volume_um3", 4)
    assert parse_subsets(None, name="--by") is None
    assert parse_subsets("z:2", name="--position", axis=True) == ("z", 2)
    for bad in ("volume_um3:x", "volume_um3:0", ":3"):
        with pytest.raises(InputError, match="--by: expected COLUMN:N"):
            parse_subsets(bad, name="--by")
    with pytest.raises(InputError, match="AXIS:N"):
        parse_subsets("w:2", name="--position", axis=True)
