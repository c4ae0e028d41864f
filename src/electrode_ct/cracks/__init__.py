"""Per-particle crack/flaw classification and 3-phase particle segmentation.

- :mod:`.candidates` — input checks, candidate particles (no truncated/outlier ones),
  healed particle masks.
- :mod:`.descriptors` — CPU-light 3-D descriptors (GREAT2 radial deficit, dark fractions,
  thin-dark-line response, core level against the population).
- :mod:`.features_model` — the ``cracks-features`` classifier (logistic / boosting).
- :mod:`.sampling`, :mod:`.cnn_model` — published slice sampling and the ``cracks-cnn``
  VGG-style classifier (torch, imported only when used).
- :mod:`.evaluate` — ROC/AUC, confusion, threshold choice, % flawed, depth profile.
- :mod:`.threephase` — solid / flaw / exterior split and crack measurements.
- :mod:`.pvolume` — integral (partial-volume) crack volume per particle.
- :mod:`.classify` — the whole chain (:func:`classify`, :func:`train`).

See ``docs/cracks.md``.
"""

from electrode_ct.cracks.candidates import candidate_table, check_inputs, heal_labels
from electrode_ct.cracks.classify import (
    DEFAULT_MODEL,
    CracksResult,
    classify,
    load_cracks_model,
    prepare,
    reference_flawed,
    train,
)
from electrode_ct.cracks.descriptors import FEATURE_COLUMNS, particle_descriptors
from electrode_ct.cracks.pvolume import crack_volume_pv
from electrode_ct.cracks.sampling import sample_slices, slice_indices
from electrode_ct.cracks.threephase import PHASES, three_phase

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_COLUMNS",
    "PHASES",
    "CracksResult",
    "candidate_table",
    "check_inputs",
    "classify",
    "crack_volume_pv",
    "heal_labels",
    "load_cracks_model",
    "particle_descriptors",
    "prepare",
    "reference_flawed",
    "sample_slices",
    "slice_indices",
    "three_phase",
    "train",
]
