import json

import pytest
import tifffile
import yaml

from _browser import render
from electrode_ct.errors import ConfigError
from electrode_ct.pipeline import load_config, parse_config, run_pipeline, template


@pytest.fixture
def phantom_config(tmp_path, three_phase_phantom):
    truth, grey = three_phase_phantom
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    tifffile.imwrite(tmp_path / "truth.tif", truth)
    cfg = {
        "input": {"grey": "grey.tif", "voxel_size": 0.5, "reference": "truth.tif"},
        "output": "out",
        "steps": {
            "segment": {"method": "threshold", "threshold_method": "multiotsu", "classes": 3},
            "particles": {"phase": "active"},
            "metrics": {"enabled": False},
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def test_end_to_end_resume_and_report(phantom_config, tmp_path):
    path, cfg = phantom_config
    first = run_pipeline(load_config(path), quiet=True)
    assert first["ran"][:3] == ["segment", "particles", "measure"] and not first["skipped"]
    out = tmp_path / "out"
    man = json.loads((out / "provenance.json").read_text())
    quality = man["steps"]["segment"]["summary"]["quality"]
    assert quality["mean_iou"] > 0.95  # well-separated phantom
    assert man["steps"]["particles"]["summary"]["n_particles"] == 4
    assert set(man["versions"]) >= {"python", "numpy"}
    assert (out / "run.log").read_text().count("running") == len(first["ran"])
    # unchanged config: everything skipped
    second = run_pipeline(load_config(path), quiet=True)
    assert second["ran"] == [] and "segment" in second["skipped"]
    # a changed particle parameter reruns that step and the ones after it only
    cfg["steps"]["particles"]["min_volume_um3"] = 1.0
    path.write_text(yaml.safe_dump(cfg))
    third = run_pipeline(load_config(path), quiet=True)
    assert "segment" in third["skipped"]
    assert third["ran"][:3] == ["particles", "measure", "stats"]
    result = render(out / "report.html", tmp_path)
    assert len(result["images"]) >= 4
    assert all(img["ok"] for img in result["images"]) and result["errors"] == []


def test_interrupted_step_leaves_no_output_and_resumes(phantom_config, tmp_path, monkeypatch):
    path, _ = phantom_config
    from electrode_ct.pipeline import steps

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("electrode_ct.measure.measure_grey", boom)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_config(path), quiet=True)
    out = tmp_path / "out"
    assert not (out / "tables").exists() or not list((out / "tables").glob("*"))
    assert not list(out.rglob("*.tmp*"))
    monkeypatch.undo()
    assert steps  # module still importable
    res = run_pipeline(load_config(path), quiet=True)
    assert "segment" in res["skipped"] and "measure" in res["ran"]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'steps.segment.methd'.*allowed"):
        parse_config({"input": {"grey": "a.tif"}, "steps": {"segment": {"methd": "x"}}})
    with pytest.raises(ConfigError, match="steps.measure needs steps.particles"):
        parse_config({"input": {"grey": "a.tif"}, "steps": {"particles": {"enabled": False}}})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    for preset in ("nano", "micro", "operando"):
        parse_config(yaml.safe_load(template(preset)))


def test_cli_run_errors(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {grey: a.tif}\nstepz: {}\n")
    code, _, err = run_cli("run", bad)
    assert code == 2 and "unknown config key 'stepz'" in err and "Traceback" not in err
    missing = tmp_path / "m.yaml"
    missing.write_text("input: {grey: nothere.tif}\nsteps: {metrics: {enabled: false}}\n")
    code, _, err = run_cli("run", missing)
    assert code == 2 and "nothere.tif" in err
    code, _, _ = run_cli("config", "init", tmp_path / "t.yaml", "--preset", "nano")
    assert code == 0 and "multiotsu" in (tmp_path / "t.yaml").read_text()
