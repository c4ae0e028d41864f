"""``ect view``: one error line without the extra or with a bad path; a real viewer otherwise."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from electrode_ct.volume import Volume


def test_view_without_the_extra_is_one_error_line(run_cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "napari", None)
    code, out, err = run_cli("view", tmp_path / "x.tif")
    assert code == 2 and out == ""
    assert err.startswith("error:") and err.count("\n") == 1
    assert 'pip install "electrode-ct[napari]"' in err


pytest.importorskip("napari", reason="the napari extra is not installed")


def test_view_bad_path_fails_before_a_window(run_cli, tmp_path):
    code, _, err = run_cli("view", tmp_path / "missing.tif")
    assert code == 2 and err == f"error: {tmp_path / 'missing.tif'}: no such file or folder\n"
    (tmp_path / "notes.docx").write_text("x")
    code, _, err = run_cli("view", tmp_path / "notes.docx")
    assert code == 2 and err.startswith("error:") and "unknown file type" in err
    code, _, err = run_cli("view", tmp_path / "missing.parquet")
    assert code == 2 and err == f"error: {tmp_path / 'missing.parquet'}: no such table file\n"


def test_view_docks_widgets_and_loads_files(run_cli, make_napari_viewer, monkeypatch,
                                            tmp_path):
    import napari

    from electrode_ct.io import write, write_table
    from electrode_ct.measure.table import particle_table

    grey = Volume(np.random.default_rng(0).normal(100, 10, (8, 20, 20)).astype(np.float32),
                  spacing=(0.5, 0.4, 0.4))
    lab = np.zeros((8, 20, 20), np.uint32)
    lab[2:6, 2:8, 2:8], lab[2:6, 10:18, 10:18] = 1, 2
    write(grey, tmp_path / "grey.tif")
    write(grey.with_data(lab), tmp_path / "particles.tif")
    table, _ = particle_table(lab, spacing=grey.spacing)
    write_table(table, tmp_path / "particles.parquet")
    viewers = []
    monkeypatch.setattr(napari, "Viewer", lambda **kw: viewers.append(
        make_napari_viewer(**kw)) or viewers[-1])
    monkeypatch.setattr(napari, "run", lambda: None)  # no event loop in the test
    code, _, err = run_cli("view", tmp_path / "grey.tif", tmp_path / "particles.tif",
                           tmp_path / "particles.parquet")
    assert code == 0, err
    [viewer] = viewers
    assert [ly.name for ly in viewer.layers] == ["grey", "particles"]
    assert tuple(viewer.layers["particles"].scale) == (0.5, 0.4, 0.4)
    assert viewer.layers["particles"]._type_string == "labels"
    docks = viewer.window.dock_widgets
    assert {"Segment by threshold", "Forest (ilastik loop)", "Particles", "Particle table",
            "Cracks", "Operando", "Pipeline", "CNN from labelled slices"} <= set(docks)
    np.testing.assert_array_equal(docks["Particle table"].data["label"], [1, 2])
    np.testing.assert_array_equal(viewer.layers["particles"].features["label"], [1, 2])
