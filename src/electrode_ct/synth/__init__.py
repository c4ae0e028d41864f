"""Synthetic electrode phantoms with exact ground truth.

- :func:`electrode`: one phantom (grey scan, phases, particles, cracks, truth table).
- :func:`operando_series`: the same particles over several states of charge, with crack
  growth/closing and a small rigid misalignment per state.

See ``docs/synth.md`` for the models and their calibration against real scans.
"""

from electrode_ct.synth.imaging import PRESETS, Preset
from electrode_ct.synth.operando import operando_series, save_series
from electrode_ct.synth.packing import lognormal_radii
from electrode_ct.synth.phantom import TRUTH_COLUMNS, Phantom, electrode

__all__ = [
    "PRESETS",
    "TRUTH_COLUMNS",
    "Phantom",
    "Preset",
    "electrode",
    "lognormal_radii",
    "operando_series",
    "save_series",
]
