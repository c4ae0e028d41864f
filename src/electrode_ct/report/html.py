"""A self-contained HTML report: sections of text, tables and embedded PNG figures."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from electrode_ct.io._atomic import atomic_path
from electrode_ct.report.figures import to_png_base64

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#1f3b73;color:#fff;padding:18px 32px}header h1{margin:0;font-size:24px}
main{max-width:1200px;margin:0 auto;padding:16px 32px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 20px;margin:16px 0}
h2{color:#1f3b73;font-size:19px;margin-top:4px}
main,section{min-width:0}
.tablewrap{max-width:100%;overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:13px;margin:0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eef}
img{max-width:100%;height:auto;display:block;margin:8px 0}
pre{overflow-x:auto}
.note{color:#666;font-size:13px}code{background:#f0f0f0;padding:1px 4px}
nav a{margin-right:12px;color:#1f3b73}
"""


@dataclass
class Section:
    """One report section: a title and a list of HTML fragments."""

    title: str
    parts: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """HTML anchor id."""
        return "".join(c if c.isalnum() else "-" for c in self.title.lower())

    def text(self, text: str, *, note: bool = False) -> Section:
        """Add a paragraph (escaped)."""
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def figure(self, fig: Figure, *, alt: str) -> Section:
        """Add a figure as an embedded PNG."""
        self.parts.append(
            f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{to_png_base64(fig)}">'
        )
        return self

    def table(self, df: pd.DataFrame | dict[str, Any], *, max_rows: int = 30,
              float_format: str = "{:.4g}") -> Section:
        """Add a table (a DataFrame or a flat mapping)."""
        if isinstance(df, dict):
            df = pd.DataFrame({"quantity": list(df), "value": [_fmt(v, float_format)
                                                               for v in df.values()]})
        shown = df.head(max_rows)
        # wide tables scroll inside their own box instead of widening the page
        self.parts.append('<div class="tablewrap">' + shown.to_html(
            index=False, float_format=lambda v: float_format.format(v), border=0, escape=True)
            + "</div>")
        if len(df) > max_rows:
            self.parts.append(f'<p class="note">{max_rows} of {len(df)} rows shown.</p>')
        return self


def _fmt(v: Any, float_format: str) -> Any:
    if isinstance(v, float):
        return float_format.format(v)
    return v


def write_report(path: str | os.PathLike[str], sections: list[Section], *,
                 title: str = "electrode-ct report", subtitle: str = "") -> Path:
    """Write the report HTML file atomically; returns its path."""
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{"".join(s.parts)}</section>'
        for s in sections
    )
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><div>{html.escape(subtitle)}</div></header>"
        f"<main><nav>{nav}</nav>{body}</main></body></html>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)
