"""Representative-volume curve of τ: cube tiling, serial == LocalCluster, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.metrics.tortuosity import tortuosity
from electrode_ct.metrics.tortuosity_rve import cubes, parse_sizes, tortuosity_rve


def _labels() -> np.ndarray:
    from electrode_ct.synth import electrode

    return electrode((40, 48, 44), seed=6).phases.numpy()


def test_cubes_tile_from_the_origin():
    got = cubes((40, 48, 44), 16)
    assert len(got) == 2 * 3 * 2
    assert got[0] == (slice(0, 16), slice(0, 16), slice(0, 16))
    assert got[-1] == (slice(16, 32), slice(32, 48), slice(16, 32))


def test_rve_statistics_are_those_of_the_cubes():
    a = _labels()
    res = tortuosity_rve(a, [20, 40], value=0, axes=("z", "x"), spacing=(0.5, 0.5, 0.7))
    assert res["sizes_voxels"] == [20, 40]
    assert res["sizes_um"][1] == pytest.approx([20.0, 20.0, 28.0])
    taus = [tortuosity(a[r] == 0, axis="x", spacing=(0.5, 0.5, 0.7)).tortuosity
            for r in cubes(a.shape, 20)]
    finite = [t for t in taus if math.isfinite(t)]
    row = res["x"][0]
    assert row["size_voxels"] == 20 and row["n"] == 2 * 2 * 2 == len(taus)
    assert row["n_percolating"] == len(finite) > 1
    assert row["mean"] == pytest.approx(np.mean(finite), rel=1e-12)
    assert row["std"] == pytest.approx(np.std(finite, ddof=1), rel=1e-12)
    assert res["z"][1]["n"] == 1 and res["z"][1]["std"] == 0.0


def test_rve_on_a_local_cluster_equals_serial(tmp_path):
    import zarr
    from distributed import Client, LocalCluster

    from electrode_ct.compute import ZarrRef

    a = _labels()
    store = zarr.open(str(tmp_path / "labels.zarr"), mode="w", shape=a.shape,
                      chunks=(16, 16, 16), dtype=a.dtype)
    store[...] = a
    serial = tortuosity_rve(a, [16, 24], value=0, axes=("y",))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        from_array = tortuosity_rve(a, [16, 24], value=0, axes=("y",), client=client)
        from_zarr = tortuosity_rve(ZarrRef(str(tmp_path / "labels.zarr")), [16, 24],
                                   value=0, axes=("y",), client=client)
    assert from_array == serial and from_zarr == serial
    assert serial["y"][0]["n"] == 2 * 3 * 2 and serial["y"][0]["n_percolating"] > 0


def test_rve_bad_input():
    a = _labels()
    with pytest.raises(InputError, match=r"--subvolumes: sub-volume edge 41 voxels is larger"):
        tortuosity_rve(a, [16, 41], value=0)
    for bad in ("", "a,b", "1", "16,16"):
        with pytest.raises(InputError, match="--subvolumes"):
            parse_sizes(bad)


def test_cli_subvolumes_json_and_bad_input(run_cli, tmp_path):
    import json

    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    a = _labels()
    path = tmp_path / "phases.tif"
    write(Volume(a, spacing=(0.5, 0.5, 0.5)).with_class_map(
        {"pore": 0, "cbd": 1, "active": 2}), path)
    code, out, err = run_cli("metrics", path, "--tortuosity", "z", "--subvolumes", "20,40",
                             "--surface-method", "face", "--json")
    assert code == 0, err
    rve = json.loads(out)["tortuosity_rve"]
    assert rve == json.loads(json.dumps(tortuosity_rve(a, [20, 40], value=0, axes=("z",),
                                                       spacing=(0.5, 0.5, 0.5))))
    code, out, err = run_cli("metrics", path, "--subvolumes", "64", "--json")
    assert code == 2 and out == "" and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "--subvolumes" in lines[-1]
    assert "larger than the volume" in lines[-1]


def test_report_shows_the_rve_curve():
    from electrode_ct.report.build import _metrics

    rve = tortuosity_rve(_labels(), [16, 24], value=0, axes=("z", "x"))
    man = {"steps": {"metrics": {"summary": {"tortuosity": {"z": 2.0}, "tortuosity_rve": rve}}}}
    (sec,) = _metrics(man)
    html = "".join(sec.parts)
    assert html.count("<img") == 1 and "data:image/png;base64," in html
    assert "sub-volume" in html
