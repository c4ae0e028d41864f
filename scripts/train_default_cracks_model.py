"""Train the shipped default features classifier on phantoms and write it into the package.

The model file is written in the current, pickle-free format (``estimator.npz``).

Run: ``.venv/bin/python scripts/train_default_cracks_model.py [--out PATH] [--quick]``.
The tests call :func:`train_default` on a small phantom and compare its behaviour with
the shipped file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "src" / "electrode_ct" / "data" / \
    "cracks_features_default.ectmodel"


def train_default(*, shape: tuple[int, int, int] = (96, 96, 96), seeds: Sequence[int] = (11, 12),
                  modalities: Sequence[str] = ("micro", "nano"), voxel_size: float = 0.5,
                  radius_mean_um: float = 3.0, estimator: str = "logistic"):
    """Train the default ``cracks-features`` model on noisy phantoms.

    One phantom per (modality, seed), 30 % cracked particles with the default crack kinds
    and widths (thin cracks included); descriptors are pooled over all phantoms.

    Returns
    -------
    FeaturesModel
    """
    import numpy as np

    from electrode_ct.cracks import prepare_scan, reference_flawed
    from electrode_ct.cracks.features_model import train_features
    from electrode_ct.synth import electrode

    tables, ys = [], []
    for modality in modalities:
        for seed in seeds:
            ph = electrode(shape, voxel_size=voxel_size, radius_mean_um=radius_mean_um,
                           radius_sd_um=0.25 * radius_mean_um, modality=modality, seed=seed,
                           cracked_fraction=0.3)
            prep = prepare_scan(ph.grey.numpy(), ph.particles.numpy(),
                                spacing=ph.grey.spacing)
            tables.append(prep.descriptors)
            ys.append(reference_flawed(ph.truth, prep.ids))
    model = train_features(pd.concat(tables, ignore_index=True), np.concatenate(ys),
                           estimator=estimator, seed=0)
    model.training.update({"phantoms": {"shape": list(shape), "seeds": list(seeds),
                                        "modalities": list(modalities),
                                        "voxel_size_um": voxel_size,
                                        "radius_mean_um": radius_mean_um},
                           "spacing_um": [float(voxel_size)] * 3})
    return model


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train and write the model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quick", action="store_true", help="one small phantom per modality")
    args = ap.parse_args(argv)
    kw = {"shape": (64, 64, 64), "seeds": (11,)} if args.quick else {}
    model = train_default(**kw)
    model.save(args.out)
    print(f"wrote {args.out}: trained on {model.training['n_particles']} particles, "
          f"training AUC {model.training['train_auc']:.3f}")


if __name__ == "__main__":
    main()
