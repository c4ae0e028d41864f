"""Train the shipped default CNN crack classifier on phantoms and write it into the package.

Micro- and nano-CT phantoms (``electrode_ct.synth.electrode``, 30 % of the particles
flawed, default flaw kinds and widths) are rendered for the training seeds; the network
sees 10 slices along z of every candidate particle (the phantom's own labels), cut from
the contrast-normalised grey volume (``image="grey"``: one input that holds on both
modalities). The model file keeps the per-epoch history and the ROC / precision-recall
of its validation particles (``training.history``, ``training.validation``) and the AUC
on phantoms of held-out seeds (``training.held_out``).

Run: ``nice .venv/bin/python scripts/train_default_cracks_cnn.py [--out PATH] [--quick]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "electrode_ct" / "data" / \
    "cracks_cnn_default.ectmodel"
TRAIN_SEEDS = (21, 22)
"""Phantom seeds the shipped CNN is trained on (the demo and the tests use others)."""
HELD_OUT_SEEDS = (31,)
"""Phantom seeds it is scored on after training (``training.held_out``)."""


def phantom_slices(modality: str, seed: int, *, shape: tuple[int, int, int],
                   voxel_size: float, radius_mean_um: float, k: int,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey slices ``(n, k, size, size)`` and 0/1 flaw labels of one phantom's candidates."""
    from electrode_ct.cracks import prepare_scan, reference_flawed
    from electrode_ct.cracks.scan import cnn_slices
    from electrode_ct.synth import electrode

    ph = electrode(shape, voxel_size=voxel_size, radius_mean_um=radius_mean_um,
                   radius_sd_um=0.25 * radius_mean_um, modality=modality, seed=seed,
                   cracked_fraction=0.3)
    prep = prepare_scan(ph.grey.numpy(), ph.particles.numpy(), spacing=ph.grey.spacing)
    slices = cnn_slices(prep, prep.ids, image="grey", k=k, axes=0, size=size)
    return slices, reference_flawed(ph.truth, prep.ids)


def held_out(model: Any, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """AUC, average precision and counts of ``model`` on each held-out phantom."""
    from electrode_ct.cracks.evaluate import average_precision, roc_auc

    out = {}
    for name, (slices, y) in sets.items():
        score = model.scores(model.slice_probabilities(slices))
        out[name] = {"n": int(len(y)), "n_flawed": int(y.sum()), "auc": roc_auc(y, score),
                     "average_precision": average_precision(y, score),
                     "percent_flawed_truth": float(100 * y.mean()),
                     "percent_flawed_at_threshold": float(100 * np.mean(
                         score >= model.threshold))}
    return out


def train_default_cnn(*, shape: tuple[int, int, int] = (96, 96, 96),
                      seeds: Sequence[int] = TRAIN_SEEDS,
                      test_seeds: Sequence[int] = HELD_OUT_SEEDS,
                      modalities: Sequence[str] = ("micro", "nano"), voxel_size: float = 0.5,
                      radius_mean_um: float = 3.0, channels: tuple[int, ...] = (8, 16, 32),
                      epochs: int = 12, k: int = 10, size: int = 32) -> Any:
    """Train the default ``cracks-cnn`` model on phantoms and score it on held-out ones.

    Parameters
    ----------
    shape : 3 int
        Phantom shape (voxels).
    seeds, test_seeds : sequence of int
        Training and held-out phantom seeds (one phantom per modality and seed).
    modalities : sequence of {"micro", "nano"}
        Imaging presets.
    voxel_size, radius_mean_um : float
        Voxel size and mean particle radius, µm.
    channels, epochs, k, size
        Network channels, maximum epochs, slices per particle, slice side (pixels).

    Returns
    -------
    CrackSliceCNN
    """
    from electrode_ct.cracks.cnn_model import CNNConfig, train_cnn

    kw = {"shape": shape, "voxel_size": voxel_size, "radius_mean_um": radius_mean_um,
          "k": k, "size": size}
    parts = [phantom_slices(m, s, **kw) for m in modalities for s in seeds]
    slices = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    cfg = CNNConfig(channels=tuple(channels), size=size, epochs=epochs, patience=epochs,
                    seed=0, threads=1, image="grey")
    model = train_cnn(slices, y, config=cfg, k=k, axes=[0])
    tests = {f"{m}_seed{s}": phantom_slices(m, s, **kw) for m in modalities for s in test_seeds}
    model.training.update({
        "held_out": held_out(model, tests), "spacing_um": [float(voxel_size)] * 3,
        "phantoms": {"shape": list(shape), "seeds": list(seeds),
                     "test_seeds": list(test_seeds), "modalities": list(modalities),
                     "voxel_size_um": voxel_size, "radius_mean_um": radius_mean_um,
                     "cracked_fraction": 0.3}})
    return model


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train and write the model."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quick", action="store_true", help="small phantoms, 2 epochs")
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    kw: dict[str, Any] = {"epochs": args.epochs}
    if args.quick:
        kw = {"shape": (64, 64, 64), "seeds": (21,), "epochs": 2}
    model = train_default_cnn(**kw)
    model.save(args.out)
    t = model.training
    print(f"wrote {args.out}: {t['n_particles']} particles, {t['epochs_run']} epochs, "
          f"validation AUC {t['val_auc']:.3f}, held out: "
          + ", ".join(f"{k} AUC {v['auc']:.3f}" for k, v in t["held_out"].items()))


if __name__ == "__main__":
    main()
