"""The bad-input matrix of the whole CLI (issue 27): every command that reads a file ×
{missing file, empty file, truncated file, wrong dtype, wrong shape/dimensionality, empty
(0-voxel) volume, NaN and inf values, a 4-D array, a huge-header file}.

Each case must exit 2 with exactly one ``error:`` line on stderr naming the file (or the
option) and what was expected, no traceback, and write nothing. The few combinations that
are not errors, or that make no sense for a command, are listed with the reason in
:data:`NOT_AN_ERROR` and :data:`NOT_APPLICABLE`; the number of cases is printed at the end of
the test session (``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

KINDS = ("missing", "empty", "truncated", "wrong_dtype", "wrong_shape", "empty_volume",
         "nan_inf", "four_d", "huge_header")

# command -> (role of the file under test, argv with {in} for it and {grey}, {labels},
# {phases}, {scribbles}, {table}, {truth}, {model} for valid companions, {out} for outputs)
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "info": ("grey", ["info", "{in}"]),
    "convert": ("grey", ["convert", "{in}", "{out}/v.tif"]),
    "filter": ("grey", ["filter", "{in}", "{out}/v.tif", "--method", "gaussian"]),
    "crop": ("grey", ["crop", "{in}", "{out}/v.tif", "--z", "0:2"]),
    "resample": ("grey", ["resample", "{in}", "{out}/v.tif", "--voxel-size", "2"]),
    "scribbles": ("labels", ["scribbles", "{in}", "{out}/s.tif"]),
    "compare": ("labels", ["compare", "{in}", "{phases}"]),
    "variability": ("phases", ["variability", "{in}", "{phases}"]),
    "quality": ("grey", ["quality", "{in}", "{phases}"]),
    "quality (phases)": ("phases", ["quality", "{grey}", "{in}"]),
    "particles": ("phases", ["particles", "{in}", "{out}/p.tif", "--phase", "2"]),
    "particles learned": ("grey", ["particles", "{in}", "{out}/p.tif", "--method", "learned"]),
    "particles train": ("grey", ["particles", "train", "{in}", "{labels}",
                                 "--model", "{out}/m.ectmodel", "--epochs", "1"]),
    "psd": ("table", ["psd", "{in}", "--plot", "{out}/psd.png"]),
    "coco": ("grey", ["coco", "{in}", "{labels}", "{out}/coco"]),
    "compare-instances": ("labels", ["compare-instances", "{in}", "{labels}"]),
    "measure": ("labels", ["measure", "{in}", "--out", "{out}/t.parquet"]),
    "track": ("labels", ["track", "{in}", "{grey}", "{grey}", "--out", "{out}/track"]),
    "stats": ("table", ["stats", "{in}", "--out", "{out}/s.parquet"]),
    "metrics": ("phases", ["metrics", "{in}", "--tortuosity", "none"]),
    "run": ("config", ["run", "{in}"]),
    "segment threshold": ("grey", ["segment", "threshold", "{in}", "{out}/t.tif"]),
    "segment watershed": ("grey", ["segment", "watershed", "{in}", "{out}/w.tif",
                                   "--low", "80", "--high", "160"]),
    "segment kmeans": ("grey", ["segment", "kmeans", "{in}", "{out}/k.tif"]),
    "segment train-forest": ("grey", ["segment", "train-forest", "{in}", "{scribbles}",
                                      "--model", "{out}/f.ectmodel", "--trees", "2"]),
    "segment train-cnn": ("grey", ["segment", "train-cnn", "{in}", "{scribbles}",
                                   "--model", "{out}/c.ectmodel", "--epochs", "1"]),
    "segment ensemble": ("grey", ["segment", "ensemble", "{in}", "{scribbles}",
                                  "--out", "{out}/ens", "--n", "2", "--epochs", "1"]),
    "segment ensemble --predict": ("grey", ["segment", "ensemble", "{grey}", "{scribbles}",
                                            "--out", "{out}/ens", "--n", "2", "--epochs", "1",
                                            "--predict", "{in}"]),
    "segment ensemble --test-image": ("grey", ["segment", "ensemble", "{grey}", "{scribbles}",
                                               "--out", "{out}/ens", "--n", "2", "--epochs",
                                               "1", "--test-image", "{in}", "--test-labels",
                                               "{scribbles}"]),
    "segment search-cnn": ("grey", ["segment", "search-cnn", "{in}", "{scribbles}", "--val",
                                    "{grey}", "{scribbles}", "--out", "{out}/search",
                                    "--space", "lr=1e-3", "--repeats", "1", "--epochs", "1"]),
    "segment interface-positions": ("labels", ["segment", "interface-positions", "{in}",
                                               "{labels}", "--plot", "{out}/ip.png"]),
    "segment predict": ("grey", ["segment", "predict", "{model}", "{in}", "{out}/p.tif"]),
    "cracks classify": ("grey", ["cracks", "classify", "{in}", "{labels}",
                                 "--out", "{out}/cracks"]),
    "cracks train": ("grey", ["cracks", "train", "{in}", "{labels}", "{truth}",
                              "--model", "{out}/m.ectmodel"]),
    "segment predict (model)": ("model", ["segment", "predict", "{in}", "{grey}",
                                          "{out}/p.tif"]),
    "segment curves": ("model", ["segment", "curves", "{in}", "--out", "{out}/c.png"]),
    "segment export": ("model", ["segment", "export", "{in}", "{out}/pkg",
                                 "--format", "bioimageio"]),
    "model convert": ("model", ["model", "convert", "{in}", "{out}/m.ectmodel", "--trust"]),
    "cluster script": ("config", ["cluster", "script", "--config", "{in}"]),
}
MODEL_KINDS = ("missing", "empty", "truncated")  # the kinds a file without voxels can have

# combinations that make no sense, with the reason (no case is generated for them)
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    **{(c, k): "a table has no voxel grid: no dimensionality, no 4-D, no array header"
       for c in ("psd", "stats") for k in ("four_d", "huge_header")},
    **{(c, k): "synth, config init and demo read no input file" for c in
       ("synth", "config init", "demo") for k in KINDS},
    **{("cluster script", k): "cluster script reads the config's compute section, not the "
       "volume it names" for k in KINDS if k not in MODEL_KINDS},
    **{(c, k): "a model archive has no voxel grid or voxel type (wrong kinds, formats, "
       "class maps and damaged payloads: tests/test_model_files.py)"
       for c, (role, _) in COMMANDS.items() if role == "model"
       for k in KINDS if k not in MODEL_KINDS},
    **{("view", k): "opens a window: a missing file or unknown type is one error line "
       "before it opens (tests/test_napari_view.py); damaged files are reported in it"
       for k in KINDS},
}

# combinations where the input is valid for the command: it must succeed (exit 0)
NOT_AN_ERROR: dict[tuple[str, str], str] = {
    ("info", "nan_inf"): "info describes a file as it is; NaN/inf are reported, not refused",
    ("convert", "nan_inf"): "convert copies values; NaN is data for a format conversion",
    ("crop", "nan_inf"): "crop copies values; NaN is data for a crop",
    ("particles", "wrong_dtype"): "float phases are a particle probability map (documented)",
}

CASES = [pytest.param(cmd, kind, id=f"{cmd}-{kind}") for cmd in COMMANDS for kind in KINDS
         if (cmd, kind) not in NOT_APPLICABLE]


def _grey() -> np.ndarray:
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:12, :16, :16]
    inside = (z - 6) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 < 25
    return (np.where(inside, 200.0, 60.0) + rng.normal(0, 5, inside.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Valid companion files (a 12 x 16 x 16 phantom, its phases, particles, scribbles,
    a particle table, a truth table and a small forest model)."""
    from electrode_ct.segment.forest_train import train_forest

    root = tmp_path_factory.mktemp("good")
    grey = _grey()
    phases = np.where(grey > 130, 2, 0).astype(np.uint8)
    labels = (phases == 2).astype(np.uint32)
    scribbles = np.zeros(grey.shape, np.uint8)
    scribbles[6, :2, :2], scribbles[6, 7:9, 7:9] = 1, 2
    files = {"grey": root / "grey.tif", "phases": root / "phases.tif",
             "labels": root / "labels.tif", "scribbles": root / "scribbles.tif",
             "table": root / "table.parquet", "truth": root / "truth.csv",
             "model": root / "forest.ectmodel"}
    for name, arr in (("grey", grey), ("phases", phases), ("labels", labels),
                      ("scribbles", scribbles)):
        tifffile.imwrite(files[name], arr)
    pd.DataFrame({"label": [1, 2, 3], "volume_um3": [1.0, 8.0, 27.0],
                  "equivalent_diameter_um": [1.2, 2.5, 3.7], "grey_mean": [1.0, 2.0, 3.0],
                  "state": [0, 0, 0]}).to_parquet(files["table"])
    files["truth"].write_text("label,flawed\n1,0\n")
    train_forest(grey, scribbles, n_trees=2, max_depth=3, n_jobs=1).save(files["model"])
    return files


def _array_file(folder: Path, kind: str, role: str) -> Path:
    """The bad volume of one kind (as .npy unless the kind is about the file bytes)."""
    base = {"grey": _grey(), "labels": (_grey() > 130).astype(np.uint32),
            "phases": np.where(_grey() > 130, 2, 0).astype(np.uint8)}[role]
    arr = {
        "wrong_dtype": (base.astype(np.complex64) if role == "grey"
                        else base.astype(np.float32) + 0.25),
        "wrong_shape": base.ravel()[:64],
        "empty_volume": base[:0],
        "nan_inf": base.astype(np.float32),
        "four_d": np.stack([base, base]),
    }[kind]
    if kind == "nan_inf":
        arr[0, 0, :2] = (np.nan, np.inf)
    path = folder / f"{kind}.npy"
    np.save(path, arr)
    return path


def _volume_file(folder: Path, kind: str, role: str, good: dict[str, Path]) -> Path:
    if kind == "missing":
        return folder / "missing.tif"
    if kind == "empty":
        (folder / "empty.tif").write_bytes(b"")
        return folder / "empty.tif"
    if kind == "truncated":
        blob = good["grey" if role == "grey" else role].read_bytes()
        (folder / "truncated.tif").write_bytes(blob[: len(blob) * 2 // 3])
        return folder / "truncated.tif"
    if kind == "huge_header":
        from numpy.lib import format as npf

        with open(folder / "huge.npy", "wb") as fh:
            npf.write_array_header_1_0(
                fh, {"descr": "<f4", "fortran_order": False, "shape": (10**4,) * 3})
            fh.write(b"\0" * 256)
        return folder / "huge.npy"
    return _array_file(folder, kind, role)


def _table_file(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.parquet"
    if kind == "missing":
        return path
    if kind in ("empty", "truncated"):
        good = pd.DataFrame({"label": [1, 2], "volume_um3": [1.0, 8.0]})
        good.to_parquet(path)
        blob = path.read_bytes()
        path.write_bytes(b"" if kind == "empty" else blob[: len(blob) // 2])
        return path
    table = {
        "wrong_dtype": {"label": [1, 2], "volume_um3": ["big", "small"],
                        "equivalent_diameter_um": ["a", "b"], "grey_mean": ["x", "y"]},
        "wrong_shape": {"label": [1, 2], "colour": [3, 4]},
        "empty_volume": {"label": np.array([], np.uint32), "volume_um3": np.array([]),
                         "equivalent_diameter_um": np.array([]), "grey_mean": np.array([])},
        "nan_inf": {"label": [1, 2], "volume_um3": [np.nan, np.inf],
                    "equivalent_diameter_um": [np.nan, np.inf],
                    "grey_mean": [np.nan, np.inf]},
    }[kind]
    pd.DataFrame(table).to_parquet(path)
    return path


def _config_file(folder: Path, kind: str, good: dict[str, Path]) -> Path:
    """The config itself is damaged (missing, empty, truncated) or names a bad volume."""
    path = folder / "cfg.yaml"
    text = yaml.safe_dump({"input": {"grey": "GREY", "voxel_size": 0.5},
                           "output": str(folder / "out" / "run")}, default_flow_style=True)
    if kind == "missing":
        return path
    if kind in ("empty", "truncated"):  # a flow mapping cut in half is not YAML
        path.write_text("" if kind == "empty" else text[: len(text) // 2])
        return path
    grey = _volume_file(folder, kind, "grey", good)
    path.write_text(text.replace("GREY", str(grey)))
    return path


def _model_file(folder: Path, kind: str, good: dict[str, Path]) -> Path:
    path = folder / f"{kind}.ectmodel"
    if kind != "missing":
        blob = good["model"].read_bytes()
        path.write_bytes(b"" if kind == "empty" else blob[: len(blob) * 2 // 3])
    return path


def bad_input(folder: Path, kind: str, role: str, good: dict[str, Path]) -> Path:
    """The file of one bad-input kind for one role."""
    if role == "model":
        return _model_file(folder, kind, good)
    if role == "table":
        return _table_file(folder, kind)
    if role == "config":
        return _config_file(folder, kind, good)
    return _volume_file(folder, kind, role, good)


def _argv(template: list[str], bad: Path, out: Path, good: dict[str, Path]) -> list[str]:
    names = {"in": str(bad), "out": str(out), **{k: str(v) for k, v in good.items()}}
    return [a.format(**names) for a in template]


@pytest.mark.parametrize(("cmd", "kind"), CASES)
def test_bad_input(cmd, kind, good, tmp_path, run_cli):
    role, template = COMMANDS[cmd]
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad = bad_input(inputs, kind, role, good)
    out = tmp_path / "out"
    before = {p for p in tmp_path.rglob("*")}
    code, stdout, err = run_cli("--quiet", *_argv(template, bad, out, good))
    if (cmd, kind) in NOT_AN_ERROR:
        assert code == 0, err
        return
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    named = {bad.name} | ({f"{kind}.npy", "huge.npy"} if role == "config" else set())
    assert any(n in lines[0] for n in named) or "--" in lines[0], lines[0]
    written = {p for p in tmp_path.rglob("*")} - before
    assert not written, sorted(str(p.relative_to(tmp_path)) for p in written)
