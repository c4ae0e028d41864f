"""Volumes ↔ napari layers: spacing is the layer scale, a class map gives colours and names.

A :class:`~electrode_ct.volume.Volume` becomes a napari ``LayerDataTuple``
``(data, kwargs, layer_type)``: ``scale`` = spacing (µm), ``translate`` = origin (µm),
``metadata["electrode_ct"]`` = the volume's metadata. A label volume (a class map, or an
integer dtype wider than 16 bits: particle ids) becomes a labels layer whose ``features``
hold ``index`` (label value) and ``class`` (name), so napari's status bar names the class
under the cursor, and whose colours follow the class names. The way back,
:func:`layer_volume`, rebuilds the Volume the library takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.volume import Volume

LayerData = tuple[Any, dict[str, Any], str]
"""napari's ``(data, kwargs, layer_type)``."""

CLASS_COLOURS: dict[str, tuple[float, float, float, float]] = {
    "pore": (0.25, 0.45, 0.95, 1.0),
    "cbd": (0.25, 0.80, 0.35, 1.0),
    "active": (0.95, 0.55, 0.15, 1.0),
    "collector": (0.70, 0.70, 0.70, 1.0),
    "exterior": (0.0, 0.0, 0.0, 0.0),
}
"""Colours of the class names electrode-ct writes (the exterior of the three-phase particle
view is transparent); other classes take the tab10 colours."""

_TAB10 = ((0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
          (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50),
          (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))


def is_label_volume(vol: Volume) -> bool:
    """True for a class-mapped volume or integer ids wider than 16 bits (particle labels)."""
    if vol.class_map:
        return True
    dt = vol.dtype
    return bool(np.issubdtype(dt, np.integer) and dt.itemsize >= 4)


def class_colours(class_map: Mapping[str, int]) -> dict[int | None, tuple[float, ...]]:
    """Label colours by class name (value → RGBA); unnamed values are transparent."""
    colours: dict[int | None, tuple[float, ...]] = {None: (0.0, 0.0, 0.0, 0.0)}
    for i, (name, value) in enumerate(sorted(class_map.items(), key=lambda kv: kv[1])):
        colours[int(value)] = CLASS_COLOURS.get(name.lower(), (*_TAB10[i % 10], 1.0))
    return colours


def class_features(class_map: Mapping[str, int]) -> dict[str, list[Any]]:
    """Labels-layer features naming each class: columns ``index`` (value) and ``class``."""
    items = sorted(class_map.items(), key=lambda kv: kv[1])
    return {"index": [int(v) for _, v in items], "class": [k for k, _ in items]}


def label_kwargs(class_map: Mapping[str, int] | None) -> dict[str, Any]:
    """Keyword arguments of ``add_labels`` for a class map (colours and class names)."""
    if not class_map:
        return {}
    from napari.utils.colormaps import DirectLabelColormap

    return {"colormap": DirectLabelColormap(color_dict=class_colours(class_map)),
            "features": class_features(class_map)}


def volume_layer(vol: Volume | Sequence[Volume], *, name: str | None = None,
                 labels: bool | None = None) -> LayerData:
    """The napari layer data of a volume (or of the levels of a multiscale pyramid).

    Parameters
    ----------
    vol : Volume or sequence of Volume
        One volume, or the resolution levels of one image (level 0 first); several levels
        give a multiscale layer whose scale is level 0's spacing.
    name : str, optional
        Layer name (default: the file stem of the source).
    labels : bool, optional
        Force a labels (True) or image (False) layer; default :func:`is_label_volume`.

    Returns
    -------
    tuple
        ``(data, kwargs, "image" | "labels")``.
    """
    levels = [vol] if isinstance(vol, Volume) else list(vol)
    first = levels[0]
    data: Any = [v.data for v in levels] if len(levels) > 1 else first.data
    kwargs: dict[str, Any] = {
        "name": name or source_name(first.source),
        "scale": tuple(first.spacing), "translate": tuple(first.origin),
        "metadata": {"electrode_ct": dict(first.metadata)},
        "multiscale": len(levels) > 1,
    }
    kind = "labels" if (is_label_volume(first) if labels is None else labels) else "image"
    if kind == "labels":
        kwargs.update(label_kwargs(first.class_map))
    elif not first.is_lazy:
        lo, hi = float(np.min(first.data)), float(np.max(first.data))
        kwargs["contrast_limits"] = (lo, hi if hi > lo else lo + 1.0)
    return data, kwargs, kind


def source_name(source: str) -> str:
    """A short layer name from a path: the file name without its (double) extension."""
    from pathlib import Path

    text = source.split("::", 1)[0].rstrip("/\\")
    stem = Path(text).name or text
    for ext in (".ome.zarr", ".ome.tiff", ".ome.tif"):
        if stem.lower().endswith(ext):
            return stem[: -len(ext)]
    return stem.rsplit(".", 1)[0] if "." in stem else stem


def layer_volume(data: Any, meta: Mapping[str, Any]) -> Volume:
    """The Volume of a layer's data and attributes (``scale``, ``translate``, metadata).

    Parameters
    ----------
    data : array-like or list of arrays
        Layer data; of a multiscale layer, level 0 is taken.
    meta : mapping
        Layer attributes (napari's writer ``meta``, or :func:`layer_meta` of a layer):
        ``scale`` and ``translate`` (µm), ``metadata["electrode_ct"]``, ``features``.

    Returns
    -------
    Volume
        Spacing and origin from the layer's last three axes; the class map from the
        stored metadata or from the ``index``/``class`` features.
    """
    if isinstance(data, (list, tuple)):
        data = data[0]
    own = dict((meta.get("metadata") or {}).get("electrode_ct") or {})
    scale = tuple(meta.get("scale") or (1.0, 1.0, 1.0))[-3:]
    origin = tuple(meta.get("translate") or (0.0, 0.0, 0.0))[-3:]
    if np.ndim(data) == 2:
        scale, origin = (1.0, *scale[-2:]), (0.0, *origin[-2:])
    cm = own.pop("class_map", None) or _features_class_map(meta.get("features"))
    own.pop("ndim", None)
    vol = Volume(data, spacing=scale, origin=origin, metadata=own)
    return vol.with_class_map(cm) if cm else vol


def _features_class_map(features: Any) -> dict[str, int] | None:
    if features is None or "index" not in features or "class" not in features:
        return None
    return {str(k): int(v) for v, k in zip(features["index"], features["class"], strict=True)}


def layer_meta(layer: Any) -> dict[str, Any]:
    """The attributes :func:`layer_volume` reads, taken from a live napari layer."""
    return {"scale": tuple(layer.scale), "translate": tuple(layer.translate),
            "metadata": dict(layer.metadata),
            "features": getattr(layer, "features", None)}


def as_volume(layer: Any) -> Volume:
    """The Volume behind a live napari image or labels layer (level 0 of a pyramid)."""
    return layer_volume(layer.data, layer_meta(layer))
