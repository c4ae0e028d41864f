"""The particle table of a label volume on the block engine == the in-memory table, row for
row (serially, on a LocalCluster of 2 worker processes, and through ``ect measure``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from electrode_ct import synth
from electrode_ct.blocks import block_grid
from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.measure.blockwise import measure_blockwise, merge_moments
from electrode_ct.measure.table import particle_table

SPACING = (0.6, 0.5, 0.4)  # anisotropic, µm


@pytest.fixture(scope="module")
def phantom():
    """A 32 × 36 × 40 electrode phantom with small particles (each within 16 voxels)."""
    ph = synth.electrode((32, 36, 40), voxel_size=SPACING, radius_mean_um=1.6,
                         radius_sd_um=0.3, cracked_fraction=0.3, seed=5)
    return ph.particles.numpy().astype(np.uint32), ph.grey.numpy()


@pytest.fixture(scope="module")
def corners() -> tuple[np.ndarray, np.ndarray]:
    """Balls on a corner shared by 8 blocks of 12³, on the volume's faces and corner, and
    two touching balls; the blocks of the far corner hold no particle."""
    z, y, x = np.mgrid[:40, :40, :40]
    lab = np.zeros((40, 40, 40), np.uint32)
    for i, (c, r) in enumerate([((12, 12, 12), 4.5), ((0, 20, 20), 4), ((20, 39, 6), 3.5),
                                ((0, 0, 0), 5), ((28, 18, 30), 3), ((28, 18, 23), 4)],
                               start=3):
        lab[((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r * r] = 7 * i
    rng = np.random.default_rng(1)
    grey = (np.where(lab > 0, 30000 + 40 * lab, 12000) + rng.normal(0, 900, lab.shape))
    return lab, np.clip(grey, 0, 65535).astype(np.uint16)


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns, dtypes and rows; floats within 1e-9 relative, integers identical."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        a, b = got[col].to_numpy(), want[col].to_numpy()
        assert a.dtype == b.dtype, col
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=col)
        else:
            np.testing.assert_array_equal(a, b, err_msg=col)
    if "background_sigma" in want.attrs:
        assert got.attrs["background_sigma"] == pytest.approx(want.attrs["background_sigma"],
                                                              rel=1e-12)


def _check(lab, grey, block_shape, **opts):
    want, want_r = particle_table(lab, grey, spacing=SPACING, **opts)
    got, got_r = measure_blockwise(lab, grey, spacing=SPACING, block_shape=block_shape,
                                   **opts)
    _same(got, want)
    if grey is None:
        assert got_r is None and want_r is None
    else:
        _same(got_r, want_r)
    return got


@pytest.mark.parametrize("block_shape", [(16, 18, 20), (16, 36, 17), (32, 36, 40)])
def test_uint16_grey_equals_in_memory_row_for_row(phantom, block_shape):
    lab, grey = phantom
    got = _check(lab, grey, block_shape)
    assert len(got) > 20 and got["touches_border"].any()


def test_float_grey_and_basic_columns_equal_in_memory(phantom):
    lab, grey = phantom
    flt = (grey.astype(np.float32) / 977.0 - 3.25).astype(np.float32)
    _check(lab, flt, (16, 18, 20))
    _check(lab, flt.astype(np.float64), (16, 18, 20), properties="basic", exclude_layers=2,
           normalise="surface")
    _check(lab, None, (16, 18, 20))


def test_corner_of_eight_blocks_faces_and_empty_blocks(corners):
    lab, grey = corners
    bs = (12, 12, 12)
    spans = {b.index for b in block_grid(lab.shape, bs)
             if np.any(lab[b.write] == 21)}
    assert len(spans) == 8, "the ball at (12, 12, 12) lies in the 8 blocks of that corner"
    assert any(not lab[b.write].any() for b in block_grid(lab.shape, bs))
    got = _check(lab, grey, bs)
    assert got["touches_border"].sum() == 3
    assert got.set_index("label").loc[[49, 56], "n_neighbours"].tolist() == [1, 1]


def test_background_mask_sigma_merges_by_the_pairwise_formula(corners):
    lab, grey = corners
    mask = (lab == 0) & (np.arange(40)[None, None, :] < 30)
    _check(lab, grey, (12, 12, 12), background=mask)
    rng = np.random.default_rng(2)
    v = rng.normal(1e6, 0.01, 3000)  # a naive sum of squares loses every digit here
    parts = [(len(c), float(c.mean()), float(((c - c.mean()) ** 2).sum()))
             for c in np.array_split(v, 7)]
    n, mean, m2 = merge_moments(parts)
    assert n == v.size and mean == pytest.approx(v.mean(), rel=1e-15)
    assert np.sqrt(m2 / (n - 1)) == pytest.approx(np.std(v, ddof=1), rel=1e-9)


def test_a_particle_wider_than_the_blocks_is_an_error_naming_it_and_the_halo(corners):
    lab, grey = corners
    with pytest.raises(ShapeError, match=r"particle 21 \(voxels z 8:17.*halo of \(9, 9, 9\)"):
        measure_blockwise(lab, grey, spacing=SPACING, block_shape=(8, 8, 8))
    with pytest.raises(ShapeError, match=r"particle 21 .*the halo \(6, 6, 6\)"):
        measure_blockwise(lab, grey, spacing=SPACING, block_shape=(12, 12, 12), halo=6)


def test_bad_inputs_are_refused(corners):
    lab, grey = corners
    with pytest.raises(ShapeError, match="grey: shape"):
        measure_blockwise(lab, grey[:-1], block_shape=(12, 12, 12))
    big = lab.astype(np.int64)
    big[0, 0, 0] = 1 << 32
    with pytest.raises(InputError, match="does not fit uint32"):
        measure_blockwise(big, grey, block_shape=(12, 12, 12))


# -- a real cluster and the CLI ------------------------------------------------------------
@pytest.fixture(scope="module")
def address():
    """A LocalCluster of 2 worker processes shared by the module's engine tests."""
    from distributed import LocalCluster

    from electrode_ct.compute.cluster import worker_env

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                      dashboard_address=None, env=worker_env(1), silence_logs=40) as cluster:
        yield cluster.scheduler_address


def _zarr(path, data, chunks=(16, 18, 20)) -> ZarrRef:
    arr = zarr.open_array(str(path), mode="w", zarr_format=2, chunks=chunks,
                          shape=data.shape, dtype=data.dtype)
    arr[...] = data
    return ZarrRef(str(path))


def test_two_worker_processes_give_the_in_memory_tables(phantom, address, tmp_path):
    lab, grey = phantom
    want, want_r = particle_table(lab, grey, spacing=SPACING)
    with open_client(ComputeConfig(scheduler=address)) as client:
        got, got_r = measure_blockwise(_zarr(tmp_path / "l.zarr", lab),
                                       _zarr(tmp_path / "g.zarr", grey), spacing=SPACING,
                                       block_shape=(16, 18, 20), client=client)
    _same(got, want)
    _same(got_r, want_r)


def test_ect_measure_on_the_engine_equals_in_memory(run_cli, phantom, address, tmp_path):
    from electrode_ct.io import read_table, write
    from electrode_ct.volume import Volume

    lab, grey = phantom
    write(Volume(lab, spacing=SPACING), tmp_path / "lab.ome.zarr")
    write(Volume(grey, spacing=SPACING), tmp_path / "grey.tif")
    args = ["measure", tmp_path / "lab.ome.zarr", "--grey", tmp_path / "grey.tif"]
    code, _, err = run_cli(*args, "--out", tmp_path / "mem.parquet", "--radial",
                           tmp_path / "mem_r.parquet")
    assert code == 0, err
    code, _, err = run_cli("--quiet", *args, "--out", tmp_path / "eng.parquet", "--radial",
                           tmp_path / "eng_r.parquet", "--scheduler", address,
                           "--block-shape", "16", "18", "20")
    assert code == 0, err
    _same(read_table(tmp_path / "eng.parquet"), read_table(tmp_path / "mem.parquet"))
    _same(read_table(tmp_path / "eng_r.parquet"), read_table(tmp_path / "mem_r.parquet"))
    assert not list(tmp_path.glob(".*ect-work")), "the work folder is removed"


def test_ect_measure_bad_input_is_one_error_line(run_cli, corners, address, tmp_path):
    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    lab, grey = corners
    write(Volume(lab), tmp_path / "lab.ome.zarr")
    write(Volume(grey[:, :, :-2]), tmp_path / "short.tif")
    big = lab.astype(np.int64)
    big[0, 0, 0] = 1 << 32
    np.save(tmp_path / "big.npy", big)
    for extra in ([], ["--block-shape", "12", "12", "12", "--scheduler", address]):
        code, _, err = run_cli("measure", tmp_path / "lab.ome.zarr", "--grey",
                               tmp_path / "short.tif", "--out", tmp_path / "t.parquet", *extra)
        assert code == 2 and err.count("error:") == 1 and "differs" in err, err
        code, _, err = run_cli("measure", tmp_path / "big.npy", "--out",
                               tmp_path / "t.parquet", *extra)
        assert code == 2 and err.count("error:") == 1 and "uint32" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "t.parquet").exists()
    assert not list(tmp_path.glob(".*ect-work"))


def test_pipeline_measure_step_on_the_engine_equals_in_memory(tmp_path, address):
    """The measure step on the run's client (compute.in_memory_below_mb 0) writes the same
    particle and radial tables as in memory, and removes its working input copies."""
    from electrode_ct.io import read_table, write
    from electrode_ct.pipeline import parse_config, run_pipeline

    ph = synth.electrode((20, 24, 24), voxel_size=SPACING, radius_mean_um=1.4,
                         radius_sd_um=0.3, seed=8)
    write(ph.phases, tmp_path / "ph.tif")
    write(ph.grey, tmp_path / "g.tif")
    off = {"enabled": False}
    steps = {name: off for name in ("filter", "segment", "cracks", "metrics", "stats",
                                    "report")}

    def run(name: str, **compute) -> None:
        cfg = parse_config({"input": {"phases": str(tmp_path / "ph.tif"),
                                      "grey": str(tmp_path / "g.tif")},
                            "output": str(tmp_path / name), "compute": compute,
                            "steps": {**steps, "measure": {"radial": True}}})
        run_pipeline(cfg, quiet=True)

    run("mem")
    run("eng", scheduler=address, in_memory_below_mb=0, block_shape=[20, 20, 24])
    for table in ("particles_0", "radial_0"):
        _same(read_table(tmp_path / "eng" / "tables" / f"{table}.parquet"),
              read_table(tmp_path / "mem" / "tables" / f"{table}.parquet"))
    assert not list((tmp_path / "eng" / "work").glob("*measure*"))
