"""Per-particle crack/flaw classification and 3-phase particle segmentation.

- :mod:`.candidates` — input checks, candidate particles (no truncated/outlier ones),
  healed particle masks.
- :mod:`.scan` — a scan prepared once for every classifier (:func:`prepare_scan`:
  candidates, healed masks, fine-scale image, descriptors; :func:`cnn_slices`).
- :mod:`.descriptors` — CPU-light 3-D descriptors (GREAT2 radial deficit, dark fractions,
  thin-dark-line response, core level against the population).
- :mod:`.features_model` — the ``cracks-features`` classifier (logistic / boosting).
- :mod:`.sampling`, :mod:`.cnn_model` — published slice sampling and the ``cracks-cnn``
  VGG-style classifier (:class:`~.cnn_model.CrackSliceCNN`; torch, imported only when used).
- :mod:`.models` — the shipped default model, loading and the method check.
- :mod:`.train` — :func:`train_cracks_model` on one labelled scan.
- :mod:`.evaluate` — reference labels, ROC/AUC, confusion, threshold choice, % flawed,
  depth profile.
- :mod:`.threephase` — solid / flaw / exterior split and crack measurements.
- :mod:`.pvolume` — integral (partial-volume) crack volume per particle.
- :mod:`.classify` — the whole chain (:func:`classify`, :func:`classify_scan`).

See ``docs/cracks.md``.
"""

from electrode_ct.cracks.candidates import candidate_table, check_inputs, heal_labels
from electrode_ct.cracks.classify import CracksResult, classify, classify_scan
from electrode_ct.cracks.descriptors import FEATURE_COLUMNS, particle_descriptors
from electrode_ct.cracks.evaluate import reference_flawed
from electrode_ct.cracks.models import DEFAULT_MODEL, load_cracks_model
from electrode_ct.cracks.pvolume import crack_volume_pv
from electrode_ct.cracks.sampling import sample_slices, slice_indices
from electrode_ct.cracks.scan import PreparedScan, prepare_scan
from electrode_ct.cracks.threephase import PHASES, three_phase
from electrode_ct.cracks.train import train_cracks_model

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_COLUMNS",
    "PHASES",
    "CracksResult",
    "PreparedScan",
    "candidate_table",
    "check_inputs",
    "classify",
    "classify_scan",
    "crack_volume_pv",
    "heal_labels",
    "load_cracks_model",
    "particle_descriptors",
    "prepare_scan",
    "reference_flawed",
    "sample_slices",
    "slice_indices",
    "three_phase",
    "train_cracks_model",
]
