"""Operando tracking: calibration, rigid registration, label propagation, cleaning."""

from electrode_ct.operando.calibrate import apply_calibration, calibrate, region_peak
from electrode_ct.operando.change import change_map
from electrode_ct.operando.clean import clean_tracks
from electrode_ct.operando.propagate import otsu_foreground, propagate_labels
from electrode_ct.operando.register import (
    RegistrationError,
    Rigid,
    register_rigid,
    resample,
)
from electrode_ct.operando.track import TrackResult, track

__all__ = [
    "RegistrationError",
    "Rigid",
    "TrackResult",
    "apply_calibration",
    "calibrate",
    "change_map",
    "clean_tracks",
    "otsu_foreground",
    "propagate_labels",
    "region_peak",
    "register_rigid",
    "resample",
    "track",
]
