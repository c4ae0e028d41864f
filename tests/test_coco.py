"""COCO export/import round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from electrode_ct.errors import FormatError, InputError, ShapeError
from electrode_ct.particles.coco import export_coco, import_coco, slice_polygons


def test_round_trip(tmp_path):
    z, y, x = np.ogrid[:10, :40, :40]
    labels = np.zeros((10, 40, 40), np.uint32)
    labels[:, ((y - 12) ** 2 + (x - 12) ** 2 <= 64)[0]] = 3
    labels[:, ((y - 26) ** 2 + (x - 28) ** 2 <= 81)[0]] = 8
    labels[:, 30:34, 2:6] = 5  # a square
    labels[0] = 0  # an empty slice
    grey = np.random.default_rng(0).normal(100, 10, labels.shape) + 50.0 * (labels > 0)
    res = export_coco(grey, labels, tmp_path, val=0.25, seed=1)
    assert res["n_train_images"] + res["n_val_images"] == 9
    assert res["n_val_images"] in (2, 3) and res["n_train_annotations"] > 0
    data = json.loads((tmp_path / "train" / "annotations.json").read_text())
    assert {"images", "annotations", "categories"} <= data.keys()
    ann = data["annotations"][0]
    assert {"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd"} <= set(ann)
    assert (tmp_path / "train" / data["images"][0]["file_name"]).exists()
    back = import_coco(tmp_path / "train" / "annotations.json")
    for im in data["images"]:
        assert np.array_equal(back[im["file_name"]], labels[im["slice_index"]])
    sq = next(a for a in data["annotations"] if a["particle_id"] == 5)
    assert sq["bbox"] == [2.0, 30.0, 4.0, 4.0] and sq["area"] == 16.0


def test_cracked_section_has_two_polygons():
    lab = np.zeros((20, 20), np.uint32)
    lab[4:16, 3:9] = 1
    lab[4:16, 10:16] = 1  # the same particle on both sides of a crack
    polys = slice_polygons(lab)
    assert len(polys) == 1 and len(polys[0]["segmentation"]) == 2
    assert polys[0]["area"] == 144


def test_bad_input(tmp_path):
    with pytest.raises(ShapeError):
        export_coco(np.zeros((3, 4, 4)), np.zeros((3, 4, 5), np.uint8), tmp_path)
    with pytest.raises(InputError, match="integer"):
        export_coco(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), tmp_path)
    with pytest.raises(InputError, match="val"):
        export_coco(np.zeros((3, 4, 4)), np.zeros((3, 4, 4), np.uint8), tmp_path, val=2)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(FormatError):
        import_coco(tmp_path / "x.json")


def test_binary_mask_is_annotated_per_component(tmp_path, run_cli):
    from scipy import ndimage as ndi

    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    _, y, x = np.ogrid[:6, :40, :40]
    ids = np.zeros((6, 40, 40), np.uint32)
    ids[:, ((y - 10) ** 2 + (x - 10) ** 2 <= 36)[0]] = 1
    ids[:, ((y - 28) ** 2 + (x - 26) ** 2 <= 49)[0]] = 2
    ids[3:, 30:36, 2:8] = 3
    mask = np.where(ids > 0, 255, 0).astype(np.uint8)  # published form: 0/255, no ids
    grey = np.random.default_rng(0).normal(100, 5, ids.shape) + 60.0 * (ids > 0)
    res = export_coco(grey, mask, tmp_path / "m", val=0.0)
    assert res["binary_mask"] and res["n_train_images"] == 6
    assert res["n_train_annotations"] == 3 * 2 + 3 * 3  # one per section, not per slice
    data = json.loads((tmp_path / "m" / "train" / "annotations.json").read_text())
    assert all("particle_id" not in a for a in data["annotations"])
    back = import_coco(data)
    for im in data["images"]:
        comps, n = ndi.label(mask[im["slice_index"]] > 0)
        got = back[im["file_name"]]
        assert np.array_equal(got > 0, comps > 0) and len(np.unique(got)) - 1 == n
    forced = export_coco(grey, mask, tmp_path / "ids", val=0.0, binary=False)
    assert not forced["binary_mask"] and forced["n_train_annotations"] == 6
    assert not export_coco(grey, ids, tmp_path / "i", val=0.0)["binary_mask"]
    write(Volume(grey.astype(np.float32)), tmp_path / "g.tif")
    write(Volume(mask), tmp_path / "mask.tif")
    code, out, err = run_cli("coco", tmp_path / "g.tif", tmp_path / "mask.tif", tmp_path / "c",
                             "--val", "0", "--json")
    assert code == 0 and json.loads(out)["n_train_annotations"] == 15
    assert "binary mask" in err and "connected components" in err
    code, out, _ = run_cli("coco", tmp_path / "g.tif", tmp_path / "mask.tif", tmp_path / "d",
                           "--val", "0", "--ids", "--json")
    assert code == 0 and json.loads(out)["n_train_annotations"] == 6
