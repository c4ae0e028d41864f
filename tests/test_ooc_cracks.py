"""Cracks by owned particles on blocks (serial, LocalCluster, CLI) == in memory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.cracks import blockwise as cb
from electrode_ct.cracks import (
    classify_scan,
    heal_labels,
    load_cracks_model,
    prepare_scan,
    three_phase,
)
from electrode_ct.cracks.threephase import THREEPHASE_COLUMNS
from electrode_ct.errors import InputError
from electrode_ct.io import read, read_table, write
from electrode_ct.labels import label_boxes
from electrode_ct.volume import Volume

SPACING = (0.6, 0.5, 0.45)  # anisotropic, µm
BLOCKS = (24, 24, 26)  # divides none of the sides but the last


@pytest.fixture(scope="module")
def scan():
    """A nano-CT phantom with cracked particles; labels of a 14-voxel slab at the top
    removed so that some blocks are empty."""
    from electrode_ct.synth import electrode

    ph = electrode((48, 48, 52), seed=21, voxel_size=0.5, radius_mean_um=3.0,
                   radius_sd_um=0.7, modality="nano", crack_width_um=1.0)
    lab = ph.particles.numpy().copy()
    lab[np.isin(lab, np.unique(lab[:14]))] = 0
    return ph.grey.numpy(), lab


@pytest.fixture(scope="module")
def whole(scan):
    grey, lab = scan
    healed = heal_labels(lab, width_um=2 * max(SPACING), spacing=SPACING)
    ids = np.unique(lab[lab > 0])[::2].astype(np.int64)
    return ids, three_phase(grey, healed, ids, labels=lab, spacing=SPACING, integral=False)


def _halo(lab):
    return cb.reach(label_boxes(lab), margin=max(cb.heal_margin(SPACING)))


@pytest.fixture(scope="module")
def address():
    """A LocalCluster of 2 worker processes (BLAS threads capped)."""
    from distributed import LocalCluster

    from electrode_ct.compute.cluster import worker_env

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                      dashboard_address=None, env=worker_env(1), silence_logs=40) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("block_shape", [(4, 5, 6), (48, 48, 52), (7, 48, 3)])
def test_boxes_from_blocks_are_exact_and_the_owner_holds_the_first_voxel(scan, block_shape):
    _, lab = scan
    boxes = cb.label_boxes_blocks(lab, block_shape=block_shape)
    np.testing.assert_array_equal(boxes, label_boxes(lab))
    objs = ndi.find_objects(lab)
    for row in boxes:
        sl = objs[row[0] - 1]
        assert tuple(row[1:4]) == tuple(s.start for s in sl)
        assert tuple(row[4:7]) == tuple(s.stop for s in sl)
        assert row[7] == np.flatnonzero(lab.ravel() == row[0])[0]
    grid = cb.owned_by_block(boxes, lab.shape, block_shape)
    assert sum(len(g) for g in grid) == len(boxes)
    from electrode_ct.blocks import block_grid

    for blk, owned in zip(block_grid(lab.shape, block_shape), grid, strict=True):
        for row in owned:
            first = np.unravel_index(row[7], lab.shape)
            assert all(s.start <= f < s.stop for s, f in zip(blk.write, first, strict=True))


def test_three_phase_volume_in_blocks_is_identical(scan, whole):
    grey, lab = scan
    ids, (phases, _, thr) = whole
    out = np.full(lab.shape, 9, np.uint8)
    cb.three_phase_blocks(lab, grey, out, split=ids, threshold=thr, spacing=SPACING,
                          block_shape=BLOCKS, halo=_halo(lab))
    np.testing.assert_array_equal(out, phases)
    assert (phases == 2).sum() > 100  # there are cracks to split


def test_crack_rows_of_owned_particles_equal_the_whole_volume_table(scan, whole):
    grey, lab = scan
    ids, (_, table, thr) = whole
    rows = cb.crack_rows_blocks(lab, grey, label_boxes(lab), split=ids, threshold=thr,
                                spacing=SPACING, block_shape=(16, 16, 16))
    assert rows["label"].tolist() == table["label"].tolist()
    exact = [c for c in THREEPHASE_COLUMNS if not c.startswith(("crack_normal", "crack_tilt"))]
    pd.testing.assert_frame_equal(rows[["label", *exact]], table[["label", *exact]],
                                  check_exact=True)
    # a crack plane's fit sees the particle's crop-relative positions: rounding only
    pd.testing.assert_frame_equal(rows, table, check_exact=False, rtol=1e-9, atol=1e-9)


def test_a_particle_larger_than_the_reach_is_an_error(scan, whole):
    grey, lab = scan
    ids, (_, _, thr) = whole
    out = np.zeros(lab.shape, np.uint8)
    with pytest.raises(InputError, match=r"particle \d+ at voxel .*halo \(6, 6, 6\).*extent"):
        cb.three_phase_blocks(lab, grey, out, split=ids, threshold=thr, spacing=SPACING,
                              block_shape=BLOCKS, halo=(6, 6, 6))


def test_classification_with_the_block_splitter_equals_in_memory(scan):
    grey, lab = scan
    prep = prepare_scan(grey, lab, spacing=SPACING)
    model = load_cracks_model(None)
    mem = classify_scan(prep, model, split="all")
    out = np.zeros(lab.shape, np.uint8)
    split = cb.BlockSplitter(lab, grey, out, label_boxes(lab), BLOCKS, _halo(lab))
    eng = classify_scan(prep, model, split="all", splitter=split)
    assert eng.phases is None
    np.testing.assert_array_equal(out, mem.phases)
    pd.testing.assert_frame_equal(eng.table, mem.table, check_exact=False, rtol=1e-9,
                                  atol=1e-12)
    assert json.dumps(eng.summary) == json.dumps(mem.summary)


def test_on_a_local_cluster_equals_the_serial_blocks(scan, whole, address, tmp_path):
    import zarr

    grey, lab = scan
    ids, (phases, table, thr) = whole
    refs = {}
    for name, arr in (("lab", lab), ("grey", grey)):
        z = zarr.open(str(tmp_path / f"{name}.zarr"), mode="w", shape=arr.shape,
                      chunks=BLOCKS, dtype=arr.dtype)
        z[...] = arr
        refs[name] = ZarrRef(str(tmp_path / f"{name}.zarr"))
    dst = zarr.open(str(tmp_path / "out.zarr"), mode="w", shape=lab.shape, chunks=BLOCKS,
                    dtype=np.uint8)
    with open_client(ComputeConfig(scheduler=address)) as client:
        boxes = cb.label_boxes_blocks(refs["lab"], block_shape=(16, 16, 16), client=client)
        cb.three_phase_blocks(refs["lab"], refs["grey"], ZarrRef(str(tmp_path / "out.zarr")),
                              split=ids, threshold=thr, spacing=SPACING, block_shape=BLOCKS,
                              halo=_halo(lab), client=client)
        rows = cb.crack_rows_blocks(refs["lab"], refs["grey"], boxes, split=ids,
                                    threshold=thr, spacing=SPACING, block_shape=BLOCKS,
                                    client=client)
    np.testing.assert_array_equal(boxes, label_boxes(lab))
    np.testing.assert_array_equal(dst[...], phases)
    pd.testing.assert_frame_equal(rows, table, check_exact=False, rtol=1e-9, atol=1e-9)


def test_ect_cracks_classify_on_the_engine_equals_in_memory(run_cli, scan, tmp_path,
                                                            address):
    grey, lab = scan
    write(Volume(grey, spacing=SPACING), tmp_path / "grey.tif")
    write(Volume(lab, spacing=SPACING), tmp_path / "lab.tif")
    args = ["cracks", "classify", tmp_path / "grey.tif", tmp_path / "lab.tif", "--split",
            "all", "--json"]
    code, stdout, err = run_cli(*args, "--out", tmp_path / "mem")
    assert code == 0, err
    code, stdout2, err = run_cli(*args, "--out", tmp_path / "eng", "--scheduler", address,
                                 "--block-shape", "24 24 26")
    assert code == 0, err
    a, b = json.loads(stdout), json.loads(stdout2)
    a.pop("outputs"), b.pop("outputs")
    assert a == b
    pd.testing.assert_frame_equal(read_table(tmp_path / "eng" / "cracks.parquet"),
                                  read_table(tmp_path / "mem" / "cracks.parquet"),
                                  check_exact=False, rtol=1e-9, atol=1e-9)
    pm, pe = (read(tmp_path / d / "particle_phases.tif") for d in ("mem", "eng"))
    np.testing.assert_array_equal(pe.numpy(), pm.numpy())
    assert pe.class_map == pm.class_map
    assert not list((tmp_path / "eng").glob(".*ect-work"))


def test_ect_cracks_classify_refuses_blocks_smaller_than_the_reach(run_cli, scan, tmp_path,
                                                                  address):
    grey, lab = scan
    write(Volume(grey, spacing=SPACING), tmp_path / "grey.tif")
    write(Volume(lab, spacing=SPACING), tmp_path / "lab.tif")
    code, _, err = run_cli("cracks", "classify", tmp_path / "grey.tif", tmp_path / "lab.tif",
                           "--out", tmp_path / "o", "--block-shape", "8 8 8",
                           "--scheduler", address)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and errors[0].split("\r")[-1].startswith("error:")
    assert "halo (" in errors[0] and "block (8, 8, 8)" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "o").exists()
