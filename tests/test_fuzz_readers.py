"""Every reader survives any file (issue 27): property-based fuzzing of truncated,
bit-flipped and header-altered copies of the seed corpus ``tests/data/fuzz``.

Each case runs with a time limit, under ``tracemalloc`` and in a fresh folder: the only
exceptions allowed are the project's errors, the allocation stays within what the file can
imply (:func:`electrode_ct.io._meta.check_allocation`) and no file is written. The longer
run is ``benchmarks/fuzz.py``; here each target gets a modest number of examples.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _fuzz
from electrode_ct.errors import ElectrodeCTError, FormatError
from electrode_ct.io import read

EXAMPLES = 5


@pytest.fixture(scope="module")
def seed_root(tmp_path_factory) -> Path:
    """The committed corpus plus a model archive written by the current model code."""
    root = tmp_path_factory.mktemp("seeds")
    for p in _fuzz.SEEDS.iterdir():
        (root / p.name).symlink_to(p)
    _fuzz.write_model_seed(root / "model.ectmodel")
    return root


@pytest.mark.parametrize("name", [t.name for t in _fuzz.TARGETS])
def test_seed_reads_cleanly(name, seed_root):
    """The unmutated seeds are valid files: the reader returns without error."""
    t = _fuzz.target(name)
    assert _fuzz.run_case(t, (t.members or ("",))[0], lambda b: b, root=seed_root) is None
    if t.load in (_fuzz._read, _fuzz._read_lazy):
        assert np.array_equal(t.load(seed_root / t.seed), _fuzz._phantom())


@pytest.mark.parametrize("name", [t.name for t in _fuzz.TARGETS])
def test_reader_survives_mutations(name, seed_root):
    t = _fuzz.target(name)

    @settings(max_examples=EXAMPLES * max(1, len(t.members)), deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(t.members or ("",)), _fuzz.mutations())
    def check(member, mutate):
        assert _fuzz.run_case(t, member, mutate, root=seed_root) is None

    check()


def test_harness_catches_misbehaving_readers(tmp_path):
    """The harness itself: a foreign exception, a hang (even one whose alarm is swallowed),
    a big allocation and a written file are each reported (so a passing fuzz test means
    something)."""
    import time

    def foreign(p):
        raise KeyError("x")

    def hang(p):
        time.sleep(60)

    def hog(p):
        return np.empty(_fuzz.allowed_bytes(p) + 2**20, np.uint8)

    def writer(p):
        (p.parent / "side.txt").write_text("x")

    def swallower(p):  # the alarm's exception lost (as inside a gc callback)
        try:
            time.sleep(60)
        except BaseException:
            time.sleep(0.4)

    base = _fuzz.target("npy")
    old = _fuzz.TIME_LIMIT_S
    _fuzz.TIME_LIMIT_S = 0.3
    try:
        msgs = [_fuzz.run_case(_fuzz.Target("t", base.seed, load=f), "", lambda b: b)
                for f in (foreign, hang, hog, writer, swallower)]
    finally:
        _fuzz.TIME_LIMIT_S = old
    assert "KeyError" in msgs[0] and "no result within" in msgs[1]
    assert "allocated" in msgs[2] and "side.txt" in msgs[3]
    assert "no result within" in msgs[4]


# ------------------------------------------------------------- huge headers, each format
HUGE = (10_000, 10_000, 10_000)  # 10¹² voxels


def _huge_cases(folder: Path) -> list[tuple[str, dict]]:
    import h5py
    import zarr

    seeds = _fuzz.SEEDS
    z, y, x = HUGE
    out = []
    sizes = f"sizes: {x} {y} {z}".encode()
    for name in ("vol.nrrd", "vol_gz.nrrd"):
        blob = (seeds / name).read_bytes().replace(b"sizes: 8 8 4", sizes)
        (folder / f"huge_{name}").write_bytes(blob)
        out.append((f"huge_{name}", {}))
    dims = f"DimSize = {x} {y} {z}".encode()
    (folder / "huge.mha").write_bytes((seeds / "vol.mha").read_bytes().replace(
        b"DimSize = 8 8 4", dims))
    out.append(("huge.mha", {}))
    (folder / "huge.raw").write_bytes(b"\0" * 64)
    out.append(("huge.raw", {"shape": HUGE, "dtype": "uint16"}))
    from numpy.lib import format as npf

    with open(folder / "huge.npy", "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False, "shape": HUGE})
        fh.write(b"\0" * 64)
    out.append(("huge.npy", {}))
    with h5py.File(folder / "huge.h5", "w") as h5:
        h5.create_dataset("entry/data/data", shape=HUGE, dtype="u2", chunks=(1, 64, 64),
                          compression="gzip")
    out.append(("huge.h5", {}))
    zarr.open_array(str(folder / "huge.zarr"), mode="w", shape=HUGE, chunks=(1, 64, 64),
                    dtype="u2", zarr_format=2)
    out.append(("huge.zarr", {}))
    _huge_tiff(folder / "huge.tif")
    out.append(("huge.tif", {}))
    _huge_txm(folder / "huge.txm")
    out.append(("huge.txm", {}))
    return out


def _huge_tiff(path: Path) -> None:
    """A zlib TIFF whose single page claims 10⁶ x 10⁶ pixels (tags patched)."""
    import tifffile

    tifffile.imwrite(path, np.zeros((16, 16), np.uint16), compression="zlib")
    blob = bytearray(path.read_bytes())
    ifd = struct.unpack("<I", blob[4:8])[0]
    n = struct.unpack("<H", blob[ifd:ifd + 2])[0]
    for i in range(n):
        at = ifd + 2 + 12 * i
        tag, typ = struct.unpack("<HH", blob[at:at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            blob[at + 2:at + 12] = struct.pack("<HI", 4, 1) + struct.pack("<I", 10**6)
    path.write_bytes(bytes(blob))


def _huge_txm(path: Path) -> None:
    data = _fuzz._phantom()
    _fuzz._write_txm(path, data)
    blob = path.read_bytes()
    path.write_bytes(blob.replace(struct.pack("<I", 8) + b"\0" * 60,
                                  struct.pack("<I", 10**6) + b"\0" * 60))


def test_huge_headers_refused_before_allocating(tmp_path):
    """A header claiming 10¹² voxels is a FormatError, eager or lazy, with no large
    allocation (traced peak under 64 MiB)."""
    import tracemalloc

    for name, options in _huge_cases(tmp_path):
        for lazy in (False, True):
            tracemalloc.start()
            try:
                with pytest.raises(FormatError, match=name.split(".")[0]) as info:
                    read(str(tmp_path / name), lazy=lazy, **options).numpy()
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            assert peak < 64 * 2**20, (name, lazy, peak)
            assert "declares" in str(info.value) or "size" in str(info.value), info.value


def test_compressed_raw_decompresses_no_more_than_declared(tmp_path):
    """A gzip NRRD whose data expand beyond the header's size is refused without
    decompressing the excess (a small 'zip bomb')."""
    import gzip
    import tracemalloc

    head = (_fuzz.SEEDS / "vol_gz.nrrd").read_bytes().split(b"\n\n", 1)[0] + b"\n\n"
    (tmp_path / "bomb.nrrd").write_bytes(head + gzip.compress(b"\0" * 200 * 2**20))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="bomb.nrrd.*decompressed size"):
            read(str(tmp_path / "bomb.nrrd"))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_lazy_read_of_damaged_chunk_raises_project_error(tmp_path):
    """A lazily read volume whose chunk is damaged fails with FormatError naming the file
    when computed (not the decoder's own exception)."""
    import shutil

    shutil.copytree(_fuzz.SEEDS / "vol.zarr", tmp_path / "v.zarr")
    chunk = tmp_path / "v.zarr" / "0" / "0.0.0"
    chunk.write_bytes(chunk.read_bytes()[:10])  # shorter than the 16-byte blosc header
    vol = read(str(tmp_path / "v.zarr"), lazy=True)
    with pytest.raises(ElectrodeCTError, match="v.zarr"):
        vol.numpy()


# ------------------------------------------------- regressions found by the long fuzzing run
REGRESS = _fuzz.SEEDS / "regress"


def test_tiff_slice_with_huge_tag_count_refused_before_reading(tmp_path):
    """A slice whose StripOffsets tag claims 4.3·10⁹ values (a 17 GB read in the minimal
    IFD parser) is a FormatError naming the slice and tag, with no large allocation."""
    import shutil
    import tracemalloc

    folder = tmp_path / "slices"
    folder.mkdir()
    shutil.copy(_fuzz.SEEDS / "slices" / "s0.tif", folder / "s0.tif")
    shutil.copy(REGRESS / "strip_count.tif", folder / "s1.tif")
    for lazy in (False, True):
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match=r"s1\.tif: damaged TIFF \(tag 273"):
                read(str(folder), lazy=lazy).numpy()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 16 * 2**20, (lazy, peak)


def test_zarr_with_countless_tiny_chunks_refused(tmp_path):
    """A 4 MB array declared as 16 384 chunks of 128 bytes (a damaged .zarray; reading it
    took over 15 s lazily) is refused before any chunk is read, eager or lazy."""
    for lazy in (False, True):
        with pytest.raises(FormatError, match=r"tiny_chunks\.zarr.*16,384 chunks.*4,096"):
            read(str(REGRESS / "tiny_chunks.zarr"), lazy=lazy)


def test_chunk_grid_limit_boundary():
    """Up to 4 096 chunks of any size pass; beyond, chunks must average 32 KiB."""
    from electrode_ct.io._zarr_guard import check_chunk_grid

    check_chunk_grid((1, 1, 4096), (1, 1, 1), 1, where="a")  # 4 096 chunks of 1 byte
    with pytest.raises(FormatError, match="a: .*4,097 chunks of 1x1x1 voxels"):
        check_chunk_grid((1, 1, 4097), (1, 1, 1), 1, where="a")
    big = (256, 1024, 1024)  # 512 MiB of uint16: at most 16 384 chunks
    check_chunk_grid(big, (16, 16, 64), 2, where="b")  # 16 384 chunks of 32 KiB
    with pytest.raises(FormatError, match="b: .*17,408 chunks.*16,384 allowed"):
        check_chunk_grid(big, (16, 16, 63), 2, where="b")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_blosc_chunk_cut_after_header_refused(tmp_path, zarr_format):
    """A Blosc chunk cut short after its 16-byte header (numcodecs decodes it silently to
    wrong values) is a FormatError naming the store and chunk, eager or lazy; the intact
    store still reads exactly (committed seed for Zarr 2, written here for Zarr 3)."""
    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    if zarr_format == 2:
        store = REGRESS / "blosc_cut.zarr"
    else:
        store = tmp_path / "v3.zarr"
        write(Volume(_fuzz._phantom()), store, chunks=(2, 8, 8), zarr_format=3)
        assert np.array_equal(read(str(store), lazy=True).numpy(), _fuzz._phantom())
        chunk = next(p for p in (store / "0").rglob("*") if p.is_file() and p.name == "0")
        chunk.write_bytes(chunk.read_bytes()[:40])
    for lazy in (False, True):
        with pytest.raises(FormatError, match=rf"{store.name}.*Blosc header declares \d+ "
                                              r"compressed bytes, the chunk has 40"):
            read(str(store), lazy=lazy).numpy()


def test_blosc_chunk_with_wrong_decoded_size_refused(tmp_path):
    """A Blosc header whose uncompressed size differs from the array's chunk size is
    refused before decoding (its allocation is sized by that header field)."""
    import shutil

    shutil.copytree(_fuzz.SEEDS / "vol.zarr", tmp_path / "v.zarr")
    chunk = tmp_path / "v.zarr" / "0" / "0.0.0"
    blob = bytearray(chunk.read_bytes())
    blob[4:8] = struct.pack("<I", 2**31 - 1)
    chunk.write_bytes(bytes(blob))
    with pytest.raises(FormatError, match=r"v\.zarr.*2147483647 bytes uncompressed.*256"):
        read(str(tmp_path / "v.zarr"))


def test_compressed_tiff_missing_strips_refused():
    """A zlib TIFF whose ImageLength was damaged to 262 152 rows (32 769 strips of 8 rows,
    one listed; within the size rule, it took over 15 s under tracemalloc, millions of
    strips at the size limit) is refused when opened, eager or lazy."""
    for lazy in (False, True):
        with pytest.raises(FormatError, match=r"missing_strips\.tif: damaged TIFF: a 262152x8 "
                                              r"page .* needs 32,769 .* lists 1"):
            read(str(REGRESS / "missing_strips.tif"), lazy=lazy)


def test_npy_unknown_format_version_refused_before_reading(tmp_path):
    """A bit flip in the .npy minor version (1.0 → 1.8) made numpy read the header length
    as 4 bytes and ask for 662 MB: refused before numpy parses it; versions 1.0, 2.0 and
    3.0 still read exactly."""
    import tracemalloc

    from numpy.lib import format as npf

    for lazy in (False, True):
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match=r"bad_version\.npy: unknown \.npy format "
                                                  r"version 1\.8"):
                read(str(REGRESS / "bad_version.npy"), lazy=lazy)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 16 * 2**20, (lazy, peak)
    data = _fuzz._phantom()
    for version in ((1, 0), (2, 0), (3, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as fh:
            npf.write_array(fh, data, version=version)
        assert np.array_equal(read(str(path)).numpy(), data)
