"""Command-line argument normalisation done before typer parses ``argv``.

- Options that take one or several numbers (``--voxel-size 0.4`` or
  ``--voxel-size 1 0.5 0.5``) have their following numeric tokens joined with commas,
  so each command sees one string (parsed with :func:`parse_floats`).
- ``--quiet`` / ``-q`` may appear anywhere; it is removed and recorded globally.
- ``particles train`` becomes the command ``particles-train`` (``ect particles`` itself
  takes positional files, so it cannot be a command group).
"""

from __future__ import annotations

import re

from electrode_ct.errors import InputError

MULTI_VALUE_OPTIONS: set[str] = {
    "--voxel-size", "--shape", "--thresholds", "--fractions", "--chunks", "--sigmas",
    "--scales", "--size", "--origin",
    # filters / classical segmentation (issue 4)
    "--sigma", "--radius", "--center", "--low", "--high", "--input-voxel-size",
    "--block-shape",  # compute options (issue 21)
}
"""Options that accept several space-separated numbers. Commands may add to this set."""

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

STATE = {"quiet": False}


def normalise(argv: list[str]) -> list[str]:
    """Join multi-number option values with commas and strip ``--quiet``."""
    out: list[str] = []
    i = 0
    STATE["quiet"] = False
    while i < len(argv):
        tok = argv[i]
        if tok in ("--quiet", "-q"):
            STATE["quiet"] = True
            i += 1
            continue
        if tok == "--":
            out.extend(argv[i:])
            break
        if tok in MULTI_VALUE_OPTIONS:
            vals = []
            j = i + 1
            while j < len(argv) and (_NUMBER.match(argv[j]) or "," in argv[j] and all(
                _NUMBER.match(v) for v in argv[j].split(",") if v
            )):
                vals.append(argv[j])
                j += 1
            out.append(tok)
            if vals:
                out.append(",".join(vals))
                i = j
                continue
            i += 1
            continue
        out.append(tok)
        i += 1
    if out[:2] == ["particles", "train"]:
        out = ["particles-train", *out[2:]]
    return out


def parse_floats(
    text: str | None, *, name: str, count: tuple[int, ...] | None = None
) -> list[float]:
    """Parse ``"1,0.5,0.5"`` into floats, checking how many there are.

    Raises
    ------
    InputError
        When a value is not a number or the count is not one of ``count``.
    """
    if text is None:
        return []
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"{name}: expected numbers, got {text!r}") from None
    if count is not None and len(vals) not in count:
        want = " or ".join(str(c) for c in count)
        raise InputError(f"{name}: expected {want} value(s), got {len(vals)} ({text!r})")
    return vals


def parse_ints(text: str | None, *, name: str, count: tuple[int, ...] | None = None) -> list[int]:
    """Like :func:`parse_floats` for integers."""
    vals = parse_floats(text, name=name, count=count)
    if any(v != int(v) for v in vals):
        raise InputError(f"{name}: expected whole numbers, got {text!r}")
    return [int(v) for v in vals]


def quiet() -> bool:
    """True when ``--quiet`` was given on the command line."""
    return STATE["quiet"]
