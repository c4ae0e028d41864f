"""Collection rules for the whole tree (tests/ and the doctests in src/)."""

import importlib.util

# The napari plugin's modules import magicgui and Qt: without the `napari` extra their
# doctests cannot be collected (tests/test_napari_*.py skip themselves with the reason).
collect_ignore_glob = ([] if importlib.util.find_spec("magicgui") and importlib.util.find_spec(
    "napari") else ["src/electrode_ct/napari/_*.py"])
