"""Per-particle measurements: morphology table and size distribution (more modules add here)."""

from electrode_ct.measure.intensity import grey_table, measure_grey
from electrode_ct.measure.morphology import morphology_table
from electrode_ct.measure.psd import size_distribution
from electrode_ct.measure.radial import layer_sums, radial_profiles, radial_table
from electrode_ct.measure.table import join_grey, particle_table

__all__ = [
    "grey_table",
    "join_grey",
    "layer_sums",
    "measure_grey",
    "morphology_table",
    "particle_table",
    "radial_profiles",
    "radial_table",
    "size_distribution",
]
