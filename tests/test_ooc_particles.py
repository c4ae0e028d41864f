"""Particles by ownership on the block engine == the in-memory separation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from electrode_ct.compute import ComputeConfig, ZarrRef, open_client
from electrode_ct.errors import InputError
from electrode_ct.io import read, write
from electrode_ct.particles import relabel_sequential, remove_border, separate_particles
from electrode_ct.particles.blockwise import (
    ParticleSettings,
    global_ids,
    particle_halo,
    separate_blockwise,
)
from electrode_ct.volume import Volume

ACTIVE = 2


def spheres(shape, balls, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """uint8 phases: ACTIVE inside the balls ((z, y, x) centre in voxels, radius in µm)."""
    grid = np.indices(shape).astype(np.float64)
    out = np.zeros(shape, np.uint8)
    for centre, r in balls:
        d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
        out[d2 <= r * r] = ACTIVE
    return out


def in_memory(phases, spacing=(1.0, 1.0, 1.0), **kw) -> np.ndarray:
    return relabel_sequential(separate_particles(phases, phase=ACTIVE, spacing=spacing,
                                                 **kw).labels)


def blockwise(phases, tmp_path, *, block_shape, halo=None, spacing=(1.0, 1.0, 1.0),
              remove_border=False, client=None, heal=0.0):
    settings = ParticleSettings(ACTIVE, spacing, heal_cracks_um=heal)
    out = np.zeros(phases.shape, np.uint32)
    res = separate_blockwise(phases, out, settings=settings, work=tmp_path, halo=halo,
                             block_shape=block_shape, remove_border=remove_border,
                             client=client)
    return out, res


def one_to_one(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1])))


def test_particle_across_a_corner_of_eight_blocks(tmp_path):
    ph = spheres((40, 40, 40), [((20, 20, 20), 7), ((20, 20, 32), 6), ((9, 30, 20), 5),
                                ((30, 9, 9), 4)])
    ref = in_memory(ph)
    out, res = blockwise(ph, tmp_path, block_shape=(20, 20, 20), halo=20)
    assert ref.max() == 4 and np.array_equal(out, ref)
    assert res.n_particles == 4 and res.halo == (20, 20, 20)
    corner = out[18:22, 18:22, 18:22]  # the 8 blocks' common corner: one particle
    assert np.unique(corner).tolist() == [out[20, 20, 20]] and out[20, 20, 20] > 0
    stored = sorted((tmp_path / "owned").glob("*.json"))
    assert len(stored) == 8
    again, _ = blockwise(ph, tmp_path, block_shape=(20, 20, 20), halo=20)  # resumed
    assert np.array_equal(again, ref)
    assert [p.stat().st_mtime_ns for p in stored] == \
        [p.stat().st_mtime_ns for p in sorted((tmp_path / "owned").glob("*.json"))]


def test_cracked_particle_split_by_a_block_face_stays_whole(tmp_path):
    ph = spheres((32, 32, 48), [((16, 16, 24), 9), ((16, 16, 6), 5), ((16, 16, 42), 5)])
    ph[:, :, 24] = 0  # a 1-voxel crack through the big particle, on the blocks' face
    ref = in_memory(ph, heal_cracks_um=1.5)
    out, res = blockwise(ph, tmp_path, block_shape=(32, 32, 24), halo=24, heal=1.5)
    assert np.array_equal(out, ref) and res.n_particles == 3
    assert out[16, 16, 23] == out[16, 16, 25] > 0  # both halves: one id
    assert res.decisions.resplit is not None and res.decisions.choose is not None


def test_a_particle_longer_than_the_halo_is_an_error_naming_it(tmp_path):
    ph = np.zeros((24, 24, 64), np.uint8)
    ph[9:15, 9:15, 6:58] = ACTIVE  # a rod: its extent is far beyond its thickness
    with pytest.raises(InputError) as exc:
        blockwise(ph, tmp_path, block_shape=(24, 24, 20))
    msg = str(exc.value)
    assert "\n" not in msg and "particle at voxel (9, 9, 6)" in msg
    assert "give a halo of at least" in msg
    need = int(msg.split("at least ")[1].split()[0])
    out, _ = blockwise(ph, tmp_path / "again", block_shape=(24, 24, 64), halo=need)
    assert np.array_equal(out, in_memory(ph))


def test_halo_too_small_is_one_line_with_the_size_needed(tmp_path):
    ph = spheres((32, 32, 32), [((16, 16, 16), 8)])
    with pytest.raises(InputError, match=r"^halo: .* give a halo of at least \d+ voxels"):
        blockwise(ph, tmp_path, block_shape=(16, 16, 16), halo=4)
    assert not any((tmp_path / "owned").glob("ids*"))  # nothing composed
    with pytest.raises(InputError, match="no voxels of the requested phase 2"):
        blockwise(np.zeros((16, 16, 16), np.uint8), tmp_path / "none", block_shape=(8, 8, 8),
                  halo=4)


def test_empty_blocks_and_particles_on_the_volume_faces(tmp_path):
    ph = spheres((36, 36, 36), [((0, 0, 0), 6), ((0, 8, 0), 5), ((35, 35, 18), 6),
                                ((18, 18, 35), 4)])
    ph[:, :, :1] = 0  # keep a block column empty on one side
    ref = in_memory(ph)
    out, res = blockwise(ph, tmp_path, block_shape=(12, 12, 12), halo=12)
    assert np.array_equal(out, ref) and res.n_border == ref.max() >= 3
    dropped, res2 = blockwise(ph, tmp_path / "b", block_shape=(12, 12, 12), halo=12,
                              remove_border=True)
    assert res2.n_particles == 0 and res2.n_removed_border == ref.max()
    assert np.array_equal(dropped, relabel_sequential(remove_border(ref)))


def test_anisotropic_spacing(tmp_path):
    sp = (2.0, 1.0, 1.0)
    ph = spheres((24, 48, 48), [((12, 24, 24), 6), ((12, 24, 35), 5.5), ((4, 8, 8), 4)],
                 spacing=sp)
    ref = in_memory(ph, spacing=sp)
    halo = particle_halo(12.0, ParticleSettings(ACTIVE, sp))
    assert halo == (11, 17, 17)  # µm turned into voxels per axis, + the smoothing radius
    out, _ = blockwise(ph, tmp_path, block_shape=(12, 24, 24), spacing=sp, halo=halo)
    assert np.array_equal(out, ref) and ref.max() >= 2
    assert one_to_one(out, ref)


def test_ids_beyond_uint32_are_refused():
    parts = [{"first": np.array([5, 1]), "border": np.array([False, True])},
             {"first": np.array([9, 3, 7]), "border": np.zeros(3, bool)}]
    ids, n_border, _ = global_ids(parts)
    assert ids.tolist() == [3, 1, 5, 2, 4] and n_border == 1
    with pytest.raises(InputError, match="exceed the uint32 ids"):
        global_ids(parts, max_id=4)


@pytest.fixture(scope="module")
def client():
    with open_client(ComputeConfig(n_workers=2, threads_per_worker=1,
                                   memory_limit="1GB")) as c:
        yield c


def test_on_a_local_cluster(client, tmp_path):
    ph = spheres((40, 40, 40), [((20, 20, 20), 7), ((20, 20, 32), 6), ((9, 30, 20), 5)])
    src = zarr.open_array(str(tmp_path / "ph.zarr"), mode="w", zarr_format=2,
                          shape=ph.shape, dtype=ph.dtype, chunks=(20, 20, 20))
    src[...] = ph
    dst = zarr.open_array(str(tmp_path / "out.zarr"), mode="w", zarr_format=2,
                          shape=ph.shape, dtype=np.uint32, chunks=(20, 20, 20))
    settings = ParticleSettings(ACTIVE, (1.0, 1.0, 1.0))
    res = separate_blockwise(ZarrRef(str(tmp_path / "ph.zarr")),
                             ZarrRef(str(tmp_path / "out.zarr")), settings=settings,
                             work=tmp_path / "work", block_shape=(20, 20, 20), halo=20,
                             client=client)
    assert res.n_particles == 3 and np.array_equal(dst[...], in_memory(ph))


def test_cli_engine_equals_in_memory_and_bad_halo(client, tmp_path, run_cli):
    ph = spheres((32, 32, 48), [((16, 16, 24), 8), ((16, 16, 9), 6), ((16, 16, 39), 6)])
    write(Volume(ph).with_class_map({"pore": 0, "active": ACTIVE}), tmp_path / "ph.tif")
    code, out, err = run_cli("particles", tmp_path / "ph.tif", tmp_path / "mem.tif", "--json")
    assert code == 0, err
    code, out2, err = run_cli("particles", tmp_path / "ph.tif", tmp_path / "eng.tif", "--json",
                              "--block-shape", "32 32 24", "--halo", "24",
                              "--scheduler", client.scheduler.address)
    assert code == 0, err
    mem, eng = read(tmp_path / "mem.tif").numpy(), read(tmp_path / "eng.tif").numpy()
    assert np.array_equal(mem, eng) and eng.max() == 3
    assert json.loads(out2)["n_particles"] == json.loads(out)["n_particles"] == 3
    code, _, err = run_cli("particles", tmp_path / "ph.tif", tmp_path / "bad.tif",
                           "--block-shape", "32 32 24", "--halo", "3 voxels")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "--halo" in lines[0]
    assert "Traceback" not in err and not (tmp_path / "bad.tif").exists()


def test_pipeline_particles_step_on_the_engine_equals_in_memory(client, tmp_path):
    from electrode_ct.pipeline import parse_config, run_pipeline

    ph = spheres((32, 32, 64), [((16, 16, 20), 6), ((16, 16, 31), 5), ((16, 16, 44), 6)])
    write(Volume(ph).with_class_map({"pore": 0, "active": ACTIVE}), tmp_path / "ph.tif")
    off = {"enabled": False}
    steps = {name: off for name in ("filter", "segment", "track", "measure", "cracks",
                                    "metrics", "stats", "report")}

    def run(name: str, **compute) -> tuple[np.ndarray, dict]:
        cfg = parse_config({"input": {"phases": str(tmp_path / "ph.tif")},
                            "output": str(tmp_path / name), "compute": compute,
                            "steps": {**steps, "particles": {"phase": "active"}}})
        run_pipeline(cfg, quiet=True)
        prov = json.loads((tmp_path / name / "provenance.json").read_text())
        return read(tmp_path / name / "volumes" / "particles.tif").numpy(), prov

    eng, prov = run("eng", scheduler=client.scheduler.address, block_shape=[32, 32, 32])
    mem, _ = run("mem")
    assert np.array_equal(eng, mem) and mem.max() == 3
    assert "halo_voxels" in json.dumps(prov)
    assert not any(p.name.startswith("particles.") for p in (tmp_path / "eng" / "work").iterdir())


def test_phase_clusters_by_union_find_equal_in_memory():
    import cc3d

    from electrode_ct.particles.blockwise import components_blockwise

    ph = spheres((30, 30, 30), [((15, 15, 15), 6), ((3, 3, 25), 4), ((15, 15, 25), 4)])
    ph[ph == 0] = 1  # carbon binder around the particles ...
    ph[:, :, 8:10] = 0  # ... cut by pore slabs into clusters
    ph[12:14] = 0
    ref = cc3d.connected_components(ph == 1, connectivity=6)
    out = np.zeros(ph.shape, np.uint32)
    n = components_blockwise(ph, out, 1, block_shape=(10, 10, 10))
    assert n == ref.max() >= 4 and one_to_one(out, ref)


def test_solidity_from_row_ends_equals_the_hull_of_every_voxel_corner():
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull

    from electrode_ct.particles.shape import _CORNERS, particle_solidity

    rng = np.random.default_rng(4)
    blobs = ndi.gaussian_filter(rng.random((20, 22, 24)), 2.5) > 0.52
    labels, n = ndi.label(blobs)
    sp = (1.5, 1.0, 0.7)
    sol = particle_solidity(labels, spacing=sp)
    for i in range(1, n + 1):
        pts = np.argwhere(labels == i).astype(float)
        corners = (pts[:, None, :] + _CORNERS[None]).reshape(-1, 3) * sp
        ref = (labels == i).sum() * np.prod(sp) / ConvexHull(corners).volume
        assert sol[i] == pytest.approx(ref, rel=1e-12)
    assert np.array_equal(particle_solidity(labels, spacing=sp), sol)  # remembered: same
    assert not np.array_equal(particle_solidity(labels, spacing=(1.0, 1.0, 1.0))[1:], sol[1:])


def test_particle_blocks_take_half_a_workers_memory_and_no_more():
    from electrode_ct.compute import ComputeConfig
    from electrode_ct.particles.blockwise import (
        BLOCK_SHARE,
        BYTES_PER_VOXEL,
        plan_particle_blocks,
    )

    cfg = ComputeConfig(n_workers=2, threads_per_worker=1, memory_limit="8GB")
    halo = (53, 53, 53)
    blocks = plan_particle_blocks(cfg, (1024, 1024, 1024), halo)
    def need(edges):
        return np.prod(np.asarray(edges) + 2 * np.asarray(halo)) * BYTES_PER_VOXEL

    assert need(blocks) <= BLOCK_SHARE * 8e9
    assert need(np.asarray(blocks) + 32) > BLOCK_SHARE * 8e9  # the next multiple of 32
    assert blocks == (224, 224, 224)
