"""Bailey et al. from the CLI, the pipeline and the report (#26): SNR/CNR, the scribble
correction loop, threshold-seeded forests, per-method variability figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import yaml

from electrode_ct.io import read, read_table, write
from electrode_ct.volume import Volume

CMAP = {"pore": 0, "cbd": 1, "active": 2}


def _labels(path, arr, cmap=CMAP):
    write(Volume(np.asarray(arr, np.uint8)).with_class_map(cmap), path)
    return path


def _one_error(code, out, err):
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- SNR / CNR -----------------------------------------------------------------------------
def test_quality_cli_equals_analytic_snr_cnr(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    lab = np.zeros((48, 48, 48), np.uint8)
    lab[:, :, 24:] = 2  # two phases, no partial volume: the σ is the noise's
    sigma, mu = 10.0, np.array([100.0, 0.0, 250.0])
    grey = (mu[lab] + rng.normal(0, sigma, lab.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "g.tif", grey)
    _labels(tmp_path / "p.tif", lab, {"pore": 0, "active": 2})
    code, out, err = run_cli("quality", tmp_path / "g.tif", tmp_path / "p.tif", "--json")
    assert code == 0, err
    res = json.loads(out)
    pore, active = res["phases"]["pore"], res["phases"]["active"]
    assert pore["snr"] == pytest.approx(100 / sigma, rel=0.01)
    assert active["snr"] == pytest.approx(250 / sigma, rel=0.01)
    pair = res["pairs"]["pore-active"]
    assert pair["contrast"] == pytest.approx(150, abs=0.2)
    assert pair["cnr"] == pytest.approx(150 / sigma, rel=0.01)
    # exact against numpy on the same voxels
    assert pore["std"] == pytest.approx(float(grey[lab == 0].astype(np.float64).std()), rel=1e-9)
    # a phase of the class map with no voxel, a single phase: one line each
    _labels(tmp_path / "q.tif", lab, {"pore": 0, "cbd": 1, "active": 2})
    line = _one_error(*run_cli("quality", tmp_path / "g.tif", tmp_path / "q.tif"))
    assert "'cbd'" in line
    _labels(tmp_path / "one.tif", np.zeros_like(lab), {"pore": 0})
    assert "two phases" in _one_error(*run_cli("quality", tmp_path / "g.tif",
                                               tmp_path / "one.tif"))
    _labels(tmp_path / "small.tif", lab[:4])
    assert "shape" in _one_error(*run_cli("quality", tmp_path / "g.tif",
                                          tmp_path / "small.tif"))


def test_quality_in_slabs_equals_in_memory(three_phase_phantom):
    from electrode_ct.metrics.quality import (
        image_quality,
        phase_statistics_slabs,
        quality_from_statistics,
    )

    truth, grey = three_phase_phantom
    want = image_quality(grey, truth, class_map=CMAP)
    # uneven slabs; the first holds pore only, so later slabs add label values
    cuts = [0, 2, 9, 23, 40]
    assert set(np.unique(truth[:2]).tolist()) == {0}

    def slabs():
        return ((grey[a:b], truth[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True))

    got = quality_from_statistics(phase_statistics_slabs(slabs, class_map=CMAP),
                                  class_map=CMAP)
    assert got.keys() == want.keys() and got["phases"].keys() == want["phases"].keys()
    for part in ("phases", "pairs"):
        for k, v in want[part].items():
            for key, x in v.items():
                assert got[part][k][key] == pytest.approx(x, rel=1e-12), (part, k, key)


# -- the correction loop -------------------------------------------------------------------
def test_train_forest_add_improves_held_out_accuracy(run_cli, tmp_path, three_phase_phantom):
    from electrode_ct.segment.models import load_model
    from electrode_ct.segment.scribbles import (
        merge_scribbles,
        simulate_scribbles,
        uncertain_regions,
    )

    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "g.tif", grey)
    first = simulate_scribbles(truth, coverage=0.004, n_slices=1, seed=0)  # 2 px per class
    added = simulate_scribbles(truth, coverage=0.01, slices=[10, 30], seed=10)
    tifffile.imwrite(tmp_path / "s.tif", first)
    tifffile.imwrite(tmp_path / "add.tif", added)
    common = ["--trees", "20", "--augment", "0", "--json"]
    code, out, err = run_cli("segment", "train-forest", tmp_path / "g.tif", tmp_path / "s.tif",
                             "--model", tmp_path / "m0.ectmodel", *common)
    assert code == 0, err
    code, out, err = run_cli("segment", "train-forest", tmp_path / "g.tif", tmp_path / "s.tif",
                             "--add", tmp_path / "add.tif", "--model", tmp_path / "m1.ectmodel",
                             "--labels-out", tmp_path / "merged.tif",
                             "--next-regions", tmp_path / "next.csv", "--next-size", "8",
                             *common)
    assert code == 0, err
    res = json.loads(out)
    merged = merge_scribbles(first, added)
    assert np.array_equal(read(tmp_path / "merged.tif").numpy(), merged)
    info = res["training_labels"]
    assert info["n_labelled"] == np.count_nonzero(merged)
    assert info["n_added"] == np.count_nonzero(added) and info["n_relabelled"] == 0
    held = np.ones(truth.shape[0], bool)
    held[[10, 20, 30]] = False  # slices without any stroke
    acc = []
    for name in ("m0", "m1"):
        pred = load_model(tmp_path / f"{name}.ectmodel").predict(grey).labels
        acc.append(float(np.mean((pred == truth + 1)[held])))
    assert acc[1] > acc[0] + 0.02, acc
    # the regions to label next are the model's own most uncertain windows
    unc = load_model(tmp_path / "m1.ectmodel").predict(grey, uncertainty=True).uncertainty
    want = uncertain_regions(unc, n=5, size=8)
    table = read_table(tmp_path / "next.csv")
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table[["z", "y", "x"]].to_numpy().tolist() == [[r["z"], r["y"], r["x"]]
                                                          for r in want]
    assert res["next_regions"]["regions"][0]["mean_uncertainty"] == pytest.approx(
        want[0]["mean_uncertainty"], rel=1e-5)


def test_next_regions_volume_paints_ranked_windows():
    from electrode_ct.segment.scribbles import regions_volume

    vol = regions_volume((10, 20, 20), [{"z": 5, "y": 4, "x": 4}, {"z": 5, "y": 19, "x": 19}],
                         size=6)
    # a window at the border is moved inside, not cut
    assert np.count_nonzero(vol == 1) == np.count_nonzero(vol == 2) == 6 ** 3
    assert vol[5, 4, 4] == 1 and vol[5, 19, 19] == 2 and vol[5, 14, 14] == 2
    assert vol[0, 0, 0] == 0 and vol[5, 13, 13] == 0


def test_train_forest_bad_input(run_cli, tmp_path, three_phase_phantom):
    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "g.tif", grey)
    tifffile.imwrite(tmp_path / "s.tif", (truth + 1).astype(np.uint8))
    tifffile.imwrite(tmp_path / "bad.tif", np.ones((4, 40, 40), np.uint8))
    model = tmp_path / "m.ectmodel"
    base = ["segment", "train-forest", tmp_path / "g.tif"]
    line = _one_error(*run_cli(*base, tmp_path / "s.tif", "--add", tmp_path / "bad.tif",
                               "--model", model))
    assert "bad.tif" in line and "shape" in line
    assert "--seeded" in _one_error(*run_cli(*base, "--model", model))
    assert "--seed-slices" in _one_error(*run_cli(*base, "--seeded", "ML1", "--seed-slices",
                                                  "middle", "--model", model))
    assert "--seeded" in _one_error(*run_cli(*base, "--seeded", "ML4", "--model", model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tif", "g.tif", "s.tif"]


# -- threshold-seeded forests --------------------------------------------------------------
@pytest.mark.parametrize(("variant", "slices", "want"), [
    ("ML1", "first", [0]), ("ML1", None, [12]), ("ML2", "6", None), ("ML3", None, "all")])
def test_train_forest_seeded_slices(run_cli, tmp_path, variant, slices, want):
    rng = np.random.default_rng(1)
    truth = np.zeros((24, 32, 32), np.uint8)
    truth[:, :, 16:] = 1
    truth[:, 8:14, 4:10] = 1  # a bright block inside the dark half
    grey = (np.array([60.0, 180.0])[truth] + rng.normal(0, 10, truth.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "g.tif", grey)
    extra = ["--seed-slices", slices] if slices else []
    code, out, err = run_cli("segment", "train-forest", tmp_path / "g.tif", "--seeded", variant,
                             "--seed-thresholds", "120", *extra, "--trees", "10",
                             "--model", tmp_path / "m.ectmodel", "--labels-out",
                             tmp_path / "seeds.tif", "--json")
    assert code == 0, err
    seeds = read(tmp_path / "seeds.tif").numpy()
    used = np.flatnonzero(np.any(seeds > 0, axis=(1, 2))).tolist()
    if want == "all":
        want = list(range(24))
    elif want is None:  # the paper's ML2: 6 equally spaced slices (the central one among them)
        want = [0, 4, 8, 12, 16, 20]
    assert used == want
    assert np.array_equal(seeds[seeds > 0], truth[seeds > 0] + 1)  # noise 10, cut 60 away
    res = json.loads(out)["training_labels"]["seeds"]
    assert res["variant"] == variant and res["slices"] == want and res["thresholds"] == [120.0]


# -- variability by method -----------------------------------------------------------------
def _users(base, flips, value):
    """Copies of ``base`` with ``flips[k]`` voxels (disjoint sets) turned into ``value``."""
    idx = np.flatnonzero(base != value)
    out, start = [], 0
    for n in flips:
        u = base.copy().ravel()
        u[idx[start:start + n]] = value
        out.append(u.reshape(base.shape))
        start += n
    return out


def test_variability_by_method_exact_counts(run_cli, tmp_path, three_phase_phantom):
    truth, _ = three_phase_phantom
    n = truth.size
    thr = _users(truth, [0, 100, 300], 2)  # active grows by 0, 100, 300 voxels
    ml = _users(truth, [50, 500], 2)
    paths = []
    for k, u in enumerate(thr + ml):
        paths.append(_labels(tmp_path / f"u{k}.tif", u))
    code, out, err = run_cli("variability", *paths, "--methods", "thr,thr,thr,ml,ml",
                             "--reference", "active=0.2", "--subtraction", tmp_path / "sub",
                             "--figure", tmp_path / "fig.png", "--json")
    assert code == 0, err
    res = json.loads(out)["methods"]
    a0 = np.count_nonzero(truth == 2)
    f = (a0 + np.array([0, 100, 300])) / n
    assert res["thr"]["phase_fraction"] == pytest.approx(f.tolist(), abs=1e-12)
    assert res["thr"]["phase_fraction_std"] == pytest.approx(float(np.std(f, ddof=1)), rel=1e-9)
    # disjoint flips: users i and j differ on flips_i + flips_j voxels
    assert res["thr"]["phase_pairs"] == [[0, 1], [0, 2], [1, 2]]
    assert res["thr"]["phase_percent_different"] == pytest.approx(
        [100 * 100 / n, 100 * 300 / n, 100 * 400 / n], rel=1e-12)
    assert res["ml"]["phase_percent_different"] == pytest.approx([100 * 550 / n], rel=1e-12)
    assert res["ml"]["reference"]["mean"]["absolute_difference"] == pytest.approx(
        (a0 + 275) / n - 0.2, abs=1e-12)
    sub = read(tmp_path / "sub" / "thr_2-3.tif").numpy()
    assert np.count_nonzero(sub == 1) == 100 and np.count_nonzero(sub == -1) == 300
    assert (tmp_path / "fig.png").stat().st_size > 1000
    # bad input: one line each
    assert "at least 2 users" in _one_error(*run_cli("variability", *paths[:3],
                                                     "--methods", "a,a,b", "--phase", "active"))
    assert "(0, 1]" in _one_error(*run_cli("variability", *paths[:2], "--reference",
                                           "active=1.4"))
    assert "--methods" in _one_error(*run_cli("variability", *paths[:2], "--methods", "a"))
    assert "at least 2" in _one_error(*run_cli("variability", paths[0]))


# -- pipeline and report ---------------------------------------------------------------------
def test_pipeline_quality_and_variability_in_report(tmp_path, three_phase_phantom):
    from _browser import render
    from electrode_ct.pipeline import parse_config, run_pipeline

    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "g.tif", grey)
    _labels(tmp_path / "truth.tif", truth)
    users = {m: [str(_labels(tmp_path / f"{m}{k}.tif", u)) for k, u in
                 enumerate(_users(truth, flips, 2))]
             for m, flips in {"thr": [0, 40, 90], "ml1": [10, 400, 900]}.items()}
    cfg = {"input": {"grey": [str(tmp_path / "g.tif")], "phases": [str(tmp_path / "truth.tif")],
                     "voxel_size": 0.5},
           "output": str(tmp_path / "out"),
           "steps": {"particles": {"enabled": False}, "measure": {"enabled": False},
                     "stats": {"enabled": False},
                     "metrics": {"phase": "pore", "tortuosity": ["z"]},
                     "variability": {"enabled": True, "segmentations": users,
                                     "phase": "active", "reference": 0.25}}}
    res = run_pipeline(parse_config(cfg, source="test"), quiet=True)
    man = json.loads((tmp_path / "out" / "provenance.json").read_text())
    q = man["steps"]["metrics"]["summary"]["image_quality"]
    assert q["phases"]["active"]["std"] == pytest.approx(8, rel=0.05)  # the phantom's σ
    summ = man["steps"]["variability"]["summary"]
    assert summ["methods"]["thr"]["phase_percent_different"] == pytest.approx(
        [100 * 40 / truth.size, 100 * 90 / truth.size, 100 * 130 / truth.size])
    stack = read(tmp_path / "out" / "volumes" / "variability_subtraction_z.tif").numpy()
    assert stack.shape == (6, 40, 40)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Image quality (SNR / CNR)" in html and "User variability" in html
    shown = render(res["report"], tmp_path)
    alts = [i["alt"] for i in shown["images"]]
    assert "SNR per phase and CNR per pair of phases" in alts and "subtraction images" in alts
    assert all(i["ok"] for i in shown["images"]), shown
    assert shown["errors"] == [] and shown["stderr_errors"] == []


def test_variability_config_refuses_one_user_and_bad_reference(tmp_path):
    from electrode_ct.errors import ConfigError
    from electrode_ct.pipeline import parse_config

    base = {"input": {"grey": ["g.tif"]}}
    for step, word in (({"segmentations": {"thr": ["a.tif"]}}, "at least 2"),
                       ({"reference": 1.5}, "reference")):
        with pytest.raises(ConfigError, match=word):
            parse_config({**base, "steps": {"variability": step}}, source="t")
    yaml.safe_dump(base)


def test_pipeline_seeded_forest_with_added_strokes(tmp_path, three_phase_phantom):
    from electrode_ct.pipeline import parse_config, run_pipeline
    from electrode_ct.segment.scribbles import scribble_slices, simulate_scribbles

    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "g.tif", grey)
    tifffile.imwrite(tmp_path / "t.tif", truth + 1)  # the forest's classes are 1..K
    added = simulate_scribbles(truth, coverage=0.01, slices=[10], seed=3)
    tifffile.imwrite(tmp_path / "add.tif", added)
    cfg = {"input": {"grey": ["g.tif"], "reference": "t.tif"}, "output": "out",
           "steps": {"segment": {"method": "forest", "seeded": "ML2", "seed_slices": "6",
                                 "seed_thresholds": [85, 160], "add": ["add.tif"],
                                 "trees": 10, "next_regions": 3},
                     "particles": {"enabled": False}, "measure": {"enabled": False},
                     "stats": {"enabled": False}, "metrics": {"enabled": False}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from electrode_ct.pipeline import load_config

    run_pipeline(load_config(path), quiet=True)  # relative paths: from the config's folder
    man = json.loads((tmp_path / "out" / "provenance.json").read_text())
    seg = man["steps"]["segment"]
    info = seg["summary"]["training_labels"]
    assert info["seeds"]["slices"] == scribble_slices(40, 6).tolist()
    assert info["sources"] == ["seeds ML2", str(tmp_path / "add.tif")]
    assert info["n_added"] >= 1 and info["n_added"] <= np.count_nonzero(added)
    assert seg["summary"]["quality"]["mean_iou"] > 0.9
    table = read_table(tmp_path / "out" / seg["outputs"]["next_regions"])
    regions = seg["summary"]["next_regions"]["regions"]  # 32-voxel windows: one fits in 40³
    assert table["rank"].tolist() == [1] and len(regions) == 1
    assert table[["z", "y", "x"]].to_numpy().tolist() == [[r["z"], r["y"], r["x"]]
                                                          for r in regions]
    assert parse_config(cfg, source="t").steps.segment.seeded == "ML2"
    from _browser import render

    html = (tmp_path / "out" / "report.html").read_text()
    assert "Forest training labels" in html and "seeds ML2" in html
    shown = render(tmp_path / "out" / "report.html", tmp_path)
    assert "regions to label next" in [i["alt"] for i in shown["images"]]
    assert all(i["ok"] for i in shown["images"]) and shown["errors"] == []


def test_pipeline_quality_streamed_equals_in_memory(tmp_path, three_phase_phantom,
                                                   monkeypatch):
    """Above the in-memory size the metrics step's SNR/CNR come from z slabs of the lazy,
    cropped inputs: the same figures as in memory."""
    from electrode_ct.metrics.quality import image_quality
    from electrode_ct.pipeline import Run, parse_config
    from electrode_ct.pipeline import quality as pq
    from electrode_ct.pipeline.steps import _phases_lazy

    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "g.tif", grey)
    _labels(tmp_path / "p.tif", truth)
    crop = {"z": [3, 37], "x": [0, 30]}
    cfg = parse_config({"input": {"grey": [str(tmp_path / "g.tif")],
                                  "phases": [str(tmp_path / "p.tif")], "crop": crop},
                        "output": str(tmp_path / "out"),
                        "compute": {"in_memory_below_mb": 0}}, source="t")
    monkeypatch.setattr(pq, "SLAB_BYTES", 8 * 40 * 30 * 5)  # 5-slice slabs
    run = Run(cfg, quiet=True)
    try:
        got = pq.image_quality_summary(run, 0, _phases_lazy(run, 0))
        assert not run.cache  # nothing loaded whole (the in-memory path caches the inputs)
    finally:
        run.close()
    want = image_quality(grey[3:37, :, :30], truth[3:37, :, :30], class_map=CMAP)
    for part in ("phases", "pairs"):
        for k, v in want[part].items():
            for key, x in v.items():
                assert got[part][k][key] == pytest.approx(x, rel=1e-12), (part, k, key)
