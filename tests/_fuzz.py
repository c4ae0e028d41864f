"""Fuzzing machinery shared by ``tests/test_fuzz_readers.py`` and ``benchmarks/fuzz.py``.

A *target* is a seed file (or folder) of ``tests/data/fuzz`` plus the reader call under
test. A *case* is one mutation of one file of the seed: truncated at a byte, bits flipped
(mostly in the header) or a header number replaced by an extreme value. :func:`run_case`
runs the reader on a fresh copy of the mutated seed and returns a description of what went
wrong, or None when the reader returned or raised one of the project's errors within the
time limit, allocated no more than the file can imply and wrote no file.
"""

from __future__ import annotations

import re
import shutil
import signal
import struct
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEEDS = Path(__file__).parent / "data" / "fuzz"
TIME_LIMIT_S = 15.0
HEADER_BYTES = 1024
EXTREMES = (0, 1, -1, 255, 65535, 2**31 - 1, 2**32 + 7, 10**12, 2**63 - 1)
OVERHEAD_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Target:
    """One reader under test.

    Attributes
    ----------
    name : str
        Short name (test id).
    seed : str
        File or folder under :data:`SEEDS`.
    members : tuple of str
        For folder seeds, the files mutated (relative to the seed); empty for files.
    load : callable
        ``load(path) -> Any``: the reader call on the copied seed.
    """

    name: str
    seed: str
    members: tuple[str, ...] = ()
    load: Callable[[Path], Any] = lambda p: None


def _read(path: Path, **options: Any) -> Any:
    from electrode_ct.io import read

    return read(str(path), **options).numpy()


def _read_lazy(path: Path) -> Any:
    from electrode_ct.io import read

    return read(str(path), lazy=True).numpy()


def _coco(path: Path) -> Any:
    from electrode_ct.particles.coco import import_coco

    return import_coco(path)


def _config(path: Path) -> Any:
    from electrode_ct.pipeline import load_config

    return load_config(path)


def _model(path: Path) -> Any:
    from electrode_ct.segment.models import load_model

    return load_model(path)


def _table(path: Path) -> Any:
    from electrode_ct.io import read_table

    return read_table(path)


def _raw(path: Path) -> Any:
    return _read(path, shape=(4, 8, 8), dtype="uint16")


TARGETS: tuple[Target, ...] = (
    Target("tiff", "vol.tif", load=_read),
    Target("tiff-lazy", "vol.tif", load=_read_lazy),
    Target("tiff-zlib", "vol_zlib.tif", load=_read),
    Target("ome-tiff", "vol.ome.tif", load=_read),
    Target("tiff-folder", "slices", ("s1.tif", "s2.tif"), load=_read),
    Target("hdf5", "vol.h5", load=_read),
    Target("nexus-lazy", "vol.nxs", load=_read_lazy),
    Target("zarr", "vol.zarr", ("0/.zarray", ".zattrs", "0/0.0.0", ".zgroup"), load=_read),
    Target("zarr-lazy", "vol.zarr", ("0/.zarray", "0/0.0.0"), load=_read_lazy),
    Target("nrrd", "vol.nrrd", load=_read),
    Target("nrrd-gzip", "vol_gz.nrrd", load=_read),
    Target("nhdr", "nhdr", ("vol.nhdr", "vol.raw"), load=lambda p: _read(p / "vol.nhdr")),
    Target("mhd", "mhd", ("vol.mhd", "vol.zraw"), load=lambda p: _read(p / "vol.mhd")),
    Target("mha", "vol.mha", load=_read),
    Target("raw", "vol.raw", load=_raw),
    Target("npy", "vol.npy", load=_read),
    Target("npy-lazy", "vol.npy", load=_read_lazy),
    Target("txm", "vol.txm", load=_read),
    Target("coco", "coco.json", load=_coco),
    Target("yaml", "config.yaml", load=_config),
    Target("parquet", "table.parquet", load=_table),
    Target("csv", "table.csv", load=_table),
    Target("model", "model.ectmodel", load=_model),
)


def target(name: str) -> Target:
    """The target called ``name``."""
    return next(t for t in TARGETS if t.name == name)


# ------------------------------------------------------------------------------ mutations
def truncate(blob: bytes, at: int) -> bytes:
    """The first ``at`` bytes."""
    return blob[:at]


def flip(blob: bytes, bits: list[int]) -> bytes:
    """``blob`` with the given bit positions (byte * 8 + bit) inverted."""
    out = bytearray(blob)
    for b in bits:
        if out:
            out[(b // 8) % len(out)] ^= 1 << (b % 8)
    return bytes(out)


def header_number(blob: bytes, which: int, value: int) -> bytes:
    """Replace the ``which``-th decimal number of the header region by ``value`` (text
    headers), or, when the header holds no digits, overwrite 8 bytes at ``which`` with it."""
    head = blob[:HEADER_BYTES]
    runs = list(re.finditer(rb"\d+", head))
    if runs:
        m = runs[which % len(runs)]
        return blob[:m.start()] + str(value).encode() + blob[m.end():]
    at = which % max(1, len(head) - 8)
    return blob[:at] + struct.pack("<q", max(min(value, 2**63 - 1), -2**63)) + blob[at + 8:]


def binary_number(blob: bytes, at: int, value: int, width: int) -> bytes:
    """Overwrite ``width`` (4 or 8) bytes at ``at`` (within the header) with ``value``."""
    at = at % max(1, min(len(blob), HEADER_BYTES) - width)
    packed = (value % 2**(8 * width)).to_bytes(width, "little")
    return blob[:at] + packed + blob[at + width:]


def mutations() -> Any:
    """Hypothesis strategy: a function ``bytes -> bytes`` (one of the mutation kinds)."""
    from hypothesis import strategies as st

    header_bits = st.integers(0, HEADER_BYTES * 8 - 1)
    any_bits = st.integers(0, 2**24)
    return st.one_of(
        st.floats(0, 1, exclude_max=True).map(
            lambda f: lambda b: truncate(b, int(f * len(b)))),
        st.lists(st.one_of(header_bits, any_bits), min_size=1, max_size=8).map(
            lambda bits: lambda b: flip(b, bits)),
        st.tuples(st.integers(0, 200), st.sampled_from(EXTREMES)).map(
            lambda t: lambda b: header_number(b, *t)),
        st.tuples(st.integers(0, HEADER_BYTES), st.sampled_from(EXTREMES),
                  st.sampled_from((4, 8))).map(lambda t: lambda b: binary_number(b, *t)),
    )


# ---------------------------------------------------------------------------------- cases
class Hang(BaseException):  # noqa: N818 - not an Exception, so readers cannot swallow it
    """Raised by the alarm when a case runs past :data:`TIME_LIMIT_S`."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _prepare(t: Target, member: str, mutate: Callable[[bytes], bytes], work: Path,
             root: Path) -> Path:
    src = root / t.seed
    dst = work / t.seed
    if src.is_dir():
        shutil.copytree(src, dst)
        f = dst / member
    else:
        shutil.copy2(src, dst)
        f = dst
    f.write_bytes(mutate(f.read_bytes()))
    return dst


def keep_case(t: Target, member: str, mutate: Callable[[bytes], bytes], folder: Path,
              root: Path = SEEDS) -> Path:
    """Write the mutated input of one case under ``folder`` (to replay or to seed a test)."""
    folder.mkdir(parents=True, exist_ok=True)
    return _prepare(t, member, mutate, folder, root)


def allowed_bytes(path: Path) -> int:
    """Most bytes a reader may allocate for a seed: the rule of
    :func:`electrode_ct.io._meta.check_allocation` plus interpreter overhead."""
    from electrode_ct.io._meta import MAX_EXPANSION, SMALL_ARRAY_BYTES

    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size
    return max(SMALL_ARRAY_BYTES, MAX_EXPANSION * size) + OVERHEAD_BYTES


_WARM: set[tuple[str, Path]] = set()


def _warm_up(t: Target, root: Path) -> None:
    """Read the unmutated seed once, untimed: the imports a reader triggers on first use
    (dask, zarr, codecs) are not charged to a case, nor cut in half by its alarm."""
    if t in TARGETS and (t.name, root) not in _WARM:
        _WARM.add((t.name, root))
        t.load(root / t.seed)


def run_case(t: Target, member: str, mutate: Callable[[bytes], bytes], *,
             root: Path = SEEDS) -> str | None:
    """Run one case on the seed ``root / t.seed``; None when the reader behaved, else
    what went wrong (one line)."""
    from electrode_ct.errors import ElectrodeCTError

    _warm_up(t, root)

    with tempfile.TemporaryDirectory(prefix="ect-fuzz-") as tmp:
        work = Path(tmp)
        path = _prepare(t, member, mutate, work, root)
        before = _listing(work)
        limit = allowed_bytes(path)
        old = signal.signal(signal.SIGALRM, _alarm)
        tracemalloc.start()
        problem = None
        t0 = time.monotonic()
        try:
            signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
            t.load(path)
        except ElectrodeCTError:
            pass
        except Hang:
            problem = f"no result within {TIME_LIMIT_S} s"
        except Exception as exc:  # the failure being looked for
            problem = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if problem is None and time.monotonic() - t0 > TIME_LIMIT_S:
            # the alarm's exception can be swallowed (raised inside a gc callback)
            problem = f"no result within {TIME_LIMIT_S} s"
        if problem is None and peak > limit:
            problem = f"allocated {peak:,} bytes, more than the {limit:,} the file can imply"
        if problem is None and _listing(work) != before:
            problem = f"files written: {sorted(_listing(work) - before)}"
    return None if problem is None else f"{t.name}/{member or t.seed}: {problem}"


# ---------------------------------------------------------------------------------- seeds
def _phantom(shape: tuple[int, ...] = (4, 8, 8)) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=shape).astype(np.uint16)


def write_seeds(folder: Path = SEEDS) -> list[Path]:
    """Write the seed corpus (a few KB per seed) and return the seed paths."""
    import tifffile

    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    folder.mkdir(parents=True, exist_ok=True)
    data = _phantom()
    vol = Volume(data, spacing=(1.5, 0.5, 0.5), metadata={"class_map": None})
    for name in ("vol.tif", "vol.h5", "vol.nxs", "vol.npy"):
        write(vol, folder / name, **({"compression": None} if name == "vol.tif" else {}))
    write(vol, folder / "vol_zlib.tif")
    write(vol, folder / "vol.zarr", chunks=(2, 8, 8))
    tifffile.imwrite(folder / "vol.ome.tif", data, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    (folder / "slices").mkdir(exist_ok=True)
    for i, plane in enumerate(data):
        tifffile.imwrite(folder / "slices" / f"s{i}.tif", plane)
    _write_raw_family(folder, data)
    _write_txm(folder / "vol.txm", data)
    _write_documents(folder)
    return sorted(folder.iterdir())


def _write_raw_family(folder: Path, data: np.ndarray) -> None:
    import gzip
    import zlib

    z, y, x = data.shape
    raw = data.astype("<u2").tobytes()
    head = (f"NRRD0004\ntype: uint16\ndimension: 3\nsizes: {x} {y} {z}\n"
            "spacings: 0.0005 0.0005 0.0015\nendian: little\n")
    (folder / "vol.nrrd").write_bytes((head + "encoding: raw\n\n").encode() + raw)
    (folder / "vol_gz.nrrd").write_bytes((head + "encoding: gzip\n\n").encode()
                                         + gzip.compress(raw, mtime=0))
    (folder / "nhdr").mkdir(exist_ok=True)
    (folder / "nhdr" / "vol.nhdr").write_text(head + "encoding: raw\ndata file: vol.raw\n")
    (folder / "nhdr" / "vol.raw").write_bytes(raw)
    mhd = (f"ObjectType = Image\nNDims = 3\nDimSize = {x} {y} {z}\nElementType = MET_USHORT\n"
           "ElementSpacing = 0.0005 0.0005 0.0015\nBinaryDataByteOrderMSB = False\n")
    (folder / "mhd").mkdir(exist_ok=True)
    (folder / "mhd" / "vol.mhd").write_text(
        mhd + "CompressedData = True\nElementDataFile = vol.zraw\n")
    (folder / "mhd" / "vol.zraw").write_bytes(zlib.compress(raw))
    (folder / "vol.mha").write_bytes((mhd + "ElementDataFile = LOCAL\n").encode() + raw)
    (folder / "vol.raw").write_bytes(raw)


def _write_txm(path: Path, data: np.ndarray) -> None:
    from _olewriter import write_ole

    z, y, x = data.shape
    streams = {
        "ImageInfo/ImageWidth": struct.pack("<I", x),
        "ImageInfo/ImageHeight": struct.pack("<I", y),
        "ImageInfo/NoOfImages": struct.pack("<I", z),
        "ImageInfo/DataType": struct.pack("<I", 5),
        "ImageInfo/PixelSize": struct.pack("<f", 0.5),
    }
    for i in range(1, z + 1):
        streams[f"ImageData1/Image{i}"] = data[i - 1].astype("<u2").tobytes()
    write_ole(path, streams)


def _write_documents(folder: Path) -> None:
    import json

    import pandas as pd

    from electrode_ct.io import write_table

    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
            "annotations": [{"id": 1, "image_id": 1, "particle_id": 3, "iscrowd": 0,
                             "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]]}],
            "categories": [{"id": 1, "name": "particle"}]}
    (folder / "coco.json").write_text(json.dumps(coco))
    (folder / "config.yaml").write_text(
        "input:\n  grey: vol.tif\n  voxel_size: 0.5\noutput: out\nseed: 3\nsteps:\n"
        "  segment:\n    method: threshold\n    classes: 3\n  particles:\n    phase: active\n"
        "    min_volume_um3: 2.0\n")
    table = pd.DataFrame({"label": np.arange(1, 6, dtype=np.uint32),
                          "volume_um3": np.linspace(1, 5, 5),
                          "equivalent_diameter_um": np.linspace(1, 2, 5)})
    write_table(table, folder / "table.parquet", csv=True)


def write_model_seed(path: Path) -> Path:
    """A small forest model archive (written with the current model code, so it follows
    whatever the model format is; not committed to the corpus). Trained in a separate
    process: training leaves worker threads whose allocations would be charged to cases."""
    import os
    import subprocess
    import sys

    import electrode_ct

    paths = [str(Path(electrode_ct.__file__).parents[1]), str(Path(__file__).parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    code = "import sys, _fuzz; _fuzz._train_model_seed(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True)
    return path


def _train_model_seed(path: str) -> None:
    from electrode_ct.segment.forest_train import train_forest

    grey = _phantom((6, 12, 12)).astype(np.float32)
    labels = np.zeros(grey.shape, np.uint8)
    labels[:, :3, :3], labels[:, -3:, -3:] = 1, 2
    train_forest(grey, labels, n_trees=2, max_depth=3, n_jobs=1, features="default").save(path)
