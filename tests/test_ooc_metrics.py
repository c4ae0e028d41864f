"""Phase metrics over blocks (serial and on a LocalCluster) == the in-memory metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from electrode_ct import metrics, synth
from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.errors import InputError
from electrode_ct.metrics import blockwise as bw
from electrode_ct.metrics.microstructure import (
    microstructure_metrics,
    microstructure_metrics_blockwise,
)
from electrode_ct.volume import Volume

SPACING = (0.6, 0.5, 0.4)
BLOCKS = [(13, 17, 19), (36, 9, 20)]  # no side divides the volume (36, 41, 47) but 36


@pytest.fixture(scope="module")
def phantom() -> Volume:
    ph = synth.electrode((36, 41, 47), voxel_size=SPACING, radius_mean_um=3.0, seed=4).phases
    return ph


@pytest.fixture(scope="module")
def labels(phantom) -> np.ndarray:
    return np.asarray(phantom.numpy())


def _close(a: dict, b: dict, rtol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        if k.endswith("_s"):  # timings
            continue
        if isinstance(v, dict):
            _close(v, b[k], rtol)
        elif isinstance(v, float):
            assert v == pytest.approx(b[k], rel=rtol, abs=1e-12), k
        else:
            assert v == b[k], k


@pytest.mark.parametrize("block_shape", BLOCKS)
def test_fractions_and_profiles_identical(labels, phantom, block_shape):
    cmap = phantom.class_map
    assert bw.fractions_blockwise(labels, class_map=cmap, block_shape=block_shape) == \
        metrics.volume_fractions(labels, class_map=cmap)
    assert bw.fractions_blockwise(labels, values=[0, 7], block_shape=block_shape) == \
        metrics.volume_fractions(labels, values=[0, 7])
    for axis in ("z", "x"):
        got = bw.phase_profile_blockwise(labels, axis=axis, class_map=cmap, values=[0, 2, 7],
                                         spacing=SPACING, block_shape=block_shape)
        want = metrics.phase_profile(labels, axis=axis, class_map=cmap, values=[0, 2, 7],
                                     spacing=SPACING)
        assert got.equals(want)


@pytest.mark.parametrize("method", ["marching_cubes", "face", "gradient"])
@pytest.mark.parametrize("block_shape", BLOCKS)
def test_surface_areas_match(labels, phantom, method, block_shape):
    got = bw.surface_areas_blockwise(labels, method=method, spacing=SPACING,
                                     class_map=phantom.class_map, block_shape=block_shape)
    want = metrics.surface_areas(labels, method=method, spacing=SPACING,
                                 class_map=phantom.class_map)
    if method == "gradient":
        _close(got, want)
    else:  # integer counts merged exactly: the same floats
        assert got == want


def test_marching_cubes_counts_each_cube_once_across_a_mirror():
    """A volume and its mirrored copy: the doubled volume has exactly twice the area (each
    cube counted once, border cubes half), and the triangulation is skimage's."""
    from skimage.measure import marching_cubes

    m = np.random.default_rng(1).random((9, 10, 11)) > 0.5
    one = metrics.phase_surface_area(m, spacing=SPACING)
    two = metrics.phase_surface_area(np.concatenate([m, m[::-1]]), spacing=SPACING)
    assert two == pytest.approx(2 * one, rel=1e-12)
    inner = np.zeros((13, 14, 15), bool)
    inner[2:-2, 2:-2, 2:-2] = m  # nothing on the border: the plain isosurface area
    v, f, _, _ = marching_cubes(inner.astype(np.float32), 0.5, spacing=SPACING)
    t = v[f].astype(np.float64)
    ref = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum()
    assert metrics.phase_surface_area(inner, spacing=SPACING) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("block_shape", BLOCKS)
def test_interface_percent_identical(labels, phantom, block_shape):
    assert bw.interface_percent_blockwise(labels, class_map=phantom.class_map,
                                          block_shape=block_shape) == \
        metrics.interface_percentage(labels, class_map=phantom.class_map)


def _same_partition(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(a > 0, b > 0)
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


@pytest.mark.parametrize("block_shape", BLOCKS)
def test_components_and_percolation_identical(labels, block_shape):
    import cc3d

    for phase in (0, 1, 2):
        got = bw.percolation_blockwise(labels, phase, block_shape=block_shape)
        assert got == metrics.connectivity(labels, phase)
        out = np.zeros(labels.shape, np.uint32)
        n = bw.components_blockwise(labels, out, phase, block_shape=block_shape)
        ref = cc3d.connected_components((labels == phase).astype(np.uint8), connectivity=6)
        assert n == int(ref.max()) == int(out.max())
        assert np.array_equal(np.unique(out), np.arange(n + 1))  # ids 1..n, unique
        _same_partition(out, ref)
        for axis in "zyx":  # the same voxels percolate
            perc = metrics.percolating_mask(labels == phase, axis)
            lab = np.unique(out[perc])
            assert np.array_equal(np.isin(out, lab) & (out > 0), perc)


def test_percolation_across_every_block_of_a_snake():
    """A single path winding through all blocks percolates only when merged across faces."""
    a = np.zeros((12, 12, 12), np.uint8)
    a[:, 1, 1] = 1
    a[11, 1:11, 1] = 1
    a[0:12, 10, 1] = 1
    got = bw.percolation_blockwise(a, 1, block_shape=(5, 5, 5))
    assert got == metrics.connectivity(a, 1)
    assert got["percolating_fraction"]["z"] == 1.0 and got["n_clusters"] == 1


def test_chords_identical_and_bounded(labels, phantom):
    """CBD chords are at most 6.6 µm here: a 7 µm bound needs 13 (z) / 19 (x) voxels of halo."""
    for axis in ("x", "z"):
        got = bw.chord_lengths_blockwise(labels, "cbd", axis=axis, class_map=phantom.class_map,
                                         spacing=SPACING, max_chord_um=7.0,
                                         block_shape=(13, 17, 19))
        want = metrics.chord_lengths(labels == 1, axis=axis, spacing=SPACING)
        assert got.size > 100 and np.array_equal(got, np.sort(want))
    _close(bw.chord_length_summary_blockwise(labels, 1, spacing=SPACING, max_chord_um=7.0,
                                             block_shape=(13, 17, 19)),
           metrics.chord_length_summary(labels, 1, spacing=SPACING))
    with pytest.raises(InputError, match="max_chord_um: a chord along x is longer than 3"):
        bw.chord_lengths_blockwise(np.ones((10, 10, 30), np.uint8), 1, max_chord_um=3.0,
                                   include_border=True, block_shape=(10, 10, 8))


def test_local_thickness_identical_and_bounded(labels, phantom):
    """CBD is at most 1.6 µm thick here; a 3 µm bound reads 6-9 voxels of halo."""
    want = metrics.local_thickness(labels == 1, spacing=SPACING)
    got = np.zeros(labels.shape, np.float32)
    bw.local_thickness_blockwise(labels, got, "cbd", class_map=phantom.class_map,
                                 spacing=SPACING, max_thickness_um=3.0, block_shape=(13, 17, 19))
    assert want.max() > 1.0 and np.array_equal(got, want)
    table, summary = bw.thickness_distribution_blockwise(
        labels, 1, spacing=SPACING, max_thickness_um=3.0, block_shape=(13, 17, 19))
    ref_table, ref_summary = metrics.thickness_distribution(labels, 1, spacing=SPACING)
    assert table.equals(ref_table)
    _close(summary, ref_summary)
    with pytest.raises(InputError, match="max_thickness_um: the phase is thicker than 1 µm"):
        bw.thickness_distribution_blockwise(labels, 1, spacing=SPACING, max_thickness_um=1.0,
                                            block_shape=(13, 17, 19))


def test_microstructure_blockwise_equals_in_memory(phantom, labels):
    want = microstructure_metrics(phantom, tortuosity="z")
    got = microstructure_metrics_blockwise(phantom, labels, tortuosity="z",
                                           block_shape=(13, 17, 19))
    _close(got, want)
    with pytest.raises(InputError, match=r"steps.metrics.tortuosity: \[\]"):
        microstructure_metrics_blockwise(phantom, labels, block_shape=(13, 17, 19),
                                         tortuosity_memory=10**6)
    with pytest.raises(InputError, match=r"--phase: phase '9' \(value 9\) is absent"):
        microstructure_metrics_blockwise(phantom, labels, phase=9, tortuosity="none",
                                         block_shape=(13, 17, 19))
    with pytest.raises(InputError, match="6-connected clusters only"):
        bw.percolation_blockwise(labels, 0, connectivity=26, block_shape=(13, 17, 19))


@pytest.fixture(scope="module")
def client():
    with open_client(ComputeConfig(n_workers=2, threads_per_worker=1,
                                   memory_limit="1GB")) as c:
        yield c


def test_metrics_family_on_a_local_cluster(client, tmp_path, phantom, labels):
    arr = zarr.open_array(str(tmp_path / "ph.zarr"), mode="w", zarr_format=2,
                          shape=labels.shape, dtype=labels.dtype, chunks=(13, 17, 19))
    arr[...] = labels
    src = ZarrRef(str(tmp_path / "ph.zarr"))
    got = microstructure_metrics_blockwise(phantom, src, tortuosity="none",
                                           block_shape=(13, 17, 19), client=client)
    _close(got, microstructure_metrics(phantom, tortuosity="none"))
    dst = zarr.open_array(str(tmp_path / "cc.zarr"), mode="w", zarr_format=2,
                          shape=labels.shape, dtype=np.uint32, chunks=(13, 17, 19))
    n = bw.components_blockwise(src, ZarrRef(str(tmp_path / "cc.zarr")), 0,
                                block_shape=(13, 17, 19), client=client)
    out = dst[...]
    assert n == int(out.max())
    import cc3d

    _same_partition(out, cc3d.connected_components((labels == 0).astype(np.uint8),
                                                   connectivity=6))


def test_cli_metrics_on_the_engine_equals_in_memory(tmp_path, phantom, run_cli):
    from electrode_ct.io import write

    path = tmp_path / "ph.tif"
    write(phantom, path)
    args = ["metrics", str(path), "--tortuosity", "z", "--json"]
    code, mem, err = run_cli(*args)
    assert code == 0, err
    code, eng, err = run_cli(*args, "--scheduler", "local", "--n-workers", "1",
                             "--block-shape", "13,17,19")
    assert code == 0, err
    _close(json.loads(eng), json.loads(mem))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph.tif"]  # temporary Zarr removed
    code, out, err = run_cli(*args, "--block-shape", "40,17,19")
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == ("error: block shape (40, 17, 19) is larger than "
                                            "the volume (36, 41, 47): give blocks within the "
                                            "volume")
    code, out, err = run_cli(*args, "--block-shape", "13,17,19", "--memory-limit", "100kB")
    assert code == 2 and "below what one block" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph.tif"]


def test_pipeline_metrics_step_on_the_engine_equals_in_memory(tmp_path, phantom):
    """The metrics step on the run's client (compute.in_memory_below_mb 0) writes the same
    metrics.json as in memory; tortuosity too large for memory is refused naming the key."""
    from electrode_ct.errors import ElectrodeCTError
    from electrode_ct.io import write
    from electrode_ct.pipeline import parse_config, run_pipeline

    write(phantom, tmp_path / "ph.tif")
    off = {"enabled": False}
    steps = {name: off for name in ("segment", "particles", "measure", "stats", "report")}

    def run(name: str, tortuosity: list[str], **compute) -> dict:
        cfg = parse_config({"input": {"phases": str(tmp_path / "ph.tif")},
                            "output": str(tmp_path / name), "compute": compute,
                            "steps": {**steps, "metrics": {"tortuosity": tortuosity}}})
        run_pipeline(cfg, quiet=True)
        return json.loads((tmp_path / name / "tables" / "metrics.json").read_text())

    engine = {"in_memory_below_mb": 0, "n_workers": 1, "block_shape": [13, 17, 19]}
    _close(run("eng", ["z"], **engine), run("mem", ["z"]))
    assert not (tmp_path / "eng" / "work" / "phases_metrics.ome.zarr").exists()
    from electrode_ct.metrics import microstructure

    big = microstructure.TORTUOSITY_BYTES_PER_VOXEL * 1e9  # any phase voxel exceeds 80 %
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(microstructure, "TORTUOSITY_BYTES_PER_VOXEL", big)
        with pytest.raises(ElectrodeCTError, match=r"steps.metrics.tortuosity: \[\]"):
            run("refused", ["z"], **engine)
