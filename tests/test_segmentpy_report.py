"""The pipeline's CNN learning curves and perturbed-label ensemble reach the report
(headless Chromium: every image loads, no console errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

from _browser import render  # noqa: E402
from electrode_ct.pipeline import parse_config, run_pipeline  # noqa: E402
from test_cnn import one_thread, phantom_slice  # noqa: E402, F401 (module fixture)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.perturb import perturb_labels
    from electrode_ct.segment.cnn.train import train

    d = tmp_path_factory.mktemp("models")
    img, lab = phantom_slice(0, size=48)
    vimg, vlab = phantom_slice(1, size=48)
    cfg = TrainConfig(channels=4, depth=1, patch=24, patches_per_epoch=16, epochs=2,
                      batch_size=8, members=1)
    paths = []
    for i in range(2):
        res = train(img, perturb_labels(lab, seed=i, mode="2d"), config=cfg, val=(vimg, vlab),
                    class_names=["pore", "cbd", "active"])
        paths.append(res.model.save(d / f"member_{i:02d}.model"))
    return d, paths


def _run(tmp_path, model, ensemble, name, search=None):
    greys, truth = zip(*(phantom_slice(s, size=48) for s in (2, 3, 4)), strict=True)
    tifffile.imwrite(tmp_path / "grey.tif", np.stack(greys))
    tifffile.imwrite(tmp_path / "truth.tif", np.stack(truth))
    off = {"enabled": False}
    cfg = parse_config({"input": {"grey": str(tmp_path / "grey.tif"), "voxel_size": 0.5,
                                  "reference": str(tmp_path / "truth.tif")},
                        "output": str(tmp_path / name),
                        "steps": {"segment": {"method": "cnn", "model": str(model), "two_d": True,
                                              "ensemble": ensemble, "search": search},
                                  "particles": off, "measure": off, "metrics": off,
                                  "stats": off}}, source=name)
    run_pipeline(cfg, quiet=True)
    man = json.loads((tmp_path / name / "provenance.json").read_text())
    return man["steps"]["segment"]["summary"], tmp_path / name


def test_pipeline_report_shows_curves_and_ensemble_spread(tmp_path, models):
    folder, paths = models
    summ, out = _run(tmp_path, paths[0], [str(folder)], "ens")
    assert [r["epoch"] for r in summ["learning_curves"]] == [1, 2]
    ens = summ["ensemble"]
    assert ens["members"] == [str(p) for p in paths]
    pred = ens["predicted"]
    assert pred["n_members"] == 2
    assert sum(pred["volume_fraction"].values()) == pytest.approx(1.0)
    assert set(ens["reference"]["iou"]) == {"pore", "cbd", "active"}
    result = render(out / "report.html", tmp_path)
    alts = {img["alt"] for img in result["images"]}
    assert {"learning curves", "ensemble fractions", "ensemble interface percentages",
            "interface-position histogram", "interface positions against the reference"} <= alts
    assert all(img["ok"] and img["w"] > 100 for img in result["images"]), result
    assert result["errors"] == [] and result["stderr_errors"] == []
    html = (out / "report.html").read_text()
    assert "Perturbed-label ensemble" in html and "mean ± std [95 % CI] over members" in html


def test_identical_members_have_exactly_zero_spread(tmp_path, models):
    _, paths = models
    summ, _ = _run(tmp_path, paths[0], [str(paths[0]), str(paths[0])], "same")
    pred, ref = summ["ensemble"]["predicted"], summ["ensemble"]["reference"]
    for key in ("volume_fraction", "surface_area_um2", "interface_voxel_percent"):
        assert all(v == 0.0 for v in pred[f"{key}_std"].values()), key
        assert all(lo == hi for lo, hi in pred[f"{key}_ci95"].values()), key
    assert ref["mean_iou_std"] == 0.0


def test_one_member_ensemble_is_one_config_error(run_cli, tmp_path, models):
    _, paths = models
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"input: {{grey: {tmp_path / 'g.tif'}}}\noutput: {tmp_path / 'o'}\n"
                   f"steps: {{segment: {{method: cnn, model: {paths[0]}, ensemble: "
                   f"[{paths[0]}]}}}}\n")
    code, _, err = run_cli("run", cfg)
    assert code == 2 and "an ensemble of one member has no spread" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_pipeline_report_shows_the_search_ranking(run_cli, tmp_path, models):
    """``steps.segment.search``: the ranking of an ``ect segment search-cnn`` folder in the
    summary (as the search wrote it) and as a report figure and table; a folder without
    search.json is one config error."""
    _, paths = models
    img, lab = phantom_slice(0, size=48)
    vimg, vlab = phantom_slice(1, size=48)
    for name, arr in (("i", img), ("l", lab), ("vi", vimg), ("vl", vlab)):
        tifffile.imwrite(tmp_path / f"{name}.tif", arr)
    found = tmp_path / "search"
    code, _, err = run_cli("segment", "search-cnn", tmp_path / "i.tif", tmp_path / "l.tif",
                           "--val", tmp_path / "vi.tif", tmp_path / "vl.tif", "--out", found,
                           "--space", "lr=1e-7,5e-3", "--repeats", "2", "--channels", "4",
                           "--patch", "24", "--patches-per-epoch", "16", "--epochs", "1")
    assert code == 0, err
    written = json.loads((found / "search.json").read_text())
    summ, out = _run(tmp_path, paths[0], None, "search", search=str(found))
    assert summ["search"]["ranked"] == written["ranked"]
    assert summ["search"]["parameters"] == ["lr"] and len(summ["search"]["trials"]) == 4
    result = render(out / "report.html", tmp_path)
    assert "hyper-parameter search" in {img["alt"] for img in result["images"]}
    assert all(img["ok"] for img in result["images"]) and result["errors"] == []
    assert "CNN hyper-parameter search" in (out / "report.html").read_text()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"input: {{grey: {tmp_path / 'i.tif'}}}\noutput: {tmp_path / 'o'}\n"
                   f"steps: {{segment: {{method: cnn, model: {paths[0]}, search: "
                   f"{tmp_path / 'nowhere'}}}}}\n")
    code, _, err = run_cli("run", cfg)
    assert code == 2 and "expected a folder written by `ect segment search-cnn" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()
