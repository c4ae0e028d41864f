"""Particle instance segmentation (crack-healing watershed), cleanup and COCO export."""

from electrode_ct.particles.cleanup import (
    border_labels,
    fill_holes,
    mahalanobis_outliers,
    relabel_sequential,
    remove_border,
    remove_islands,
    remove_small,
    truncated_labels,
)
from electrode_ct.particles.confidence import fill_ratio, particle_confidence
from electrode_ct.particles.hypotheses import choose_hypotheses, shape_penalty
from electrode_ct.particles.resplit import particle_solidity, resplit_merged
from electrode_ct.particles.separate import heal_cracks, separate_particles

__all__ = [
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
    "separate_particles",
    "shape_penalty",
    "truncated_labels",
]
