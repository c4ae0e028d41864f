"""Train the shipped default particle instance model on phantoms and write it into the package.

The training set: rendered electrode phantoms with exact instance truth (the ``particles``
volume: a cracked particle keeps one id over its crack), micro- and nano-CT presets, 30 %
cracked particles with 1-2 voxel cracks, sizes 3-5 µm radius at 0.5 µm voxels, and one
harder family (elongated, calendered, low contrast-to-noise); seeds 11... never used by
``benchmarks/particles.py`` (1-7). Fixed epochs (no time limit), one torch thread,
seeded: the same command writes the same weights on the same machine.

The file is a ``particles-cnn`` model archive (``model.json`` + a torch state dict read
with ``weights_only``; no pickle).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/train_default_particles_model.py
[--out PATH] [--epochs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "electrode_ct" / "data" / \
    "particles_default.ectmodel"

FAMILIES: dict[str, dict] = {
    "micro": {"modality": "micro", "radius_mean_um": 4.0},
    "micro_small": {"modality": "micro", "radius_mean_um": 3.0},
    "nano": {"modality": "nano", "radius_mean_um": 4.0},
    "hard": {"modality": "micro", "radius_mean_um": 4.0, "aspect_sd": 0.35, "roughness": 0.08,
             "active_fraction": 0.55, "calender": 0.2, "snr": 3.0, "crack_width_um": 0.5},
}
"""Phantom families of the training set (``electrode_ct.synth.electrode`` settings over
:data:`COMMON`)."""

COMMON = {"voxel_size": 0.5, "cbd_fraction": 0.05, "active_fraction": 0.45,
          "cracked_fraction": 0.3, "crack_width_um": 0.75, "crack_kinds": ("radial",)}


def phantoms(shape: tuple[int, int, int], seeds: Sequence[int]) -> tuple[list, list, dict]:
    """Grey volumes, instance labels and the record of the training phantoms."""
    from electrode_ct.synth import electrode

    greys, labels = [], []
    for fam in FAMILIES.values():
        for seed in seeds:
            settings = {**COMMON, **fam}
            settings["radius_sd_um"] = 0.25 * settings["radius_mean_um"]
            ph = electrode(shape, seed=seed, **settings)
            greys.append(ph.grey.numpy())
            labels.append(ph.particles.numpy())
    record = {"shape": list(shape), "seeds": list(seeds), "common": _plain(COMMON),
              "families": {k: _plain(v) for k, v in FAMILIES.items()}}
    return greys, labels, record


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def train_default(*, shape: tuple[int, int, int] = (64, 64, 64), seeds: Sequence[int] = (11, 12),
                  epochs: int = 40, patches_per_epoch: int = 1024):
    """Train the default model; returns the :class:`~.TrainResult`."""
    import torch

    from electrode_ct.segment.cnn.instances import INSTANCE_CONFIG, train_instances

    torch.set_num_threads(1)
    greys, labels, record = phantoms(shape, seeds)
    cfg = replace(INSTANCE_CONFIG, epochs=epochs, patches_per_epoch=patches_per_epoch,
                  threads=1, seed=0)
    res = train_instances(greys, labels, config=cfg)
    res.model.training.update({"phantoms": record, "spacing_um": [COMMON["voxel_size"]] * 3,
                               "script": "scripts/train_default_particles_model.py"})
    return res


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train and write the model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="one small phantom per family, "
                    "3 epochs (a smoke run)")
    args = ap.parse_args(argv)
    kw = {"shape": (48, 48, 48), "seeds": (11,), "epochs": 3} if args.quick else \
        {"epochs": args.epochs}
    t0 = time.perf_counter()
    res = train_default(**kw)
    res.model.save(args.out)
    print(f"wrote {args.out}: {len(res.history)} epochs, loss {res.history[-1]['loss']:.4f}, "
          f"training {res.cpu_s / 60:.1f} CPU-min, {(time.perf_counter() - t0) / 60:.1f} min "
          "wall in all")


if __name__ == "__main__":
    main()
