"""A minimal OLE2 / Compound File Binary (CFB, version 3) writer for tests.

olefile can only read compound files, and no package in the environment writes them,
so the Zeiss TXM tests build their fixtures with this ~100-line writer (written from the
[MS-CFB] specification: 512-byte sectors, FAT, mini stream of 64-byte sectors for streams
under 4096 bytes, MiniFAT, 128-byte directory entries). It is validated in
``tests/test_io_txm.py`` by reading its output back with olefile (an independent
implementation): storages, stream names, sizes and bytes, for both mini-stream and
regular-sector streams.
"""

from __future__ import annotations

import struct
from pathlib import Path

SECTOR = 512
MINI = 64
CUTOFF = 4096
END, FREE, FATSECT, NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def _entry(name: str, kind: int, left: int, right: int, child: int, start: int, size: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0" if name else b""
    return (raw.ljust(64, b"\0") + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", left, right, child) + b"\0" * 36
            + struct.pack("<IQ", start, size))


def write_ole(path: str | Path, streams: dict[str, bytes]) -> None:
    """Write a compound file holding ``streams`` ({"Storage/Stream": bytes})."""
    # directory tree: id 0 = root; storages created from the path components
    nodes: list[dict] = [{"name": "Root Entry", "kind": 5, "kids": [], "data": None}]
    index: dict[tuple[str, ...], int] = {(): 0}
    for full, data in streams.items():
        parts = tuple(full.split("/"))
        for depth in range(1, len(parts) + 1):
            key = parts[:depth]
            if key not in index:
                is_stream = depth == len(parts)
                index[key] = len(nodes)
                nodes.append({"name": parts[depth - 1], "kind": 2 if is_stream else 1,
                              "kids": [], "data": bytes(data) if is_stream else None})
                nodes[index[key[:-1]]]["kids"].append(index[key])
    # sector allocation: big streams, mini stream container, MiniFAT, directory, FAT
    sectors: list[bytes] = []
    fat: list[int] = []

    def put(blob: bytes, marker: int | None = None) -> int:
        n = max(1, -(-len(blob) // SECTOR))
        first = len(sectors)
        for i in range(n):
            sectors.append(blob[i * SECTOR:(i + 1) * SECTOR].ljust(SECTOR, b"\0"))
            fat.append(marker if marker is not None else (first + i + 1 if i < n - 1 else END))
        return first

    mini = bytearray()
    minifat: list[int] = []
    for node in nodes:
        data = node["data"]
        if data is None:
            continue
        if len(data) >= CUTOFF:
            node["start"] = put(data)
        elif data:
            first = len(mini) // MINI
            n = -(-len(data) // MINI)
            mini += data.ljust(n * MINI, b"\0")
            minifat += [first + i + 1 if i < n - 1 else END for i in range(n)]
            node["start"] = first
        else:
            node["start"] = END
    root_start = put(bytes(mini)) if mini else END
    minifat_start = put(b"".join(struct.pack("<I", v) for v in minifat)) if minifat else END
    n_minifat = -(-len(minifat) * 4 // SECTOR) if minifat else 0
    # siblings as a right-leaning chain in CFB order (name length, then upper-case name)
    for node in nodes:
        kids = sorted(node["kids"], key=lambda k: (len(nodes[k]["name"]),
                                                   nodes[k]["name"].upper()))
        node["child"] = kids[0] if kids else NOSTREAM
        for a, b in zip(kids, [*kids[1:], NOSTREAM], strict=False):
            nodes[a]["right"] = b
    blobs = []
    for i, node in enumerate(nodes):
        if i == 0:
            start, size = root_start, len(mini)
        elif node["kind"] == 2:
            start, size = node["start"], len(node["data"])
        else:
            start, size = 0, 0
        blobs.append(_entry(node["name"], node["kind"], NOSTREAM, node.get("right", NOSTREAM),
                            node["child"], start, size))
    while len(blobs) % (SECTOR // 128):
        blobs.append(_entry("", 0, NOSTREAM, NOSTREAM, NOSTREAM, 0, 0))
    dir_start = put(b"".join(blobs))
    n_fat = 1
    while n_fat * (SECTOR // 4) < len(sectors) + n_fat:
        n_fat += 1
    if n_fat > 109:
        raise ValueError("test OLE writer: file too large (no DIFAT support)")
    fat_ids = [len(sectors) + i for i in range(n_fat)]
    fat += [FATSECT] * n_fat
    fat += [FREE] * (n_fat * (SECTOR // 4) - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<IIIIIIIII", 0, n_fat, dir_start, 0, CUTOFF,
                            minifat_start, n_minifat, END, 0)
              + b"".join(struct.pack("<I", v) for v in fat_ids + [FREE] * (109 - n_fat)))
    assert len(header) == SECTOR
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(b"".join(sectors))
        fh.write(fat_bytes)
