"""Load an HTML file in headless Chromium and report what a person would see.

Uses only the ``chromium`` binary (Debian package, installed by ``make test``): a copy of
the page gets a probe script that records console errors, uncaught exceptions and failed
resource loads, and after ``load`` writes the state of every image into the DOM, which
``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__errors.push('error: ' + (e.message || t.src || t.href || 'resource'));
}, true);
(function () {
  var orig = console.error;
  console.error = function () {
    window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    orig.apply(console, arguments);
  };
})();
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, ok: i.complete && i.naturalWidth > 0,
            w: i.naturalWidth, h: i.naturalHeight};
  });
  var pre = document.createElement('pre');
  pre.id = '__probe';
  var wraps = Array.prototype.map.call(document.querySelectorAll('.tablewrap'), function (d) {
    return {scroll: d.scrollWidth, client: d.clientWidth};
  });
  var layout = {viewport: document.documentElement.clientWidth,
                page: document.documentElement.scrollWidth, tablewraps: wraps};
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors,
                                    title: document.title, layout: layout});
  document.body.appendChild(pre);
});
</script>"""


def chromium_binary() -> str:
    """Path of the Chromium binary, or raise with the install hint."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("chromium not found: run 'make test' (installs Debian's chromium)")


def render(path: Path, tmp: Path) -> dict:
    """Load ``path`` in headless Chromium; return ``{images, errors, title, layout,
    stderr_errors}`` (``layout``: viewport and page widths, and the scroll / client
    widths of every ``.tablewrap`` box, CSS px)."""
    page = Path(path).read_text(encoding="utf-8")
    probed = tmp / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    cmd = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000",
        "--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    if not m:
        raise RuntimeError(f"chromium printed no probe result (rc={proc.returncode}): "
                           f"{proc.stderr[-500:]}")
    import html as _html

    result = json.loads(_html.unescape(m.group(1)))
    result["stderr_errors"] = [ln for ln in proc.stderr.splitlines()
                               if "CONSOLE" in ln and ("error" in ln.lower())]
    return result
