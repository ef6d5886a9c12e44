"""Render an HTML report in headless Chromium, check every image loaded, take a screenshot.

Reusable by any report test::

    from tests._browser import CHROMIUM, render_in_chromium   # or: from _browser import ...

    @pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)
    def test_report(tmp_path):
        info = render_in_chromium(report_html, tmp_path / "shot.png")
        assert info["n_images"] == 5 and not info["broken"]

How it works (no Python dependency beyond the standard library): a copy of the page is
written to a temporary folder with ``<base href>`` pointing at the original folder (so
relative image paths resolve exactly as for the original) and a script that, on the window
``load`` event, records for every ``<img>`` whether ``complete && naturalWidth > 0``, plus the
page title and height, in a ``<pre id="__render_check__">`` element. ``chromium --dump-dom``
prints the DOM after the load event; the marker is parsed from it. A second run takes a
``--screenshot`` of the original page at the measured page height (capped at 16,000 px).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_MISSING", "render_in_chromium"]

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_MISSING = "chromium not installed (Debian: apt-get install chromium)"

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars", "--allow-file-access-from-files"]

_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    title: document.title,
    height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
    viewport: window.innerWidth,
    scroll_width: Math.max(document.body.scrollWidth, document.documentElement.scrollWidth),
    overflowing: Array.prototype.slice.call(document.body.querySelectorAll("*"))
      .filter(function (el) {
        var r = el.getBoundingClientRect();
        return r.width > 0 && r.right > window.innerWidth + 1;
      }).slice(0, 10).map(function (el) {
        return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
          (el.className && typeof el.className === "string" ? "." + el.className : "") +
          " right=" + Math.round(el.getBoundingClientRect().right);
      }),
    images: imgs.map(function (im) {
      return {src: im.getAttribute("src").slice(0, 200), ok: im.complete && im.naturalWidth > 0,
              width: im.naturalWidth, height: im.naturalHeight,
              shown_width: Math.round(im.getBoundingClientRect().width)};
    })
  };
  var pre = document.createElement("pre");
  pre.id = "__render_check__";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _run(args, timeout):
    """Run Chromium in its own process group, and end the whole group afterwards (its
    helper processes, e.g. the crash handler, outlive the browser otherwise)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {stderr[-2000:]}")
    return stdout


def render_in_chromium(html_path, png_path, *, width=1280, timeout=120, chromium=None):
    """Load ``html_path`` in headless Chromium, verify its images, save a screenshot.

    Parameters
    ----------
    html_path : path-like
        The report (images may be relative files or data: URIs).
    png_path : path-like
        Screenshot to write (full page width ``width``, page height).
    width : int
        Window width in CSS pixels.
    timeout : float
        Seconds allowed per Chromium run.
    chromium : str, optional
        Browser executable (default :data:`CHROMIUM`).

    Returns
    -------
    dict
        ``title``, ``height`` (page px), ``images`` (list of dicts ``src, ok, width,
        height`` (natural size), ``shown_width`` (CSS px on the page)), ``n_images``,
        ``broken`` (list of src of images that failed to load), ``viewport`` and
        ``scroll_width`` (CSS px), ``scrolls_sideways`` (the page is wider than the window),
        ``overflowing`` (up to 10 elements whose right edge is past the window, e.g.
        ``"img right=1440"``), ``screenshot`` (path).

    Raises
    ------
    RuntimeError
        Chromium is missing, exits with an error, or the probe did not run.
    """
    exe = chromium or CHROMIUM
    if exe is None:
        raise RuntimeError(CHROMIUM_MISSING)
    html_path = Path(html_path).resolve()
    png_path = Path(png_path).resolve()
    text = html_path.read_text(encoding="utf-8")
    base = f'<base href="{html_path.parent.as_uri()}/">'
    if re.search(r"<head[^>]*>", text, flags=re.I):
        text = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + base, text, count=1, flags=re.I)
    else:
        text = base + text
    if re.search(r"</body>", text, flags=re.I):
        text = re.sub(r"</body>", lambda m: _PROBE + m.group(0), text, count=1, flags=re.I)
    else:
        text += _PROBE
    with tempfile.TemporaryDirectory(prefix="bids_dfc_chromium_") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(text, encoding="utf-8")
        common = [exe, *_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}"]
        dom = _run([*common, "--virtual-time-budget=15000", f"--window-size={width},900",
                    "--dump-dom", probe.as_uri()], timeout)
        found = re.search(r'<pre id="__render_check__">(.*?)</pre>', dom, flags=re.S)
        if not found:
            raise RuntimeError(f"the load probe did not run in {html_path} (page never loaded)")
        info = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<")
                          .replace("&gt;", ">").replace("&amp;", "&"))
        height = min(max(int(info["height"]), 200), 16000)
        png_path.parent.mkdir(parents=True, exist_ok=True)
        _run([*common, "--virtual-time-budget=15000", f"--window-size={width},{height}",
              f"--screenshot={png_path}", html_path.as_uri()], timeout)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png_path}")
    info["n_images"] = len(info["images"])
    info["broken"] = [im["src"] for im in info["images"] if not im["ok"]]
    info["screenshot"] = png_path
    info["scrolls_sideways"] = int(info["scroll_width"]) > int(info["viewport"])
    return info
