"""CNN segmentation trained on one or a few labelled slices (SegmentPy-style; needs torch).

Importing this package does not import torch; the modules below do:

- :mod:`.nets` — LRCS-Net-like encoder–decoder and U-Net, built by name.
- :mod:`.train` — :func:`~.train.train`: a model of one or several networks from labelled
  slices, built on :mod:`.config` (hyper-parameters), :mod:`.data` (labelled planes, patch
  sampling, augmentation), :mod:`.loss` (weighted cross-entropy + Dice), :mod:`.fit` (the
  schedule and epoch loop of one network), :mod:`.averaging` (EMA weights) and
  :mod:`.evaluate` (validation scores, the ``auto`` normalisation, the collapse check);
  :mod:`.search` — a small hyper-parameter search.
- :mod:`.normalise` — input normalisation (statistics stored with the model).
- :mod:`.predict` — tiled, blended, slice-wise or tri-planar prediction.
- :mod:`.model` — the ``cnn`` model kind (save/load via the model archive registry).
- :mod:`.bioimageio` — export as a bioimage.io model package, and loading such packages.
- :mod:`.perturb`, :mod:`.ensemble` — perturbed ground truth and ensemble uncertainty.
- :mod:`.boundary` — foreground/boundary/background targets from particle labels.
- :mod:`.instances` — the ``particles-cnn`` kind: a learned particle instance model
  (background / interior / boundary between touching particles), trained from instance
  label volumes, predicted tri-planar.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from electrode_ct.segment.models import register_kind


def _lazy_loader(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> Any:
    """Load a ``cnn`` model, importing torch only now."""
    from electrode_ct.segment.cnn._torch import require_torch

    require_torch()
    from electrode_ct.segment.cnn import model

    return model._loader(header, archive, path)


def _lazy_instance_loader(header: dict[str, Any], archive: zipfile.ZipFile,
                          path: Path) -> Any:
    """Load a ``particles-cnn`` model, importing torch only now."""
    from electrode_ct.segment.cnn._torch import require_torch

    require_torch()
    from electrode_ct.segment.cnn import instances

    return instances._instance_loader(header, archive, path)


register_kind("cnn", _lazy_loader)
register_kind("particles-cnn", _lazy_instance_loader)
