"""npe2 writers: an image or labels layer written by :func:`electrode_ct.io.write`.

The layer scale is written as the voxel size (µm), the translation as the origin and a
labels layer's class names (its ``index``/``class`` features) as the class map, so the
CLI reads back what the viewer showed. Writing is atomic (temporary name, then rename).
"""

from __future__ import annotations

from typing import Any

from electrode_ct.napari._layers import layer_volume


def _write(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    from electrode_ct.io import write

    return [str(write(layer_volume(data, meta), path))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 image writer: returns the written path."""
    return _write(path, data, meta)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 labels writer (class map kept): returns the written path."""
    return _write(path, data, meta)
