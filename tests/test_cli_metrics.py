"""``ect metrics``: JSON keys and values on a constructed volume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from electrode_ct.io import write
from electrode_ct.volume import Volume


@pytest.fixture
def layered(tmp_path):
    """pore channels along z through active material, one CBD voxel layer; 0 pore 1 cbd 2 active."""
    a = np.full((12, 10, 10), 2, np.uint8)
    a[:, 2:4, 2:4] = 0  # straight pore channel along z
    a[:, 6:8, 5:9] = 0
    a[:, 0, :] = 1  # a cbd sheet spanning z and x
    path = tmp_path / "phases.tif"
    write(Volume(a, spacing=(0.5, 0.5, 0.5)).with_class_map({"pore": 0, "cbd": 1, "active": 2}),
          path)
    return path, a


def test_json_keys_and_values(run_cli, layered):
    path, a = layered
    code, out, err = run_cli("metrics", path, "--json", "--surface-method", "face")
    assert code == 0, err
    r = json.loads(out)
    for key in ("volume_fraction", "specific_surface_area_per_um", "tortuosity",
                "percolating_fraction", "surface_method", "solver_tolerance",
                "tortuosity_solver", "tortuosity_convention"):
        assert key in r
    assert set(r["volume_fraction"]) == {"pore", "cbd", "active"}
    assert r["volume_fraction"]["pore"] == pytest.approx(np.mean(a == 0))
    assert r["phase"] == "pore"
    assert r["tortuosity"]["z"] == pytest.approx(1.0, rel=1e-6)
    assert r["tortuosity"]["x"] == "inf" and r["tortuosity"]["y"] == "inf"
    assert r["percolating_fraction"] == {"x": 0.0, "y": 0.0, "z": 1.0}
    # face counting: the channel walls are the only pore interfaces
    walls = (4 * 2 + 2 * (2 + 4)) * 12 * 0.25
    assert r["specific_surface_area_per_um"]["pore"] == pytest.approx(walls / (a.size * 0.125))
    assert r["solver_tolerance"] == 1e-6 and r["surface_method"] == "face"


def test_phase_option_no_class_map_and_tol(run_cli, tmp_path):
    a = np.zeros((8, 6, 6), np.uint8)
    a[:, 1, 1] = 3
    path = tmp_path / "plain.npy"
    np.save(path, a)
    code, out, err = run_cli("metrics", path, "--phase", "3", "--tortuosity", "z",
                             "--tol", "1e-8", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert set(r["volume_fraction"]) == {"0", "3"}
    assert list(r["tortuosity"]) == ["z"] and r["solver_tolerance"] == 1e-8
    # no class map and no --phase: a clear error
    code, out, err = run_cli("metrics", path, "--json")
    assert code == 2 and out == "" and "--phase" in err


@pytest.mark.parametrize(("args", "needle"), [
    (("--phase", "7"), "absent"),
    (("--phase", "graphite"), "not a class name"),
    (("--surface-method", "cubes"), "--surface-method"),
    (("--tortuosity", "x,w"), "--tortuosity"),
    (("--tol", "2"), "--tol"),
])
def test_bad_options(run_cli, layered, args, needle):
    path, _ = layered
    code, out, err = run_cli("metrics", path, *args, "--json")
    assert code == 2 and out == ""
    assert needle in err and "Traceback" not in err


def test_2d_image_needs_tortuosity_off(run_cli, tmp_path):
    import tifffile

    path = tmp_path / "slice.tif"
    tifffile.imwrite(path, np.eye(8, dtype=np.uint8))
    code, out, err = run_cli("metrics", path, "--phase", "1", "--json")
    assert code == 2 and "3-D" in err
    code, out, err = run_cli("metrics", path, "--phase", "1", "--tortuosity", "none", "--json")
    assert code == 0, err
    assert json.loads(out)["tortuosity"] == {}


def test_voxel_size_option_scales_surface_not_tortuosity(run_cli, layered):
    path, _ = layered
    _, out1, _ = run_cli("metrics", path, "--json", "--tortuosity", "z")
    code, out2, err = run_cli("metrics", path, "--json", "--tortuosity", "z",
                              "--voxel-size", "1.0")
    assert code == 0, err
    r1, r2 = json.loads(out1), json.loads(out2)
    assert r1["spacing_from"] == "file" and r2["spacing_from"] == "option"
    assert r2["spacing_um"] == [1.0, 1.0, 1.0]
    # area per volume scales as 1/voxel size; τ is dimensionless
    ssa1 = r1["specific_surface_area_per_um"]["pore"]
    assert r2["specific_surface_area_per_um"]["pore"] == pytest.approx(ssa1 * 0.5)
    assert r2["tortuosity"]["z"] == pytest.approx(r1["tortuosity"]["z"])
