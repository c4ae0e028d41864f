"""COCO instance-segmentation export and import (for Mask R-CNN / Detectron-style training).

Export writes, along one axis, every slice of a grey volume as an 8-bit PNG and the
particle sections of the matching label slice as polygons (``find_contours`` at level
0.5), split by slice into ``train`` and ``val``::

    OUT_DIR/train/images/slice_00012.png ...   OUT_DIR/train/annotations.json
    OUT_DIR/val/images/...                     OUT_DIR/val/annotations.json

Annotations follow the COCO format (``images``, ``annotations`` with ``segmentation``
polygons, ``bbox`` [x, y, width, height], ``area``, ``iscrowd``, ``categories``) and
carry the 3-D ``particle_id`` as an extra key. Polygons cannot hold holes: a hole
inside a section is filled on import.

A binary mask (one non-zero value, e.g. 0/1 or 0/255, the form particle masks are often
published in) holds no particle ids: its sections are the connected components of each
slice (4-connected in the plane), one annotation each, without ``particle_id``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError, InputError, ShapeError
from electrode_ct.io._atomic import atomic_path
from electrode_ct.io.tables import write_json
from electrode_ct.labels import check_labels

CATEGORY = {"id": 1, "name": "particle", "supercategory": "particle"}


def slice_polygons(labels2d: np.ndarray, *, min_area: int = 1) -> list[dict[str, Any]]:
    """Polygons of every particle section in a 2-D label image.

    Parameters
    ----------
    labels2d : numpy.ndarray
        2-D integer labels (rows = y, columns = x).
    min_area : int
        Sections with fewer pixels are skipped.

    Returns
    -------
    list of dict
        One per particle id: ``particle_id``, ``segmentation`` (list of flat
        ``[x0, y0, x1, y1, ...]`` polygons, pixel centres at integer coordinates),
        ``bbox`` [x, y, w, h] (pixels), ``area`` (pixel count).
    """
    from scipy import ndimage as ndi
    from skimage.measure import find_contours

    out = []
    lab = np.asarray(labels2d)
    areas = np.bincount(lab.ravel().astype(np.int64))
    for pid, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or areas[pid] < min_area:
            continue
        crop = np.pad(lab[sl] == pid, 1).astype(np.float32)
        polys = []
        for c in find_contours(crop, 0.5):
            if len(c) < 3:
                continue
            yx = c - 1 + np.array([sl[0].start, sl[1].start])
            polys.append(np.round(yx[:, ::-1], 2).ravel().tolist())
        if not polys:
            continue
        y0, x0 = sl[0].start, sl[1].start
        out.append({
            "particle_id": int(pid),
            "segmentation": polys,
            "bbox": [float(x0), float(y0), float(sl[1].stop - x0), float(sl[0].stop - y0)],
            "area": float(areas[pid]),
        })
    return out


def is_mask(labels: np.ndarray) -> bool:
    """True when a label volume holds a single non-zero value (a binary mask, no ids)."""
    top = labels.max()
    return bool(top > 0) and not bool(np.any((labels != 0) & (labels != top)))


def _sections(plane: np.ndarray, *, mask: bool, min_area: int) -> list[dict[str, Any]]:
    """Polygons of one slice: per particle id, or per connected component of a mask."""
    if not mask:
        return slice_polygons(plane, min_area=min_area)
    from scipy import ndimage as ndi

    comps, _ = ndi.label(plane != 0)
    polys = slice_polygons(comps, min_area=min_area)
    for p in polys:
        del p["particle_id"]  # a component of one slice is no 3-D particle
    return polys


def _to_uint8(grey: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = np.percentile(grey, (0.5, 99.5)) if grey.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    scaled = np.clip((grey.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255
    return np.round(scaled).astype(np.uint8), float(lo), float(hi)


def export_coco(
    grey: Any,
    labels: Any,
    out_dir: str | os.PathLike[str],
    *,
    axis: int = 0,
    val: float = 0.2,
    seed: int = 0,
    min_area: int = 1,
    skip_empty: bool = True,
    binary: bool | None = None,
) -> dict[str, Any]:
    """Write grey slices and particle polygons as COCO train/val datasets.

    Parameters
    ----------
    grey : numpy.ndarray or Volume
        Grey volume (z, y, x).
    labels : numpy.ndarray or Volume
        Particle labels of the same shape (integers, 0 = background).
    out_dir : path-like
        Output folder (created).
    axis : int
        Slicing axis: 0 = z (XY slices), 1 = y, 2 = x.
    val : float
        Fraction of the slices put in the validation set (seeded random choice).
    seed : int
        Random seed of the split.
    min_area : int
        Skip sections with fewer pixels.
    skip_empty : bool
        Leave out slices without any particle.
    binary : bool, optional
        ``labels`` is a binary mask: annotate the connected components of each slice.
        Default: when it holds a single non-zero value (:func:`is_mask`).

    Returns
    -------
    dict
        ``n_train_images``, ``n_val_images``, ``n_train_annotations``,
        ``n_val_annotations``, ``grey_range`` (the values mapped to 0 and 255),
        ``binary_mask`` (components per slice were annotated), ``paths``.

    Raises
    ------
    ShapeError
        When the grey and label volumes differ in shape.
    InputError
        When ``val`` is not in [0, 1], ``axis`` not 0..2, labels not integer.
    """
    from PIL import Image

    g = np.asarray(getattr(grey, "data", grey))
    lab = check_labels(labels, name="labels", ndim=(3,))
    if g.shape != lab.shape:
        raise ShapeError(f"grey: shape {g.shape} differs from labels {lab.shape}")
    if not 0.0 <= val <= 1.0:
        raise InputError(f"val: expected a fraction in [0, 1], got {val}")
    if axis not in (0, 1, 2):
        raise InputError(f"axis: expected 0 (z), 1 (y) or 2 (x), got {axis}")
    mask = is_mask(lab) if binary is None else bool(binary)
    g8, lo, hi = _to_uint8(g)
    g8, lab2 = np.moveaxis(g8, axis, 0), np.moveaxis(lab, axis, 0)
    n = g8.shape[0]
    rng = np.random.default_rng(seed)
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[: int(round(val * n))]] = True
    out = Path(out_dir)
    sets: dict[str, dict[str, Any]] = {
        name: {"info": {"description": f"electrode-ct particles, axis {axis}, {name}"},
               "licenses": [], "images": [], "annotations": [], "categories": [dict(CATEGORY)]}
        for name in ("train", "val")
    }
    for k in range(n):
        polys = _sections(lab2[k], mask=mask, min_area=min_area)
        if skip_empty and not polys:
            continue
        name = "val" if is_val[k] else "train"
        ds = sets[name]
        image_id = len(ds["images"]) + 1
        file_name = f"images/slice_{k:05d}.png"
        target = out / name / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Image.fromarray(g8[k]).save(tmp, format="PNG")
        ds["images"].append({"id": image_id, "file_name": file_name, "height": int(g8.shape[1]),
                             "width": int(g8.shape[2]), "slice_index": k, "axis": axis})
        for p in polys:
            ds["annotations"].append({"id": len(ds["annotations"]) + 1, "image_id": image_id,
                                      "category_id": 1, "iscrowd": 0, **p})
    paths = {}
    for name, ds in sets.items():
        if ds["images"] or name == "train":
            paths[name] = str(write_json(ds, out / name / "annotations.json"))
    return {
        "n_train_images": len(sets["train"]["images"]),
        "n_val_images": len(sets["val"]["images"]),
        "n_train_annotations": len(sets["train"]["annotations"]),
        "n_val_annotations": len(sets["val"]["annotations"]),
        "grey_range": [lo, hi],
        "binary_mask": mask,
        "paths": paths,
    }


def import_coco(annotations: str | os.PathLike[str] | dict[str, Any]) -> dict[str, np.ndarray]:
    """Rasterise COCO polygon annotations back into 2-D label images.

    Parameters
    ----------
    annotations : path-like or dict
        A COCO JSON file (or its loaded dict).

    Returns
    -------
    dict
        ``file_name`` -> uint32 label image (height, width); the id of each section is
        its ``particle_id`` when present, else the annotation id.

    Raises
    ------
    FormatError
        When the file is not a COCO instance file.
    """
    if isinstance(annotations, dict):
        data = annotations
    else:
        try:
            data = json.loads(Path(annotations).read_text())
        except (OSError, ValueError) as exc:
            raise FormatError(f"{annotations}: cannot read COCO JSON ({exc})") from exc
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise FormatError(f"{annotations}: not a COCO file (needs 'images' and 'annotations')")
    try:
        return _rasterise(data, str(annotations))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise FormatError(f"{annotations}: malformed COCO entry ({type(exc).__name__}: "
                          f"{exc})") from exc


def _rasterise(data: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """Label images of a parsed COCO dict (see :func:`import_coco`)."""
    from skimage.draw import polygon

    from electrode_ct.io._meta import check_allocation

    images = {}
    by_id = {}
    for im in data["images"]:
        shape = (int(im["height"]), int(im["width"]))
        if min(shape) < 1:
            raise FormatError(f"{where}: image {im.get('file_name')!r} has size {shape}")
        check_allocation(shape, np.uint32, stored_bytes=None, where=where)
        arr = np.zeros(shape, dtype=np.uint32)
        images[im["file_name"]] = arr
        by_id[im["id"]] = arr
    for ann in data["annotations"]:
        target = by_id.get(ann["image_id"])
        seg = ann.get("segmentation")
        if target is None or not isinstance(seg, list):
            continue  # RLE (crowd) annotations are not polygons
        value = int(ann.get("particle_id", ann["id"]))
        for poly in seg:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            rr, cc = polygon(xy[:, 1], xy[:, 0], shape=target.shape)
            target[rr, cc] = value
    return images
