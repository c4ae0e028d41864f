"""Particle instance segmentation (crack-healing watershed), cleanup and COCO export.

- :mod:`.separate` — :func:`separate_particles` and the three methods it dispatches to
  (:func:`separate_distance`, :func:`separate_boundary`, :func:`separate_triplanar`), each
  returning a :class:`Separation`; crack healing.
- :mod:`.learned` — :func:`separate_learned`: a learned instance model's tri-planar
  interior/boundary probabilities, markers and 3-D watershed (the shipped default model).
- :mod:`.shape` — shape scores: fill ratio, solidity, particle confidence, shape penalty.
- :mod:`.resplit` — re-split of particles that healing bridged to a neighbour.
- :mod:`.hypotheses` — region-by-region choice between two healing widths.
- :mod:`.seeding` — distance map, h-maxima seeds, watershed.
- :mod:`.cleanup` — small, border, truncated, island and outlier particles; hole filling
  (:func:`border_labels` is :func:`electrode_ct.labels.border_labels`).
- :mod:`.coco` — COCO export.
"""

from electrode_ct.labels import border_labels
from electrode_ct.particles.cleanup import (
    fill_holes,
    mahalanobis_outliers,
    relabel_sequential,
    remove_border,
    remove_islands,
    remove_small,
    truncated_labels,
)
from electrode_ct.particles.hypotheses import choose_hypotheses
from electrode_ct.particles.learned import separate_learned
from electrode_ct.particles.resplit import resplit_merged
from electrode_ct.particles.separate import (
    Separation,
    heal_cracks,
    separate_boundary,
    separate_distance,
    separate_particles,
    separate_triplanar,
)
from electrode_ct.particles.shape import (
    fill_ratio,
    particle_confidence,
    particle_solidity,
    shape_penalty,
)

__all__ = [
    "Separation",
    "border_labels",
    "choose_hypotheses",
    "fill_holes",
    "fill_ratio",
    "heal_cracks",
    "mahalanobis_outliers",
    "particle_confidence",
    "particle_solidity",
    "relabel_sequential",
    "remove_border",
    "remove_islands",
    "remove_small",
    "resplit_merged",
    "separate_boundary",
    "separate_distance",
    "separate_learned",
    "separate_particles",
    "separate_triplanar",
    "shape_penalty",
    "truncated_labels",
]
