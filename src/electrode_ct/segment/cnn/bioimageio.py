"""CNN segmentation models as bioimage.io model packages: export, and import for prediction.

:func:`export_bioimageio` writes a bioimage.io model package (spec 0.5, a ``.zip``) that
other tools (ilastik, deepImageJ, bioimageio.core...) run without electrode-ct:

- weights twice: a PyTorch state dict (architecture: :func:`packaged_net` of this module,
  so it needs electrode-ct installed) and TorchScript (self-contained);
- input ``grey`` (batch, channel, y, x) float32, tiles a multiple of ``2 ** depth`` pixels,
  with the model's normalisation declared as preprocessing: ``fixed`` models as
  ``fixed_zero_mean_unit_variance`` (training centre and scale), ``image`` models as
  ``zero_mean_unit_variance`` over the tile (electrode-ct itself uses percentile-clipped
  statistics of the whole volume: a small difference, see docs/cnn.md);
- output ``probabilities`` (batch, channel = class, y, x): softmax averaged over members;
- a test input (a crop of ``sample`` or a synthetic image) and the output it gives, the
  method's citations, and electrode-ct's own header under ``config.electrode_ct``.

:func:`load_bioimageio_model` rebuilds the :class:`~.model.CNNModel` from such a package
(state dict read with ``weights_only=True``; the YAML with ``yaml.safe_load``), so
``ect segment predict PACKAGE.zip IMAGE OUT`` uses it like a model file.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import DependencyError, ModelError
from electrode_ct.segment.cnn._torch import require_torch
from electrode_ct.segment.cnn.nets import build_net
from electrode_ct.segment.models import load_weights

torch = require_torch()

STATE_DICT = "weights_state_dict.pt"
TORCHSCRIPT = "weights_torchscript.pt"
EPS = 1e-6
"""The ``eps`` of bioimage.io's (fixed) zero-mean-unit-variance preprocessing."""

CITATIONS = {
    "lrcs": ("Su, Z. et al. Artificial neural network approach for multiphase segmentation "
             "of battery electrode nano-CT images. npj Comput. Mater. 8, 30 (2022)",
             "10.1038/s41524-022-00709-7"),
    "unet": ("Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for "
             "Biomedical Image Segmentation. MICCAI 2015",
             "10.1007/978-3-319-24574-4_28"),
}
"""Citation (text, DOI) of each architecture's method."""


class PackagedNet(torch.nn.Module):
    """Class probabilities: softmax over classes averaged over the member networks."""

    def __init__(self, members: list[Any]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised grey → (N, K, H, W) probabilities."""
        total = torch.zeros(0)
        for i, member in enumerate(self.members):
            p = torch.softmax(member(x), dim=1)
            total = p if i == 0 else total + p
        return total / len(self.members)


def packaged_net(arch: str, n_classes: int, members: int = 1, channels: int | None = None,
                 depth: int | None = None, kernel: int | None = None) -> PackagedNet:
    """The package's architecture callable: ``members`` networks of one architecture."""
    return PackagedNet([build_net(arch, n_classes=n_classes, channels=channels, depth=depth,
                                  kernel=kernel) for _ in range(int(members))])


def export_bioimageio(model: Any, out: str | os.PathLike[str], *,
                      sample: np.ndarray | None = None, tile: int = 64) -> dict[str, Any]:
    """Write a CNN model as a bioimage.io model package (``.zip``).

    Parameters
    ----------
    model : CNNModel
        The model to export.
    out : path-like
        Package file to write (atomically).
    sample : numpy.ndarray, optional
        Grey image (2-D, or 3-D: its middle z slice) whose centre crop is the test input;
        default: a synthetic image.
    tile : int
        Test tensor edge in pixels (rounded down to a multiple of ``2 ** depth``).

    Returns
    -------
    dict
        ``out``, ``weights`` (formats), ``test_input_shape``, ``preprocessing``.

    Raises
    ------
    DependencyError
        bioimageio.spec is not installed (the ``bioimageio`` extra).
    """
    from electrode_ct.io._atomic import atomic_path

    spec = _spec()
    net = packaged_net(**_arch_kwargs(model)).eval()
    net.load_state_dict({f"members.{i}.{k}": v for i, m in enumerate(model.nets)
                         for k, v in m.state_dict().items()})
    grey = _test_input(sample, tile, net.members[0].multiple)
    pre, descr = _preprocessing(model, grey)
    with torch.no_grad():
        prob = net(torch.from_numpy(pre)).numpy().astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.save(d / "test_input.npy", grey)
        np.save(d / "test_output.npy", prob)
        torch.save(net.state_dict(), d / STATE_DICT)
        torch.jit.save(torch.jit.script(net), str(d / TORCHSCRIPT))
        (d / "README.md").write_text(_readme(model), encoding="utf-8")
        descr_model = _describe(model, d, descr, net.members[0].multiple)
        with atomic_path(out) as tmp_out:
            spec.save_bioimageio_package(descr_model, output_path=Path(tmp_out))
    return {"out": str(out), "weights": ["pytorch_state_dict", "torchscript"],
            "test_input_shape": list(grey.shape), "preprocessing": descr.id}


def _spec() -> Any:
    """The bioimageio.spec package (optional dependency)."""
    try:
        import bioimageio.spec as spec
    except ImportError as exc:
        raise DependencyError("bioimage.io export needs bioimageio.spec; install the "
                              "'bioimageio' extra: pip install 'electrode-ct[bioimageio]'"
                              ) from exc
    return spec


def _arch_kwargs(model: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`packaged_net` for ``model``."""
    arch = model.arch
    return {"arch": arch["name"], "n_classes": len(model.class_values),
            "members": len(model.nets), "channels": arch.get("channels"),
            "depth": arch.get("depth"), "kernel": arch.get("kernel")}


def _test_input(sample: np.ndarray | None, tile: int, multiple: int) -> np.ndarray:
    """(1, 1, t, t) float32 test input: a centre crop of ``sample`` or a synthetic image."""
    if sample is None:
        from scipy import ndimage as ndi

        noise = np.random.default_rng(0).random((tile, tile))
        img = 100.0 + 100.0 * (ndi.gaussian_filter(noise, 3) > 0.5)
        sample = img + np.random.default_rng(1).normal(0, 8, img.shape)
    arr = np.asarray(sample, np.float32)
    if arr.ndim == 3:
        arr = arr[arr.shape[0] // 2]
    t = min(tile, *arr.shape) // multiple * multiple
    if arr.ndim != 2 or t < multiple:
        raise ModelError(f"--sample: a 2-D or 3-D image of at least {multiple}×{multiple} "
                         f"pixels expected, got shape {np.shape(sample)}")
    y0, x0 = (arr.shape[0] - t) // 2, (arr.shape[1] - t) // 2
    return np.ascontiguousarray(arr[y0:y0 + t, x0:x0 + t])[None, None]


def _preprocessing(model: Any, grey: np.ndarray) -> tuple[np.ndarray, Any]:
    """The declared preprocessing of ``model`` and ``grey`` put through it."""
    from bioimageio.spec.model import v0_5 as v

    norm = model.normalisation
    if norm.get("mode") == "fixed":
        c, s = float(norm["train_center"]), float(norm["train_scale"])
        kw = v.FixedZeroMeanUnitVarianceKwargs(mean=c, std=s)
        return ((grey - c) / (s + EPS)).astype(np.float32), \
            v.FixedZeroMeanUnitVarianceDescr(kwargs=kw)
    axes = [v.AxisId("channel"), v.AxisId("y"), v.AxisId("x")]
    kw_z = v.ZeroMeanUnitVarianceKwargs(axes=axes, eps=EPS)
    g = grey.astype(np.float64)
    pre = (g - g.mean()) / (g.std() + EPS)
    return pre.astype(np.float32), v.ZeroMeanUnitVarianceDescr(kwargs=kw_z)


def _describe(model: Any, d: Path, pre: Any, multiple: int) -> Any:
    """The bioimage.io ModelDescr of the files in ``d``."""
    from bioimageio.spec.model import v0_5 as v

    from electrode_ct import __version__

    size = v.ParameterizedSize(min=multiple, step=multiple)
    inp = v.InputTensorDescr(
        id=v.TensorId("grey"), description="grey values (any units)",
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier("grey")]),
              v.SpaceInputAxis(id=v.AxisId("y"), size=size),
              v.SpaceInputAxis(id=v.AxisId("x"), size=size)],
        test_tensor=v.FileDescr(source=d / "test_input.npy"), preprocessing=[pre])
    ref = {a: v.SizeReference(tensor_id=v.TensorId("grey"), axis_id=v.AxisId(a))
           for a in ("y", "x")}
    names = [v.Identifier(_identifier(n)) for n in model.class_names]
    outp = v.OutputTensorDescr(
        id=v.TensorId("probabilities"),
        description=f"class probabilities; channel i = class value {model.class_values}",
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=names),
              v.SpaceOutputAxis(id=v.AxisId("y"), size=ref["y"]),
              v.SpaceOutputAxis(id=v.AxisId("x"), size=ref["x"])],
        test_tensor=v.FileDescr(source=d / "test_output.npy"))
    version = v.Version(torch.__version__.split("+")[0])
    arch = v.ArchitectureFromLibraryDescr(
        callable=v.Identifier("packaged_net"), import_from="electrode_ct.segment.cnn.bioimageio",
        kwargs={k: w for k, w in _arch_kwargs(model).items() if w is not None})
    weights = v.WeightsDescr(
        pytorch_state_dict=v.PytorchStateDictWeightsDescr(
            source=d / STATE_DICT, architecture=arch, pytorch_version=version),
        torchscript=v.TorchscriptWeightsDescr(source=d / TORCHSCRIPT, pytorch_version=version,
                                              parent="pytorch_state_dict"))
    text, doi = CITATIONS.get(model.arch["name"], CITATIONS["lrcs"])
    return v.ModelDescr(
        name=f"electrode-ct {model.arch['name']} phase segmentation",
        description="2-D CNN semantic segmentation of battery electrode X-ray CT slices "
                    f"(classes: {', '.join(model.class_names)}), exported by electrode-ct "
                    f"{__version__}",
        authors=[v.Author(name="electrode-ct developers")],
        cite=[v.CiteEntry(text=text, doi=v.Doi(doi))], license=v.LicenseId("BSD-3-Clause"),
        documentation=v.FileDescr(source=d / "README.md"), inputs=[inp], outputs=[outp],
        weights=weights,
        tags=["segmentation", "x-ray-ct", "battery", "electrode", "2d"],
        config=v.Config(electrode_ct=model.header()))


def _identifier(name: str) -> str:
    """A class name as a bioimage.io identifier (letters, digits, underscores)."""
    out = "".join(c if c.isalnum() else "_" for c in name)
    return out if out and out[0].isalpha() else f"c_{out}"


def _readme(model: Any) -> str:
    """The package's documentation (with the Validation section bioimage.io asks for)."""
    pairs = ", ".join(f"{v} = {n}" for v, n in zip(model.class_values, model.class_names,
                                                   strict=True))
    return (f"# electrode-ct {model.arch['name']} segmentation\n\n"
            f"A 2-D network segmenting X-ray CT slices of battery electrodes into: {pairs}.\n"
            "The output channels are the class probabilities in this order; electrode-ct "
            "writes the class values listed.\n\n"
            "## Validation\n\n"
            f"Training record (electrode-ct): `{model.training.get('best_val')}` best "
            "validation score where one was given; compare a prediction with dense labels "
            "by `ect compare`.\n")


def load_bioimageio_model(header: dict[str, Any], archive: zipfile.ZipFile,
                          path: Path) -> Any:
    """A :class:`~.model.CNNModel` from a package written by :func:`export_bioimageio`.

    Raises
    ------
    ModelError
        A package without electrode-ct's header or state dict weights, or weights that do
        not fit the stated architecture.
    """
    from electrode_ct.segment.cnn.model import CNNModel, net_from_arch

    try:
        arch, values = header["arch"], [int(x) for x in header["class_values"]]
        n = int(header.get("members", 1))
        state = load_weights(archive, str(header["package"]["state_dict"]), path)
        nets = []
        for i in range(n):
            prefix = f"members.{i}."
            net = net_from_arch(arch, len(values))
            net.load_state_dict({k[len(prefix):]: w for k, w in state.items()
                                 if k.startswith(prefix)})
            nets.append(net.eval())
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: bioimage.io package does not match its electrode-ct "
                         f"header ({type(exc).__name__}: {exc})") from exc
    return CNNModel(nets, arch=arch, class_values=values, class_names=header["class_names"],
                    normalisation=header.get("normalisation", {"mode": "image"}),
                    training=header.get("training"), prediction=header.get("prediction"))
