"""The napari plugin's manifest, readers, writers and sample data (no widgets here).

The core install must stay free of Qt; the plugin's modules are checked against the
library: what the reader shows is what :func:`electrode_ct.io.read` reads, what the writer
writes reads back with the same array, voxel size and class map.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from electrode_ct.volume import Volume

ROOT = Path(__file__).resolve().parents[1]


def test_core_and_cli_import_no_qt():
    code = ("import sys, electrode_ct, electrode_ct.napari, electrode_ct.napari._reader;"
            "from electrode_ct.cli import _load_commands; _load_commands();"
            "bad = [m for m in ('PyQt5', 'qtpy', 'napari', 'magicgui') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_pyproject_registers_manifest_and_package_data():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry = meta["project"]["entry-points"]["napari.manifest"]["electrode-ct"]
    assert entry == "electrode_ct.napari:napari.yaml"
    assert "napari.yaml" in meta["tool"]["setuptools"]["package-data"]["electrode_ct.napari"]
    assert {"napari", "magicgui", "qtpy", "PyQt5", "pytest-qt", "pytest-xvfb"} <= {
        d.split(">")[0].split("=")[0] for d in meta["project"]["optional-dependencies"]["napari"]}


def test_forest_predict_region_equals_whole_prediction(three_phase_phantom):
    """The region prediction the viewer shows is the whole-volume prediction there."""
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.scribbles import simulate_scribbles

    truth, grey = three_phase_phantom
    strokes = simulate_scribbles(truth, coverage=0.05, n_slices=3, seed=1)
    model = train_forest(grey, strokes, features="minimal",
                         n_trees=5)
    whole = model.predict(grey, uncertainty=True, probabilities=True)
    region = (slice(17, 18), slice(5, 29), slice(0, 40))
    part = model.predict_region(grey, region)
    np.testing.assert_array_equal(part.labels, whole.labels[region])
    np.testing.assert_allclose(part.probabilities, whole.probabilities[(slice(None),
                                                                         *region)], atol=1e-6)
    np.testing.assert_allclose(part.uncertainty, whole.uncertainty[region], atol=1e-6)


napari = pytest.importorskip("napari", reason="the napari extra is not installed")


def test_manifest_commands_resolve():
    import importlib

    from npe2 import PluginManifest

    import electrode_ct.napari as pkg

    mf = PluginManifest.from_file(Path(pkg.__file__).parent / "napari.yaml")
    assert mf.name == "electrode-ct"
    for cmd in mf.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.id
    widgets = {w.display_name for w in mf.contributions.widgets}
    assert {"Segment by threshold", "Forest (ilastik loop)", "Particles",
            "Particle table"} <= widgets


def _pyramid(path: Path) -> Volume:
    """A two-level OME-Zarr (level 1 = 2× binned) written with zarr next to io.write."""
    import zarr

    from electrode_ct.io import write

    rng = np.random.default_rng(0)
    vol = Volume(rng.integers(0, 1000, (8, 16, 16)).astype(np.uint16), spacing=(0.5, 0.4, 0.4))
    write(vol, path)
    group = zarr.open_group(str(path), mode="r+")
    group.create_array("1", data=vol.data[::2, ::2, ::2], chunks=(4, 8, 8))
    ms = dict(group.attrs)["multiscales"]
    ms[0]["datasets"].append({"path": "1", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 0.8, 0.8]}]})
    group.attrs["multiscales"] = ms
    return vol


def test_reader_multiscale_ome_zarr_is_lazy_with_scale(tmp_path):
    from electrode_ct.napari._reader import get_reader

    vol = _pyramid(tmp_path / "pyr.ome.zarr")
    reader = get_reader(str(tmp_path / "pyr.ome.zarr"))
    [(data, kwargs, kind)] = reader(str(tmp_path / "pyr.ome.zarr"))
    assert kind == "image" and kwargs["multiscale"] and len(data) == 2
    assert all(hasattr(d, "dask") for d in data)  # lazy: dask arrays, nothing read
    np.testing.assert_array_equal(np.asarray(data[0]), vol.data)
    np.testing.assert_array_equal(np.asarray(data[1]), vol.data[::2, ::2, ::2])
    assert kwargs["scale"] == (0.5, 0.4, 0.4)


def test_reader_class_map_gives_label_names_and_colours(tmp_path):
    from electrode_ct.io import write
    from electrode_ct.napari._layers import CLASS_COLOURS
    from electrode_ct.napari._reader import read_layers

    lab = np.zeros((4, 6, 6), np.uint8)
    lab[:, 2:] = 1
    lab[:, 4:] = 2
    write(Volume(lab, spacing=0.7).with_class_map({"pore": 0, "cbd": 1, "active": 2}),
          tmp_path / "phases.tif")
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "phases.tif"))
    assert kind == "labels" and kwargs["scale"] == (0.7, 0.7, 0.7)
    assert kwargs["features"] == {"index": [0, 1, 2], "class": ["pore", "cbd", "active"]}
    colours = kwargs["colormap"].color_dict
    np.testing.assert_allclose(colours[2], CLASS_COLOURS["active"])
    np.testing.assert_array_equal(np.asarray(data), lab)


def test_reader_declines_unknown_files_and_reads_tables(tmp_path):
    import pandas as pd

    from electrode_ct.napari._reader import get_reader, read_layers

    assert get_reader(str(tmp_path / "notes.docx")) is None
    df = pd.DataFrame({"label": [1, 2], "centroid_z_um": [1.0, 2.0],
                       "centroid_y_um": [3.0, 4.0], "centroid_x_um": [5.0, 6.0],
                       "volume_um3": [10.0, 20.0]})
    df.to_csv(tmp_path / "particles.csv", index=False)
    [(points, kwargs, kind)] = read_layers(str(tmp_path / "particles.csv"))
    assert kind == "points"
    np.testing.assert_array_equal(points, [[1, 3, 5], [2, 4, 6]])
    assert list(kwargs["features"]["volume_um3"]) == [10.0, 20.0]


def test_writer_round_trip_keeps_spacing_and_class_map(make_napari_viewer, tmp_path):
    from electrode_ct.io import read
    from electrode_ct.napari._layers import layer_meta, volume_layer
    from electrode_ct.napari._writer import write_image, write_labels

    viewer = make_napari_viewer()
    lab = Volume(np.arange(60, dtype=np.uint8).reshape(3, 4, 5) % 3, spacing=(1.0, 0.5, 0.5),
                 origin=(2.0, 0.0, 1.0)).with_class_map({"pore": 0, "cbd": 1, "active": 2})
    data, kwargs, _ = volume_layer(lab, name="lab")
    layer = viewer.add_labels(data, **kwargs)
    [out] = write_labels(str(tmp_path / "lab.ome.zarr"), layer.data, layer_meta(layer))
    back = read(out)
    np.testing.assert_array_equal(back.data, lab.data)
    assert back.spacing == lab.spacing and back.origin == lab.origin
    assert back.class_map == lab.class_map
    grey = viewer.add_image(np.ones((3, 4, 5), np.float32), scale=(2.0, 1.0, 1.0))
    [out] = write_image(str(tmp_path / "grey.tif"), grey.data, layer_meta(grey))
    assert read(out).spacing == (2.0, 1.0, 1.0) and read(out).class_map is None


def test_sample_data_are_the_embedded_samples():
    from electrode_ct.data import nmc_microct as embedded
    from electrode_ct.napari._sample import nmc_microct, phantom

    grey, scribbles = embedded()
    (g, gk, gkind), (s, sk, skind) = nmc_microct()
    assert (gkind, skind) == ("image", "labels")
    np.testing.assert_array_equal(g, grey.data)
    np.testing.assert_array_equal(s, scribbles.data)
    assert sk["features"]["class"] == ["active", "pore_cbd"] and gk["scale"] == grey.spacing
    kinds = [kind for _, _, kind in phantom()]
    assert kinds == ["image", "labels", "labels"]
