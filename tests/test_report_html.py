import numpy as np
import pandas as pd

from _browser import render
from electrode_ct.report.figures import bars, histogram, orthoslices
from electrode_ct.report.html import Section, write_report


def test_report_renders_in_chromium(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.normal(100, 10, (20, 24, 28)).astype(np.float32)
    phases = (grey > 100).astype(np.uint8)
    s1 = Section("Data").text("A <small> phantom & co").figure(
        orthoslices(grey, overlay=phases, spacing=(2, 1, 1)), alt="orthoslices")
    s2 = Section("Segmentation").figure(histogram(grey, thresholds=[100]), alt="histogram")
    s2.figure(bars({"pore": 0.4, "active": 0.6}, ylabel="fraction"), alt="fractions")
    s2.table(pd.DataFrame({"label": [1, 2], "volume_um3": [1.5, 2.25]}))
    s2.table({"porosity": 0.41, "n": 3})
    out = write_report(tmp_path / "report.html", [s1, s2], title="t")
    text = out.read_text()
    assert "&lt;small&gt;" in text and "<small>" not in text  # escaped
    result = render(out, tmp_path)
    assert len(result["images"]) == 3
    assert all(img["ok"] and img["w"] > 100 for img in result["images"]), result
    assert result["errors"] == [] and result["stderr_errors"] == []


def test_wide_table_scrolls_inside_its_box(tmp_path):
    """A table wider than the page scrolls in its own box; the page keeps the viewport's
    width (before the .tablewrap box the page itself grew past the viewport)."""
    wide = pd.DataFrame({f"a_rather_long_column_name_{i}": [1.0 + i, 2.0] for i in range(40)})
    sec = Section("Wide").table(wide).table({"n": 3})
    out = write_report(tmp_path / "report.html", [sec], title="wide")
    lay = render(out, tmp_path)["layout"]
    assert len(lay["tablewraps"]) == 2
    big, small = lay["tablewraps"]
    assert big["scroll"] > big["client"] > 0  # the wide table overflows its box ...
    assert small["scroll"] <= small["client"]  # ... a narrow one does not
    assert lay["page"] <= lay["viewport"]  # and the page is no wider than the viewport
