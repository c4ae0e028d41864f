"""Tables (Parquet with provenance in the schema metadata, optional CSV) and JSON outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import FormatError, InputError
from electrode_ct.io._atomic import atomic_path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clean_json(obj: Any) -> Any:
    """Make an object JSON-safe: numpy scalars to Python, NaN to None, inf to 'inf'."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if np.isnan(f):
            return None
        if np.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """JSON text of ``obj`` after :func:`clean_json` (numpy-safe, NaN-safe)."""
    return json.dumps(clean_json(obj), default=_json_default, **kwargs)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write a JSON file atomically (indented, numpy-safe)."""
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(obj, indent=2) + "\n")
    return Path(path)


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    csv: bool = False,
) -> Path:
    """Write a DataFrame as Parquet (and optionally CSV beside it), atomically.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    path : path-like
        ``.parquet`` destination (a ``.csv`` path writes CSV only).
    metadata : dict, optional
        Provenance (parameters, versions, inputs) stored as JSON under the
        ``electrode_ct`` key of the Parquet schema metadata.
    csv : bool
        Also write ``<path>.csv`` (same stem).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if p.suffix.lower() == ".csv":
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False)
        return p
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"electrode_ct"] = dumps(metadata or {}).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(p) as tmp:
        pq.write_table(table, tmp)
    if csv:
        with atomic_path(p.with_suffix(".csv")) as tmp:
            df.to_csv(tmp, index=False)
    return p


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet or CSV table; provenance (if any) is in ``df.attrs['electrode_ct']``."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such table file")
    try:
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        import pyarrow.parquet as pq

        table = pq.read_table(p)
        df = table.to_pandas()  # parses the pandas metadata (JSON) of the schema
    except Exception as exc:  # pyarrow and pandas raise several types for corrupt files
        raise FormatError(f"{p}: cannot read table ({type(exc).__name__}: {exc})") from exc
    raw = (table.schema.metadata or {}).get(b"electrode_ct")
    if raw:
        try:
            df.attrs["electrode_ct"] = json.loads(raw)
        except ValueError:
            pass
    return df
