"""Pieces shared by the widgets: layer pickers bound to the viewer, result layers, the view.

No science here: helpers to find layers, put arrays into layers and read what the user
looks at (the current slice, the visible region).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox

from electrode_ct.napari._layers import as_volume, label_kwargs
from electrode_ct.volume import Volume


class LayerPicker(ComboBox):
    """A drop-down of the viewer's layers of one kind (``image``, ``labels``, ...).

    Its choices follow the layer list (inserted, removed, renamed layers).
    """

    def __init__(self, viewer: Any, kind: str, *, label: str) -> None:
        self._viewer, self._kind = viewer, kind
        super().__init__(label=label, choices=self._names, nullable=True)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(lambda *_: self.reset_choices())

    def _names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self._viewer.layers if layer._type_string == self._kind]

    def reset_choices(self, *_: Any) -> None:
        """Refresh the choices, keeping the selection while its layer exists."""
        current = self.value
        super().reset_choices()
        names = self._names()
        if current in names:
            self.value = current
        elif names and self.value is None:
            self.value = names[-1]

    @property
    def layer(self) -> Any:
        """The chosen layer, or None."""
        name = self.value
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def volume(self, what: str) -> Volume:
        """The chosen layer as a Volume; ``InputError`` naming ``what`` when none is chosen."""
        from electrode_ct.errors import InputError

        layer = self.layer
        if layer is None:
            raise InputError(f"{what}: choose a {self._kind} layer first")
        return as_volume(layer)


RECIPE = "ect_recipe"
"""Layer metadata key of the step that made a result layer (see :mod:`._pipeline`)."""


def show_layer(viewer: Any, name: str, data: Any, *, like: Volume, kind: str = "labels",
               class_map: dict[str, int] | None = None, recipe: dict[str, Any] | None = None,
               **kwargs: Any) -> Any:
    """Put ``data`` in the layer ``name`` (replaced) with the geometry of ``like``.

    ``recipe`` (the pipeline step and options that made it) is kept in the layer's
    metadata, so the viewer's work can be exported as a pipeline configuration.
    """
    if name in viewer.layers:
        viewer.layers.remove(name)
    opts = {"name": name, "scale": like.spacing, "translate": like.origin, **kwargs}
    meta: dict[str, Any] = {RECIPE: recipe} if recipe else {}
    if kind == "labels":
        opts.update(label_kwargs(class_map))
        if class_map:
            meta["electrode_ct"] = {"class_map": dict(class_map)}
        return viewer.add_labels(_array(data), metadata=meta, **opts)
    return viewer.add_image(_array(data), metadata=meta, **opts)


def _array(data: Any) -> Any:
    """A dask array as it is (a lazy layer), anything else as a numpy array."""
    return data if hasattr(data, "dask") else np.asarray(data)


def show_property(viewer: Any, name: str, labels: np.ndarray, table: Any, column: str, *,
                  like: Volume, colormap: str = "viridis") -> Any:
    """A per-particle column painted into the particles (the GRAPES view), as an image layer.

    Uses :func:`electrode_ct.report.great2_plots.paint_property`; particles missing from
    ``table`` and the background are NaN (blank); the contrast spans the painted values.
    """
    from electrode_ct.report.great2_plots import paint_property

    img = paint_property(labels, table, column)
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return show_layer(viewer, name, img, like=like, kind="image", colormap=colormap,
                      contrast_limits=(lo, hi if hi > lo else lo + 1.0))


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def current_z(viewer: Any, vol: Volume) -> int:
    """Index of the z slice the viewer shows (axis 0 of the volume), clipped to the volume."""
    world = float(viewer.dims.point[-3]) if viewer.dims.ndim >= 3 else 0.0
    z = int(round((world - vol.origin[0]) / vol.spacing[0]))
    return int(np.clip(z, 0, vol.shape[0] - 1))


def visible_region(viewer: Any, layer: Any, vol: Volume, *,
                   max_side: int = 512) -> tuple[slice, ...]:
    """The part of the current slice on the canvas: (z slice, y and x ranges), in voxels.

    The layer's ``corner_pixels`` (the field of view in its data coordinates) give the y/x
    extent, clipped to the volume and to at most ``max_side`` voxels per side around its
    centre.
    """
    z = current_z(viewer, vol)
    corners = np.asarray(layer.corner_pixels, float)[:, -2:]
    out: list[slice] = [slice(z, z + 1)]
    for axis in (1, 2):
        lo, hi = corners[0, axis - 1], corners[1, axis - 1] + 1
        if hi - lo > max_side:
            mid = (lo + hi) / 2
            lo, hi = mid - max_side / 2, mid + max_side / 2
        lo = int(np.clip(np.floor(lo), 0, vol.shape[axis] - 1))
        hi = int(np.clip(np.ceil(hi), lo + 1, vol.shape[axis]))
        out.append(slice(lo, hi))
    return tuple(out)
