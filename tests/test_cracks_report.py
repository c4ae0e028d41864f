"""Daemi et al. figures (#26): classifier curves, % flawed intervals and sweep, 3-D views,
from the library, the CLI, the pipeline and the report (headless Chromium)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from electrode_ct.errors import InputError


def test_precision_recall_matches_sklearn():
    from sklearn.metrics import average_precision_score, precision_recall_curve

    from electrode_ct.cracks.evaluate import average_precision, curves, precision_recall

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + 0.4 * y, 2)  # ties on purpose
    p, r, t = precision_recall(y, s)
    sp, sr, st = precision_recall_curve(y, s)
    assert np.allclose(p, sp[:-1][::-1]) and np.allclose(r, sr[:-1][::-1])
    assert np.allclose(t, st[::-1])
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    c = curves(y, s, s >= 0.7)
    assert c["confusion"]["tp"] == int((y & (s >= 0.7)).sum())
    assert c["roc"]["fpr"][0] == 0 and c["roc"]["thresholds"][0] is None
    json.dumps(c)  # JSON-ready


def test_sweep_and_its_intervals():
    from scipy.stats import binomtest

    from electrode_ct.cracks.cnn_model import check_min_slices, flawed_by_slices, m_sweep
    from electrode_ct.cracks.evaluate import percent_flawed
    from electrode_ct.cracks.spread import sweep_intervals

    rng = np.random.default_rng(0)
    prob = rng.random((120, 6)) ** 3
    sweep = m_sweep(prob)
    # m = 1: the plain % flawed of "any slice flawed"; m = k: "every slice flawed"
    assert sweep[1] == pytest.approx(percent_flawed((prob >= 0.5).any(axis=1)))
    assert sweep[6] == pytest.approx(percent_flawed((prob >= 0.5).all(axis=1)))
    assert sweep[2] == percent_flawed(flawed_by_slices(prob, 2))
    ci = sweep_intervals(sweep, 120)
    for m, p in sweep.items():
        ref = binomtest(round(p * 1.2), 120).proportion_ci(0.95, method="wilson")
        assert ci[m] == pytest.approx([100 * ref.low, 100 * ref.high])
    for bad in (0, -1, 7, 1.5):
        with pytest.raises(InputError, match="--min-slices"):
            flawed_by_slices(prob, bad)
    assert check_min_slices(6, 6) == 6


def test_percent_flawed_over_subvolumes():
    from scipy import stats

    from electrode_ct.cracks.spread import percent_flawed_subvolumes

    # 2 x 2 x 2 cubes of 10 voxels; cube c holds c + 2 particles, of which c % 3 flawed
    cents, flawed, truth = [], [], []
    for c, (iz, iy, ix) in enumerate(np.ndindex(2, 2, 2)):
        n, k = c + 2, c % 3
        for j in range(n):
            cents.append((10 * iz + 1 + j, 10 * iy + 5, 10 * ix + 5))
            flawed.append(j < k)
        truth.append(100.0 * k / n)
    res = percent_flawed_subvolumes(flawed, np.array(cents, float), (20, 20, 20),
                                    (0.5, 0.5, 0.5), 5.0)
    assert res["n"] == res["n_grid"] == 8 and res["n_particles"] == list(range(2, 10))
    assert res["percent_flawed"] == pytest.approx(truth)
    lo, hi = stats.t.interval(0.95, 7, loc=np.mean(truth), scale=stats.sem(truth))
    assert res["ci95"] == pytest.approx([lo, hi]) and res["std"] == pytest.approx(
        np.std(truth, ddof=1))
    # a cube without particles is left out (not a 0 %)
    keep = np.array(cents)[:, 0] < 10
    part = percent_flawed_subvolumes(np.array(flawed)[keep], np.array(cents, float)[keep],
                                     (20, 20, 20), (0.5,) * 3, 5.0)
    assert part["n"] == 4 and part["n_grid"] == 8
    # a % cannot leave [0, 100]: the t-interval of 0, 0, 0, 100 % is clipped at 0
    few = percent_flawed_subvolumes([0, 0, 0, 1], [[1, 5, 5], [1, 5, 15], [1, 15, 5],
                                                   [1, 15, 15]], (20, 20, 20), (0.5,) * 3, 5.0)
    assert few["percent_flawed"] == [0, 0, 0, 100] and few["ci95"] == [0.0, 100.0]
    for size in (11.0, 10.0):  # larger than the volume; one sub-volume only
        with pytest.raises(InputError, match="subvolume-um"):
            percent_flawed_subvolumes(flawed, np.array(cents, float), (20, 20, 20),
                                      (0.5,) * 3, size)


def test_reference_by_overlap_maps_a_relabelled_segmentation():
    import pandas as pd

    from electrode_ct.cracks.evaluate import reference_by_overlap

    ref = np.zeros((10, 10, 30), np.uint16)
    for i in range(3):
        ref[2:8, 2:8, 10 * i + 2:10 * i + 8] = i + 1
    truth = pd.DataFrame({"label": [1, 2, 3], "cracked": [0, 1, 1]})
    mine = np.zeros_like(ref)
    mine[ref == 1], mine[ref == 2], mine[ref == 3] = 30, 10, 20  # other ids
    mine[2:8, 2:8, 6:13] = 10  # particle 10 reaches into reference 1, mostly in 2
    got = reference_by_overlap(mine, ref, truth).set_index("label")
    assert got.loc[[10, 20, 30], "reference_label"].tolist() == [2, 3, 1]
    assert got.loc[[10, 20, 30], "flawed"].tolist() == [1, 1, 0]
    assert got.loc[20, "overlap"] == 1.0 and got.loc[10, "overlap"] == 6 / 12  # x 6-17
    with pytest.raises(InputError, match="shape"):
        reference_by_overlap(mine[:5], ref, truth)


def _red_pixels(fig):
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255
    return (rgb[..., 0] > 0.25) & (rgb[..., 0] > rgb[..., 1] + 0.15)


def test_render_of_a_known_sphere():
    import matplotlib.pyplot as plt

    from electrode_ct.report.render3d import particle_meshes, render_particles

    z, y, x = np.mgrid[:32, :32, :64]
    centres = {}
    for name, cx in (("left", 14), ("right", 50)):
        lab = (((z - 16) ** 2 + (y - 16) ** 2 + (x - cx) ** 2) <= 100).astype(np.uint16) * 7
        verts, _ = particle_meshes(lab, (1, 1, 1), [7])[7]
        r = np.linalg.norm(verts - (16, 16, cx), axis=1)
        assert np.all(np.abs(r - 10) < 1.0)  # the mesh is the sphere's surface
        fig, info = render_particles(lab, (1, 1, 1), colours={7: "red"}, elev=90, azim=-90)
        assert info["n_particles"] == 1 and info["n_faces"] > 100 and info["stride"] == 1
        red = _red_pixels(fig)
        assert red.sum() > 500
        centres[name] = np.argwhere(red)[:, 1].mean() / red.shape[1]
        plt.close(fig)
    # seen from above: the sphere is drawn where it is (left / right of the image)
    assert centres["left"] < 0.45 < 0.55 < centres["right"]
    fig, info = render_particles(np.zeros((8, 8, 8), np.uint8), (1, 1, 1))
    assert info["n_particles"] == 0 and _red_pixels(fig).sum() == 0
    plt.close(fig)
    with pytest.raises(InputError, match="labels"):
        render_particles(np.zeros((8, 8)), (1, 1, 1))


@pytest.fixture(scope="module")
def cracked(tmp_path_factory):
    """A nano-CT phantom with cracks and a tiny CNN trained on a second one."""
    pytest.importorskip("torch")
    from electrode_ct.cracks import prepare_scan, train_cracks_model
    from electrode_ct.cracks.cnn_model import CNNConfig
    from electrode_ct.synth import electrode

    out = tmp_path_factory.mktemp("cracks_report")
    kw = dict(voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.7, modality="nano",
              crack_width_um=1.0)
    ph = electrode((48, 56, 56), seed=5, **kw)
    ph.save(out / "ph")
    tr = electrode((48, 56, 56), seed=6, **kw)
    scan = prepare_scan(tr.grey.numpy(), tr.particles.numpy(), spacing=tr.grey.spacing)
    cfg = CNNConfig(channels=(4, 8), epochs=3, patience=3, batch=64, seed=1, threads=1)
    model = train_cracks_model(scan, tr.truth, method="cnn", k=4, slice_size=24,
                               cnn_config=cfg)
    model.save(out / "cnn.ectmodel")
    return out


def test_cnn_training_record(cracked):
    from electrode_ct.cracks.cnn_model import HISTORY_KEYS
    from electrode_ct.segment.models import read_header

    tr = read_header(cracked / "cnn.ectmodel")["training"]
    h = tr["history"]
    assert set(h) == set(HISTORY_KEYS) and h["epoch"] == [1.0, 2.0, 3.0][:tr["epochs_run"]]
    assert all(len(v) == tr["epochs_run"] for v in h.values())
    assert all(0 <= a <= 1 for a in h["train_accuracy"] + h["val_accuracy"])
    assert h["val_loss"] == tr["val_history"] and min(h["val_loss"]) == tr["best_val_loss"]
    v = tr["validation"]
    assert v["auc"] == pytest.approx(tr["val_auc"])
    cm = v["confusion"]
    assert sum(cm.values()) == tr["n_val"] and cm["tp"] + cm["fn"] == tr["n_val_flawed"]


def test_cli_json_keys_and_bad_input(run_cli, cracked, tmp_path):
    ph = cracked / "ph"
    args = ("cracks", "classify", ph / "grey.tif", ph / "particles.tif")
    code, out, err = run_cli(*args, "--out", tmp_path / "o", "--model", cracked / "cnn.ectmodel",
                             "--truth", ph / "truth.parquet", "--subvolume-um", "7", "--json")
    assert code == 0, err
    s = json.loads(out)
    sub = s["percent_flawed_subvolumes"]
    assert sub["size_um"] == 7 and sub["n_grid"] == 3 * 4 * 4 and len(sub["ci95"]) == 2
    assert sum(sub["n_particles"]) <= s["n_particles"]
    assert s["percent_flawed_vs_m"]["1"] >= s["percent_flawed_vs_m"]["4"]
    assert set(s["percent_flawed_vs_m_ci95"]) == {"1", "2", "3", "4"}
    assert {"roc", "pr", "average_precision", "confusion"} <= set(s)
    assert len(s["roc"]["fpr"]) == len(s["pr"]["precision"]) + 1
    code, out, err = run_cli("cracks", "train", ph / "grey.tif", ph / "particles.tif",
                             ph / "truth.parquet", "--model", tmp_path / "m.ectmodel",
                             "--method", "cnn", "--slices", "3", "--slice-size", "16",
                             "--epochs", "2", "--json")
    assert code == 0, err
    t = json.loads(out)
    assert len(t["history"]["train_loss"]) == t["epochs_run"] and "roc" in t["validation"]
    for extra, needle in ((("--subvolume-um", "500"), "--subvolume-um"),
                          (("--min-slices", "0"), "--min-slices"),
                          (("--min-slices", "9", "--model", cracked / "cnn.ectmodel"),
                           "--min-slices")):
        dest = tmp_path / f"bad{needle}{len(extra)}"
        code, out, err = run_cli(*args, "--out", dest, *extra)
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
        assert needle in err and not dest.exists()


def test_pipeline_report_shows_the_cracks_figures(cracked, tmp_path):
    from _browser import render
    from electrode_ct.pipeline import parse_config, run_pipeline

    ph = cracked / "ph"
    cfg = parse_config({
        "input": {"grey": [str(ph / "grey.tif")]},
        "output": str(tmp_path / "out"),
        "steps": {"segment": {"method": "threshold", "threshold_method": "multiotsu",
                              "classes": 3},
                  "particles": {"phase": "active", "heal_cracks_um": 1.0,
                                "min_volume_um3": 5.0},
                  "measure": {"radial": False, "bootstrap": 20},
                  "metrics": {"enabled": False}, "stats": {"enabled": False},
                  "cracks": {"enabled": True, "method": "cnn",
                             "model": str(cracked / "cnn.ectmodel"), "subvolume_um": 10.0,
                             "truth": [str(ph / "truth.parquet")],
                             "truth_labels": [str(ph / "particles.tif")]}}})
    run_pipeline(cfg, quiet=True)
    out = tmp_path / "out"
    s = json.loads((out / "provenance.json").read_text())["steps"]["cracks"]["summary"]
    s = s["state_0"]
    import pandas as pd

    from electrode_ct.cracks.evaluate import reference_by_overlap
    from electrode_ct.io import read, read_table

    assert s["percent_flawed_subvolumes"]["size_um"] == 10 and 0 <= s["auc"] <= 1
    # the run's particles take the phantom's truth through their overlap
    table = read_table(out / "tables" / "cracks_0.parquet")
    ref = reference_by_overlap(read(out / "volumes" / "particles.tif").numpy(),
                               read(ph / "particles.tif").numpy(),
                               pd.read_parquet(ph / "truth.parquet")).set_index("label")
    assert (table["reference_flawed"].to_numpy()
            == ref.loc[table["label"], "flawed"].to_numpy().astype(bool)).all()
    assert s["percent_flawed_truth"] == pytest.approx(100 * table["reference_flawed"].mean())
    assert s["confusion"]["tp"] + s["confusion"]["fn"] == pytest.approx(
        s["percent_flawed_truth"] * s["n_particles"] / 100)
    result = render(out / "report.html", tmp_path)
    alts = {img["alt"] for img in result["images"]}
    assert {"% flawed with binomial and sub-volume intervals",
            "% flawed against flawed slices required", "classifier training curves",
            "validation ROC, precision-recall and confusion matrix",
            "ROC, precision-recall and confusion matrices against the reference",
            "3-D views of labelled and flawed particles"} <= alts
    assert all(img["ok"] for img in result["images"]) and result["errors"] == []
    html = (out / "report.html").read_text()
    assert "http" not in html.split("<body", 1)[1].replace("http://www.w3.org", "")


def test_classifier_figure_says_why_a_curve_is_missing():
    import matplotlib.pyplot as plt

    from electrode_ct.cracks.evaluate import curves
    from electrode_ct.report.cracks_figures import classifier_figure

    s = np.linspace(0, 1, 10)
    one_class = curves(np.zeros(10), s, s >= 0.5)
    both = curves(np.arange(10) % 2, s, s >= 0.5)
    fig = classifier_figure({"a": one_class, "b": both}, title="t")
    roc_ax = fig.axes[0]
    texts = [t.get_text() for t in roc_ax.get_legend().get_texts()]
    assert texts == ["a: AUC n/a (one class only)", f"b: AUC {both['auc']:.3f}"]
    assert [len(line.get_xdata()) for line in roc_ax.get_lines()[1:]] == [0, 11]
    # [[tn, fp], [fn, tp]]: "a" calls 5 of its 10 intact particles flawed
    assert [t.get_text() for t in fig.axes[2].texts] == ["5", "5", "0", "0"]
    assert [t.get_text() for t in fig.axes[3].texts] == ["3", "2", "2", "3"]
    plt.close(fig)


def test_pipeline_truth_config_errors(tmp_path):
    from electrode_ct.errors import ConfigError
    from electrode_ct.pipeline import parse_config

    base = {"input": {"grey": ["a.tif", "b.tif"]}, "output": str(tmp_path / "o")}
    for cracks in ({"truth": ["1", "2", "3"]}, {"truth": ["1"], "truth_labels": ["1", "2"]},
                   {"subvolume_um": 0}):
        with pytest.raises(ConfigError, match="steps.cracks|subvolume_um"):
            parse_config({**base, "steps": {"cracks": {"enabled": True, **cracks}}})
    ok = parse_config({**base, "steps": {"cracks": {"enabled": True, "truth": ["t.csv"],
                                                    "truth_labels": ["p.tif"]}}})
    assert [p.endswith(n) for p, n in zip(ok.steps.cracks.truth + ok.steps.cracks.truth_labels,
                                          ("t.csv", "p.tif"), strict=True)] == [True, True]
