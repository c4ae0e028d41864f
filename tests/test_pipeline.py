import json
import re

import numpy as np
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

    monkeypatch.setattr("electrode_ct.measure.table.measure_grey", boom)
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


def _segment_only(tmp_path, grey, segment, name="seg"):
    """Run only the segment step on ``grey`` and return (phases array, class map, summary)."""
    from electrode_ct.io import read

    tifffile.imwrite(tmp_path / f"{name}.tif", grey)
    off = {"enabled": False}
    cfg = parse_config({"input": {"grey": str(tmp_path / f"{name}.tif"), "voxel_size": 1.0},
                        "output": str(tmp_path / name),
                        "steps": {"segment": segment, "particles": off, "measure": off,
                                  "metrics": off, "stats": off, "report": off}})
    run_pipeline(cfg, quiet=True)
    vol = read(tmp_path / name / "volumes" / "phases_0.tif")
    man = json.loads((tmp_path / name / "provenance.json").read_text())
    return vol.numpy(), vol.class_map, man["steps"]["segment"]["summary"]["state_0"]


@pytest.mark.parametrize("segment, kwargs", [
    ({"threshold_method": "otsu"}, {"method": "otsu"}),
    ({"threshold_method": "li"}, {"method": "li"}),
    ({"threshold_method": "fraction", "fractions": [0.6, 0.4]},
     {"method": "fraction", "fractions": [0.6, 0.4]}),
    ({"threshold_method": "manual", "thresholds": [100.0]},
     {"method": "manual", "thresholds": [100.0]}),
    ({"threshold_method": "hysteresis", "classes": 2, "thresholds": [100.0, 180.0]},
     {"method": "hysteresis", "thresholds": [100.0, 180.0]}),
    ({"threshold_method": "multiotsu", "two_d": True}, {"method": "multiotsu", "two_d": True}),
])
def test_segment_step_calls_the_threshold_function(tmp_path, three_phase_phantom, segment,
                                                   kwargs):
    from electrode_ct.segment.threshold import threshold

    _, grey = three_phase_phantom
    labels, cmap, summary = _segment_only(tmp_path, grey, {"method": "threshold", **segment})
    expected = threshold(grey, **kwargs)
    np.testing.assert_array_equal(labels, expected)
    n = 3 if kwargs["method"] == "multiotsu" else 2
    assert len(cmap) == n and labels.max() < n  # hysteresis: 2 classes, values 0/1
    assert summary["two_d"] == bool(segment.get("two_d"))


def test_segment_step_two_d_kmeans_and_models(tmp_path, three_phase_phantom, monkeypatch):
    from electrode_ct.segment.kmeans import kmeans
    from electrode_ct.segment.models import Prediction

    _, grey = three_phase_phantom
    grey = grey[:6]
    labels, cmap, _ = _segment_only(tmp_path, grey, {"method": "kmeans", "two_d": True})
    expected = np.stack([kmeans(plane, classes=3, seed=0) for plane in grey])
    np.testing.assert_array_equal(labels, expected)
    assert len(cmap) == 3
    calls = []

    class Stub:
        kind, class_names, class_values = "cnn", ["dark", "bright"], [1, 2]

        def predict(self, volume, **options):
            calls.append(options)
            return Prediction(labels=np.where(volume.numpy() > 120, 2, 1).astype(np.uint8))

    monkeypatch.setattr("electrode_ct.segment.models.load_model", lambda path: Stub())
    model = {"method": "cnn", "model": str(tmp_path / "net.ectmodel")}
    labels, cmap, _ = _segment_only(tmp_path, grey, {**model, "two_d": True}, name="cnn")
    assert calls == [{"two_d": True}] and cmap == {"dark": 1, "bright": 2}
    np.testing.assert_array_equal(labels, np.where(grey > 120, 2, 1))
    _segment_only(tmp_path, grey, model, name="cnn3d")
    assert calls[-1] == {}


def test_reference_state_used_by_every_step(tmp_path, three_phase_phantom):
    from electrode_ct.io import read, read_table

    truth, grey0 = three_phase_phantom
    grey1 = grey0.copy()
    grey1[:, :, 20:] = 50.0  # state 1: only the particles of the left half remain
    tifffile.imwrite(tmp_path / "g0.tif", grey0)
    tifffile.imwrite(tmp_path / "g1.tif", grey1)
    cfg = parse_config({
        "input": {"grey": [str(tmp_path / "g0.tif"), str(tmp_path / "g1.tif")],
                  "voxel_size": 1.0, "reference_state": 1},
        "output": str(tmp_path / "out"),
        "steps": {"segment": {"threshold_method": "manual", "thresholds": [85, 160]},
                  "track": {"enabled": False}, "metrics": {"tortuosity": []},
                  "measure": {"properties": "basic", "exclude_layers": 1},
                  "stats": {"keep_border": True}, "report": {"enabled": False}}})
    run_pipeline(cfg, quiet=True)
    out = tmp_path / "out"
    man = json.loads((out / "provenance.json").read_text())
    particles = read(out / "volumes" / "particles.tif").numpy()
    phases1 = read(out / "volumes" / "phases_1.tif").numpy()
    assert np.array_equal(particles > 0, phases1 == 2)  # separated on state 1
    assert man["steps"]["measure"]["outputs"].keys() == {"particles_1", "radial_1"}
    table = read_table(out / "tables" / "particles_1.parquet").set_index("label")
    for lbl in table.index:  # measured on state 1's grey
        assert table.loc[lbl, "grey_mean"] == pytest.approx(grey1[particles == lbl].mean())
    frac = man["steps"]["metrics"]["summary"]["volume_fraction"]
    assert next(iter(frac.values())) == pytest.approx(float((phases1 == 0).mean()))
    stats = read_table(out / "tables" / "stats.parquet")
    assert stats["state"].tolist() == [1] and stats["n"].tolist() == [len(table)]
    with pytest.raises(ConfigError, match="steps.track.reference was replaced by "
                                          "input.reference_state"):
        parse_config({"input": {"grey": "a.tif"}, "steps": {"track": {"reference": 1}}})
    with pytest.raises(ConfigError, match="input.reference_state 2 does not exist"):
        parse_config({"input": {"grey": ["a.tif", "b.tif"], "reference_state": 2}})


def test_config_values_refused_at_load(run_cli, tmp_path):
    base = {"input": {"grey": "a.tif"}}
    cases = [
        ({"stats": {"by": "volume_um3:x"}}, "steps.stats.by: expected COLUMN:N"),
        ({"stats": {"by": "volume_um3:0"}}, "steps.stats.by: expected COLUMN:N"),
        ({"stats": {"position": "w:2"}}, "steps.stats.position: expected AXIS:N"),
        ({"stats": {"by": "sphericity:3"}, "measure": {"properties": "basic"}},
         "column 'sphericity' is not written by steps.measure"),
    ]
    for steps, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_config({**base, "steps": steps})
    assert parse_config({**base, "steps": {"stats": {"by": "roi_mean:3"}}}).steps.stats.by
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"input": {"grey": "a.tif"}, "output": "o",
                                   "steps": {"stats": {"by": "volume_um3:x"}}}))
    code, _, err = run_cli("run", bad)
    assert code == 2 and err.count("\n") == 1 and "steps.stats.by" in err
    assert not (tmp_path / "o").exists()


def test_tracked_pipeline_pairs_and_drops_border(tmp_path):
    from electrode_ct.io import read_table
    from electrode_ct.operando.phantom import shifted_series
    from electrode_ct.stats import tracking_stamp

    s = shifted_series(shape=(32, 56, 56), radius=(6.0, 8.0), n_particles=25, noise=2.0,
                       seed=3)
    paths = []
    for i, g in enumerate(s.greys):
        tifffile.imwrite(tmp_path / f"s{i}.tif", g)
        paths.append(str(tmp_path / f"s{i}.tif"))
    cfg = {"input": {"grey": paths, "voxel_size": 1.0}, "output": str(tmp_path / "out"),
           "steps": {"segment": {"threshold_method": "otsu"}, "metrics": {"enabled": False},
                     "measure": {"properties": "basic", "exclude_layers": 1},
                     "stats": {"roi": False}}}
    run_pipeline(parse_config(cfg), quiet=True)
    out = tmp_path / "out"
    man = json.loads((out / "provenance.json").read_text())
    t = [read_table(out / "tables" / f"particles_{i}.parquet") for i in (0, 1)]
    stamps = [tracking_stamp(x) for x in t]
    assert stamps[0]["reference_id"] == stamps[1]["reference_id"]
    assert [st["state"] for st in stamps] == [0, 1]
    summ = man["steps"]["stats"]["summary"]
    assert summ["paired"] and summ["n_border_excluded"] == [0, 0]  # track dropped them
    stats = read_table(out / "tables" / "stats.parquet")
    assert stats.loc[stats.state == 1, "n_tracked"].iloc[0] == len(t[0]) > 0
    assert "paired by label" in (out / "report.html").read_text()


def _literal(text):
    """A documented default written as a plain literal (number, true/false, `word`) or None."""
    text = text.split(";")[0].strip()
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"`[\w-]+`", text):
        return text.strip("`")
    try:
        return float(text)
    except ValueError:
        return None


def test_docs_config_keys_match_the_model():
    from pathlib import Path

    from electrode_ct.pipeline.config import PipelineConfig, Steps

    doc = (Path(__file__).parents[1] / "docs" / "pipeline.md").read_text()
    section = doc.split("## Configuration keys")[1].split("\n## ")[0]
    bullets = re.findall(r"^- `([\w.]+)`(.*?)(?=^- |\Z)", section, flags=re.M | re.S)
    models = {"input": PipelineConfig.model_fields["input"].annotation,
              "output": PipelineConfig,
              "compute": PipelineConfig.model_fields["compute"].annotation}
    models.update({f"steps.{k}": f.annotation for k, f in Steps.model_fields.items()})
    assert {head for head, _ in bullets} == set(models)
    for head, text in bullets:
        model = models[head]
        text = f"`{head}`{text}" if head == "output" else text
        for name in set(model.model_fields) - {"enabled", "input", "steps", "compute"}:
            assert f"`{name}`" in text, f"{head}.{name} is not documented"
        for name, default in re.findall(r"`(\w+)` \(([^()]*)\)", text):
            value = _literal(default)
            if name in model.model_fields and value is not None:
                assert model.model_fields[name].default == value, f"{head}.{name}: {default}"


def test_stats_step_leaves_out_border_particles(phantom_config, tmp_path):
    from electrode_ct.io import read_table

    path, cfg = phantom_config
    cfg["input"]["crop"] = {"x": [0, 24]}  # cuts two of the four spheres at x = 24
    cfg["input"].pop("reference")
    cfg["steps"]["stats"] = {"roi": False}  # grey_mean: every particle has a value
    path.write_text(yaml.safe_dump(cfg))
    run_pipeline(load_config(path), quiet=True)
    out = tmp_path / "out"
    table = read_table(out / "tables" / "particles_0.parquet")
    n_border = int(table["touches_border"].sum())
    assert 0 < n_border < len(table)
    stats = read_table(out / "tables" / "stats.parquet")
    assert stats["n"].tolist() == [len(table) - n_border]
    man = json.loads((out / "provenance.json").read_text())
    assert man["steps"]["stats"]["summary"]["n_border_excluded"] == [n_border]
    html = (out / "report.html").read_text()
    assert f"{n_border} border particle rows excluded" in html
    assert "left out of the population statistics" in html
    cfg["steps"]["stats"]["keep_border"] = True
    path.write_text(yaml.safe_dump(cfg))
    again = run_pipeline(load_config(path), quiet=True)
    assert "measure" in again["skipped"] and "stats" in again["ran"]
    assert read_table(out / "tables" / "stats.parquet")["n"].tolist() == [len(table)]
