"""Network architectures for 2-D slice segmentation, built by name.

- ``lrcs``: an LRCS-Net-like SegNet-style asymmetric encoder–decoder (Su et al. 2022):
  encoder levels of two k×k convolutions with leaky ReLU and index-preserving max-pooling,
  a decoder of max-unpooling with the stored indices and one k×k convolution with
  batch-norm and leaky ReLU per level, and one more at full resolution to fill in the
  sparse unpooled map; no concatenated skip connections.
- ``unet``: a standard 2-D U-Net (two 3×3 convolutions with batch-norm and ReLU per level,
  concatenated skips, transposed-convolution up-sampling).

Both output per-class logits (softmax is applied at prediction; the loss works on logits)
and accept any image size: the input is reflect-padded to a multiple of
``2 ** depth`` and the output is cut back to the input size, so no border is ever lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from electrode_ct.errors import ConfigError
from electrode_ct.segment.cnn._torch import require_torch

torch = require_torch()
nn = torch.nn
F = torch.nn.functional


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to a multiple of ``multiple``."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class LRCSNet(nn.Module):
    """SegNet-style asymmetric encoder–decoder with pooling indices (LRCS-Net-like).

    Parameters
    ----------
    in_channels : int
        Input channels (1 for grey images).
    n_classes : int
        Output classes.
    channels : int
        Channels of the first level (doubled at each level below).
    depth : int
        Number of pooling levels.
    kernel : int
        Convolution kernel size (odd).
    slope : float
        Negative slope of the leaky ReLU.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 3, *, channels: int = 32,
                 depth: int = 3, kernel: int = 5, slope: float = 0.1) -> None:
        super().__init__()
        self.depth = depth
        self.multiple = 2 ** depth  # input sizes are padded to this multiple
        pad = kernel // 2
        act = nn.LeakyReLU(slope, inplace=True)
        widths = [channels * 2 ** i for i in range(depth + 1)]
        self.enc = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.enc.append(nn.Sequential(
                nn.Conv2d(cin, w, kernel, padding=pad), act,
                nn.Conv2d(w, w, kernel, padding=pad), act,
            ))
            cin = w
        self.dec = nn.ModuleList()
        for level in range(depth, 0, -1):
            self.dec.append(nn.Sequential(
                nn.Conv2d(widths[level], widths[level - 1], kernel, padding=pad, bias=False),
                nn.BatchNorm2d(widths[level - 1]), act,
            ))
        # the unpooled map is sparse (one value per 2x2 block): a last convolution at full
        # resolution fills it in before the 1x1 classifier
        self.post = nn.Sequential(
            nn.Conv2d(widths[0], widths[0], kernel, padding=pad, bias=False),
            nn.BatchNorm2d(widths[0]), act,
        )
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class logits, same spatial size as ``x`` (N, C, H, W)."""
        x, (h, w) = _pad_to_multiple(x, self.multiple)
        indices: list[torch.Tensor] = []
        sizes: list[list[int]] = []
        for i, block in enumerate(self.enc):
            x = block(x)
            if i < self.depth:
                sizes.append([x.shape[-2], x.shape[-1]])
                x, idx = F.max_pool2d(x, 2, return_indices=True)
                indices.append(idx)
        for block in self.dec:
            x = block(x)
            x = F.max_unpool2d(x, indices.pop(), 2, output_size=sizes.pop())
        return self.head(self.post(x))[..., :h, :w]


class UNet(nn.Module):
    """A standard 2-D U-Net (Ronneberger et al. 2015) with batch-norm.

    Parameters
    ----------
    in_channels, n_classes, channels, depth : int
        As for :class:`LRCSNet`.
    kernel : int
        Convolution kernel size (3 in the original).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 3, *, channels: int = 16,
                 depth: int = 3, kernel: int = 3) -> None:
        super().__init__()
        self.depth = depth
        self.multiple = 2 ** depth  # input sizes are padded to this multiple
        pad = kernel // 2

        def block(cin: int, cout: int) -> Any:
            return nn.Sequential(
                nn.Conv2d(cin, cout, kernel, padding=pad, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, kernel, padding=pad, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        widths = [channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(block(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(depth, 0, -1):
            self.up.append(nn.ConvTranspose2d(widths[level], widths[level - 1], 2, stride=2))
            self.merge.append(block(2 * widths[level - 1], widths[level - 1]))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class logits, same spatial size as ``x`` (N, C, H, W)."""
        x, (h, w) = _pad_to_multiple(x, self.multiple)
        skips: list[torch.Tensor] = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            if i < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, merge in zip(self.up, self.merge):  # noqa: B905 (TorchScript: no strict)
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)[..., :h, :w]


NETS: dict[str, Callable[..., Any]] = {"lrcs": LRCSNet, "unet": UNet}
"""Architectures by name."""

ARCH_DEFAULTS: dict[str, dict[str, int]] = {
    "lrcs": {"channels": 32, "depth": 3, "kernel": 5},
    "unet": {"channels": 16, "depth": 3, "kernel": 3},
}
"""Default width/depth/kernel of each architecture."""


def build_net(arch: str, *, n_classes: int, in_channels: int = 1, channels: int | None = None,
              depth: int | None = None, kernel: int | None = None) -> Any:
    """Build a network by name.

    Parameters
    ----------
    arch : {"lrcs", "unet"}
        Architecture name.
    n_classes : int
        Output classes.
    in_channels : int
        Input channels.
    channels, depth, kernel : int, optional
        Base width, pooling levels and kernel size (defaults: :data:`ARCH_DEFAULTS`).

    Raises
    ------
    ConfigError
        For an unknown name or invalid sizes.
    """
    if arch not in NETS:
        raise ConfigError(f"--arch {arch!r}: unknown architecture; known: {', '.join(NETS)}")
    opts = dict(ARCH_DEFAULTS[arch])
    for key, val in (("channels", channels), ("depth", depth), ("kernel", kernel)):
        if val is not None:
            opts[key] = int(val)
    if opts["channels"] < 1 or opts["depth"] < 0 or opts["kernel"] < 1 or opts["kernel"] % 2 == 0:
        raise ConfigError(f"{arch}: channels >= 1, depth >= 0 and an odd kernel expected, "
                          f"got {opts}")
    if n_classes < 2:
        raise ConfigError(f"{arch}: at least 2 classes expected, got {n_classes}")
    return NETS[arch](in_channels, n_classes, **opts)


def fold_batch_norm(net: Any) -> Any:
    """An inference copy of ``net`` with every batch-norm folded into the convolution
    before it (eval mode).

    In eval mode a batch-norm is an affine map per channel, so the convolution before it
    can absorb it (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the
    activations less per block, ~15 % of a U-Net's CPU time; the logits move by float32
    rounding only (~1e-7). ``net`` itself is left untouched.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    out = copy.deepcopy(net).eval()
    for seq in (m for m in out.modules() if isinstance(m, nn.Sequential)):
        kids = list(seq)
        for i, (conv, norm) in enumerate(zip(kids[:-1], kids[1:])):  # noqa: B905
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, norm)
                seq[i + 1] = nn.Identity()
    return out
