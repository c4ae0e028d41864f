"""``ect view``: a napari viewer with the plugin's widgets docked and the given files loaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

WIDGETS = (
    ("Segment by threshold", "electrode_ct.napari._threshold", "ThresholdWidget"),
    ("Forest (ilastik loop)", "electrode_ct.napari._forest", "ForestWidget"),
    ("CNN from labelled slices", "electrode_ct.napari._cnn", "CNNWidget"),
    ("Particles", "electrode_ct.napari._particles", "ParticlesWidget"),
    ("Particle table", "electrode_ct.napari._table", "TableWidget"),
    ("Cracks", "electrode_ct.napari._cracks", "CracksWidget"),
    ("Operando", "electrode_ct.napari._operando", "OperandoWidget"),
    ("Pipeline", "electrode_ct.napari._pipeline", "PipelineWidget"),
)
"""Docked widgets: (title, module, class), in tab order."""


def dock_widgets(viewer: Any) -> dict[str, Any]:
    """Dock every widget of the plugin on the right, tabbed; returns them by title."""
    import importlib

    docked: dict[str, Any] = {}
    for title, module, cls in WIDGETS:
        widget = getattr(importlib.import_module(module), cls)(viewer)
        viewer.window.add_dock_widget(widget, name=title, area="right", tabify=True)
        docked[title] = widget
    return docked


def load(viewer: Any, paths: Sequence[str | os.PathLike[str]],
         widgets: dict[str, Any]) -> list[Any]:
    """Add the volumes and label volumes as layers; a particle table goes to the table
    widget, bound to the last labels layer loaded before it."""
    from electrode_ct.io import read_table
    from electrode_ct.napari._layers import volume_layer
    from electrode_ct.napari._reader import is_table, pyramid

    layers: list[Any] = []
    for path in paths:
        if is_table(path):
            labels = [ly for ly in layers if ly._type_string == "labels"]
            if not labels:
                from electrode_ct.errors import InputError

                raise InputError(f"{path}: a particle table needs its particle labels "
                                 "loaded before it (ect view particles.tif particles.parquet)")
            widgets["Particle table"].set_table(read_table(path), labels[-1])
            continue
        data, kwargs, kind = volume_layer(pyramid(path))
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return layers


def check_paths(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Fail before a window opens: every path is a readable table or volume format."""
    from pathlib import Path

    from electrode_ct.errors import InputError
    from electrode_ct.io import find_format
    from electrode_ct.napari._reader import is_table

    for path in paths:
        if is_table(path):
            if not Path(path).is_file():
                raise InputError(f"{path}: no such table file")
            continue
        if not any(ch in str(path) for ch in "*?[") and not Path(str(path).split("::")[0]
                                                              ).exists():
            raise InputError(f"{path}: no such file or folder")
        find_format(path)


def open_viewer(paths: Sequence[str | os.PathLike[str]]) -> tuple[Any, dict[str, Any]]:
    """A new viewer with the widgets docked and ``paths`` loaded; the viewer and widgets."""
    import napari

    viewer = napari.Viewer(title="electrode-ct")
    widgets = dock_widgets(viewer)
    load(viewer, paths, widgets)
    return viewer, widgets
