"""Model files (#27): no pickle is ever loaded, tree arrays predict bit-identically, old
files are refused with the way to convert them, headers state what a model is, malicious
payloads in every model kind execute nothing."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from electrode_ct.cracks import features_model as fm
from electrode_ct.cracks.descriptors import FEATURE_COLUMNS
from electrode_ct.cracks.models import DEFAULT_MODEL
from electrode_ct.errors import ModelError
from electrode_ct.segment import forest_train as fo
from electrode_ct.segment.convert import convert_model
from electrode_ct.segment.models import MODEL_FORMAT_VERSION, load_model, read_header
from electrode_ct.segment.tree_arrays import forest_from_arrays, forest_to_arrays


class Payload:
    """Unpickling this object writes a marker file (what a malicious model would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _payload(marker: Path) -> bytes:
    """A pickle that runs code; checked to really run it (so the tests below can fail)."""
    data = pickle.dumps(Payload(marker))
    probe = marker.with_suffix(".probe")
    pickle.loads(pickle.dumps(Payload(probe)))  # noqa: S301 -- the payload's own check
    assert probe.exists()
    probe.unlink()
    return data


def _evil_npz(marker: Path) -> bytes:
    """An .npz whose array is an object array holding the payload."""
    buf = io.BytesIO()
    arr = np.empty(1, object)
    arr[0] = Payload(marker)
    np.savez(buf, classes=arr)
    return buf.getvalue()


def _replace(path: Path, out: Path, members: dict[str, bytes], drop: tuple[str, ...] = (),
             head: dict | None = None) -> Path:
    """Copy a model archive with members replaced/added/dropped and the header edited."""
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if n not in drop}
    if head is not None:
        files["model.json"] = json.dumps({**json.loads(files["model.json"]), **head}).encode()
    files.update(members)
    with zipfile.ZipFile(out, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return out


@pytest.fixture(scope="module")
def forest_model():
    rng = np.random.default_rng(0)
    truth = np.zeros((16, 24, 24), np.uint8)
    truth[:, :12] = 1
    truth[4:12, 14:22, 4:20] = 2
    grey = (np.array([60.0, 140.0, 210.0])[truth] + rng.normal(0, 10, truth.shape))
    scr = np.zeros_like(truth)
    scr[::5] = truth[::5] + 1
    model = fo.train_forest(grey.astype(np.float32), scr, features="minimal", n_trees=8,
                            n_jobs=1, class_names=["pore", "cbd", "active"])
    return model, grey.astype(np.float32)


@pytest.fixture(scope="module")
def descriptors():
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(80, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    y = (x.iloc[:, 0] + 0.5 * rng.normal(size=80) > 0).to_numpy().astype(int)
    return x, y


def test_forest_tree_arrays_bit_identical(forest_model, tmp_path):
    model, grey = forest_model
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, model.stage1.n_features_in_)) * 2
    arrays, params = forest_to_arrays(model.stage1)
    assert all(a.dtype != object for a in arrays.values())
    back = forest_from_arrays(arrays, json.loads(json.dumps(params)), source="mem")
    np.testing.assert_array_equal(back.predict_proba(x), model.stage1.predict_proba(x))
    np.testing.assert_array_equal(back.feature_importances_, model.stage1.feature_importances_)
    loaded = load_model(model.save(tmp_path / "f.ectmodel"))
    a = model.predict(grey, probabilities=True, n_jobs=1)
    b = loaded.predict(grey, probabilities=True, n_jobs=1)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.labels, b.labels)
    with zipfile.ZipFile(tmp_path / "f.ectmodel") as zf:
        assert sorted(zf.namelist()) == ["forest.npz", "model.json"]


def test_damaged_tree_arrays_refused_before_sklearn(forest_model):
    model, _ = forest_model
    arrays, params = forest_to_arrays(model.stage1)
    for name, edit in [("children_left", lambda a: a.__setitem__(0, 10**6)),
                       ("children_right", lambda a: a.__setitem__(0, 0)),  # a loop
                       ("feature", lambda a: a.__setitem__(0, 999))]:
        bad = {k: v.copy() for k, v in arrays.items()}
        edit(bad[name])
        with pytest.raises(ModelError, match="out of range"):
            forest_from_arrays(bad, params, source="bad.ectmodel")
    short = dict(arrays, value=arrays["value"][:, :, :2])
    with pytest.raises(ModelError, match="do not match"):
        forest_from_arrays(short, params, source="bad.ectmodel")


@pytest.mark.parametrize("estimator", ["logistic", "boosting"])
def test_features_estimators_bit_identical(descriptors, estimator, tmp_path):
    x, y = descriptors
    model = fm.train_features(x, y, estimator=estimator, seed=0)
    back = load_model(model.save(tmp_path / "c.ectmodel"))
    probe = pd.DataFrame(np.random.default_rng(9).normal(size=(500, x.shape[1])) * 3,
                         columns=x.columns)
    np.testing.assert_array_equal(back.score(probe), model.score(probe))
    with zipfile.ZipFile(tmp_path / "c.ectmodel") as zf:
        assert sorted(zf.namelist()) == ["estimator.npz", "model.json"]
        arrays = dict(np.load(io.BytesIO(zf.read("estimator.npz")), allow_pickle=False))
    key = "fold0_left" if estimator == "boosting" else "coef"
    arrays[key] = arrays[key][..., :-1] if estimator == "logistic" else arrays[key] * 0 + 10**6
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    bad = _replace(tmp_path / "c.ectmodel", tmp_path / "bad.ectmodel",
                   {"estimator.npz": buf.getvalue()})
    with pytest.raises(ModelError, match="inconsistent|out of range"):
        load_model(bad)


def test_old_format_refused_and_converted_with_trust(forest_model, descriptors, tmp_path,
                                                    run_cli):
    model, grey = forest_model
    new = model.save(tmp_path / "new.ectmodel")
    old = _replace(new, tmp_path / "old.ectmodel",
                   {"stage1.pkl": pickle.dumps(model.stage1)}, drop=("forest.npz",),
                   head={"format_version": 1, "forest_format": 1})
    with pytest.raises(ModelError, match=r"old-format.*ect model convert OLD NEW --trust"):
        load_model(old)
    code, out, err = run_cli("model", "convert", old, tmp_path / "conv.ectmodel")
    assert code == 2 and err.count("\n") == 1 and "--trust" in err and "Traceback" not in err
    assert not (tmp_path / "conv.ectmodel").exists()
    code, out, err = run_cli("model", "convert", old, tmp_path / "conv.ectmodel", "--trust",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["from_format"] == 1 and json.loads(out)["to_format"] == 2
    conv = load_model(tmp_path / "conv.ectmodel")
    np.testing.assert_array_equal(conv.predict(grey, probabilities=True, n_jobs=1).probabilities,
                                  model.predict(grey, probabilities=True, n_jobs=1).probabilities)
    two_stage = _replace(old, tmp_path / "two.ectmodel", {"stage2.pkl": b"x"})
    with pytest.raises(ModelError, match="auto-context was removed"):
        convert_model(two_stage, tmp_path / "two_new.ectmodel", trust=True)
    x, y = descriptors
    feats = fm.train_features(x, y)
    fnew = feats.save(tmp_path / "fnew.ectmodel")
    fold = _replace(fnew, tmp_path / "fold.ectmodel",
                    {"estimator.pkl": pickle.dumps(feats.estimator)}, drop=("estimator.npz",),
                    head={"format_version": 1})
    with pytest.raises(ModelError, match="old-format"):
        load_model(fold)
    convert_model(fold, tmp_path / "fconv.ectmodel", trust=True)
    np.testing.assert_array_equal(load_model(tmp_path / "fconv.ectmodel").score(x), feats.score(x))


def test_shipped_default_model_is_pickle_free():
    head = read_header(DEFAULT_MODEL)
    assert head["format_version"] == MODEL_FORMAT_VERSION and head["kind"] == "cracks-features"
    with zipfile.ZipFile(DEFAULT_MODEL) as zf:
        assert sorted(zf.namelist()) == ["estimator.npz", "model.json"]
    assert head["training_spacing_um"] == [0.5, 0.5, 0.5]
    assert len(head["training_data"]["descriptors_sha256"]) == 64


def test_headers_state_kind_version_data_classes_spacing(forest_model, descriptors, tmp_path):
    model, _ = forest_model
    x, y = descriptors
    paths = [model.save(tmp_path / "f.ectmodel"),
             fm.train_features(x, y).save(tmp_path / "c.ectmodel")]
    for p in paths:
        head = read_header(p)
        for key in ("kind", "format_version", "package_version", "class_values",
                    "class_names", "training_data", "training_spacing_um"):
            assert key in head, (p, key)
    assert read_header(paths[0])["training_spacing_um"] == [1.0, 1.0, 1.0]
    digests = read_header(paths[0])["training_data"]
    assert set(digests) == {"scribbles_sha256", "training_rows_sha256"}
    other = fo.train_forest(*_shifted(forest_model), features="minimal", n_trees=2, n_jobs=1)
    assert other.report["training_data"]["scribbles_sha256"] != digests["scribbles_sha256"]
    for head, match in [({"class_names": ["a", "b"]}, "as many distinct"),
                        ({"class_values": [1, 2, 300]}, "as many distinct"),
                        ({"format_version": "2"}, "expected an integer"),
                        ({"format_version": 99}, "newer than")]:
        with pytest.raises(ModelError, match=match):
            load_model(_replace(paths[0], tmp_path / "bad.ectmodel", {}, head=head))
    fewer = _replace(paths[0], tmp_path / "k.ectmodel", {},
                     head={"class_values": [1, 2], "class_names": ["a", "b"]})
    with pytest.raises(ModelError, match="3 classes but the header names 2"):
        load_model(fewer)


def _shifted(forest_model):
    _, grey = forest_model
    scr = np.zeros(grey.shape, np.uint8)
    scr[1, :12], scr[1, 14:] = 1, 2
    return grey, scr


@pytest.mark.parametrize("case", ["forest_pkl", "forest_npz", "features_pkl", "features_npz",
                                  "cnn", "cnn_raw", "cracks_cnn", "bioimageio_yaml"])
def test_malicious_payload_executes_nothing(case, forest_model, descriptors, tmp_path):
    marker = tmp_path / "pwned"
    payload = _payload(marker)
    model, _ = forest_model
    x, y = descriptors
    if case.startswith("forest"):
        base = model.save(tmp_path / "m.ectmodel")
        members = {"stage1.pkl": payload} if case == "forest_pkl" else \
            {"forest.npz": _evil_npz(marker)}
    elif case.startswith("features"):
        base = fm.train_features(x, y).save(tmp_path / "m.ectmodel")
        members = {"estimator.pkl": payload} if case == "features_pkl" else \
            {"estimator.npz": _evil_npz(marker)}
    else:
        base, members = _torch_case(case, tmp_path, marker, payload)
    bad = _replace(base, tmp_path / "bad.ectmodel", members)
    with pytest.raises(ModelError):
        load_model(bad) if not case.startswith("cracks") else _load_cracks(bad)
    assert not marker.exists()


def _load_cracks(path):
    from electrode_ct.cracks.models import load_cracks_model

    return load_cracks_model(path)


def _torch_case(case, tmp_path, marker, payload):
    """A saved torch model kind and the members that plant the payload in it."""
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"weight": Payload(marker)}, buf)
    if case == "cracks_cnn":
        from electrode_ct.cracks.cnn_model import CNNConfig, CrackSliceCNN, _net

        cfg = CNNConfig(channels=(4,), size=16)
        base = CrackSliceCNN(_net(cfg.channels, cfg.n_images), config=cfg).save(
            tmp_path / "m.ectmodel")
        return base, {"state_dict.pt": buf.getvalue()}
    tiny = _tiny_cnn()
    if case == "bioimageio_yaml":  # a package's YAML with a tag that would run a command
        pkg = tmp_path / "m.zip"
        rdf = {"config": {"electrode_ct": json.loads(json.dumps(tiny.header()))},
               "weights": {"pytorch_state_dict": {"source": "w.pt"}}}
        evil = yaml.safe_dump(rdf) + f"evil: !!python/object/apply:os.system ['touch {marker}']\n"
        assert "evil" in yaml.unsafe_load(evil.replace("os.system", "len"))  # valid YAML
        with zipfile.ZipFile(pkg, "w") as zf:
            zf.writestr("rdf.yaml", evil)
        return pkg, {"w.pt": buf.getvalue()}
    base = tiny.save(tmp_path / "m.ectmodel")
    return base, {"state_dict.pt": buf.getvalue() if case == "cnn" else payload}


def _tiny_cnn(members: int = 1, mode: str = "fixed"):
    torch = pytest.importorskip("torch")
    from electrode_ct.segment.cnn.model import CNNModel
    from electrode_ct.segment.cnn.nets import build_net

    torch.manual_seed(0)
    arch = {"name": "lrcs", "channels": 4, "depth": 2, "kernel": 3}
    nets = [build_net("lrcs", n_classes=3, channels=4, depth=2, kernel=3).eval()
            for _ in range(members)]
    return CNNModel(nets, arch=arch, class_values=[1, 2, 3], class_names=["pore", "cbd", "active"],
                    normalisation={"mode": mode, "train_center": 120.0, "train_scale": 40.0})


def test_cnn_models_of_format_1_still_load(tmp_path):
    tiny = _tiny_cnn()
    old = _replace(tiny.save(tmp_path / "n.ectmodel"), tmp_path / "old.ectmodel", {},
                   head={"format_version": 1})
    back = load_model(old)
    grey = np.random.default_rng(0).normal(120, 40, (4, 24, 24)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(grey, probabilities=True).probabilities,
                                  tiny.predict(grey, probabilities=True).probabilities)


@pytest.mark.parametrize("mode,members,formats", [
    ("fixed", 2, ("pytorch_state_dict", "torchscript")),
    ("image", 1, ("torchscript",)),  # the other weights run the same code: one is enough
])
def test_bioimageio_export_validates_offline_and_predicts(mode, members, formats, tmp_path,
                                                          run_cli, monkeypatch):
    pytest.importorskip("bioimageio.core")
    import socket

    import tifffile
    from bioimageio.core import test_model

    tiny = _tiny_cnn(members, mode)
    model = tiny.save(tmp_path / "net.ectmodel")
    grey = np.random.default_rng(0).normal(120, 40, (6, 40, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    code, out, err = run_cli("segment", "export", model, tmp_path / "pkg.zip", "--format",
                             "bioimageio", "--sample", tmp_path / "grey.tif", "--json")
    assert code == 0, err
    assert json.loads(out)["weights"] == ["pytorch_state_dict", "torchscript"]

    def no_network(*args, **kwargs):
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for fmt in formats:
        summary = test_model(tmp_path / "pkg.zip", weight_format=fmt)
        assert summary.status == "passed", summary.format()
        names = {d.name for d in summary.details if d.status == "passed"}
        assert f"Reproduce test outputs from test inputs ({fmt})" in names
    with zipfile.ZipFile(tmp_path / "pkg.zip") as zf:
        rdf = zf.read("rdf.yaml").decode()
    expected = "fixed_zero_mean_unit_variance" if mode == "fixed" else "zero_mean_unit_variance"
    assert f"id: {expected}" in rdf and "10.1038/s41524-022-00709-7" in rdf
    code, out, err = run_cli("segment", "predict", tmp_path / "pkg.zip", tmp_path / "grey.tif",
                             tmp_path / "pred.tif", "--probabilities", tmp_path / "p.tif")
    assert code == 0, err
    ref = tiny.predict(grey, probabilities=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "pred.tif"), ref.labels)


def test_export_refuses_forest_and_unknown_format(forest_model, tmp_path, run_cli):
    model, _ = forest_model
    path = model.save(tmp_path / "f.ectmodel")
    for args, match in [((), "is a 'forest' model, expected a 'cnn' model"),
                        (("--format", "onnx"), "--format: expected one of bioimageio")]:
        code, _, err = run_cli("segment", "export", path, tmp_path / "o.zip", *args)
        assert code == 2 and match in err and err.count("\n") == 1
        assert not (tmp_path / "o.zip").exists()


def test_damaged_archives_are_model_errors(forest_model, descriptors, tmp_path):
    """Bit flips anywhere in a forest or cracks-features archive: a ModelError, nothing else."""
    model, grey = forest_model
    x, y = descriptors
    rng = np.random.default_rng(5)
    for name, path in [("f", model.save(tmp_path / "f.ectmodel")),
                       ("c", fm.train_features(x, y).save(tmp_path / "c.ectmodel"))]:
        data = path.read_bytes()
        for i, pos in enumerate(rng.integers(0, len(data), 40)):
            bad = bytearray(data)
            bad[pos] ^= 1 << int(rng.integers(8))
            out = tmp_path / f"{name}{i}.ectmodel"
            out.write_bytes(bytes(bad))
            try:
                m = load_model(out)
            except ModelError:
                continue
            # a flip the archive tolerates (e.g. in a zip comment or timestamp) changes nothing
            if name == "f":
                np.testing.assert_array_equal(m.predict(grey[:4], n_jobs=1).labels,
                                              model.predict(grey[:4], n_jobs=1).labels)
            else:
                np.testing.assert_array_equal(m.score(x), fm.train_features(x, y).score(x))
