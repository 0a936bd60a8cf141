"""Render report pages with headless Chromium: a PNG to look at, a PDF to print or archive.

Chromium is found as ``HEDUI_CHROMIUM`` or on the PATH (Debian: ``apt-get install chromium
fonts-noto-cjk``). Each call uses a throw-away profile, so parallel calls do not collide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--hide-scrollbars", "--no-first-run", "--disable-extensions")


class BrowserMissing(RuntimeError):
    """No Chromium to render with: say how to get one."""


def find_chromium() -> str:
    configured = os.environ.get("HEDUI_CHROMIUM")
    if configured:
        if not Path(configured).exists():
            raise BrowserMissing(f"HEDUI_CHROMIUM={configured} does not exist")
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing("no headless Chromium found (tried " + ", ".join(CANDIDATES) + "); "
                         "install it (Debian: apt-get install chromium fonts-noto-cjk) or set "
                         "HEDUI_CHROMIUM to its path")


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    """``page`` as it looks in a ``width`` × ``height`` window, saved to ``png``."""
    return _run(page, png, f"--screenshot={png}", f"--window-size={width},{height}")


def print_pdf(page: Path, pdf: Path) -> Path:
    """``page`` printed to PDF with its print stylesheet (A4, no browser header or footer)."""
    return _run(page, pdf, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")


def _run(page: Path, out: Path, *options: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hedui-chromium-") as profile:
        done = subprocess.run(  # noqa: S603 (fixed program, our own file arguments)
            [find_chromium(), *_FLAGS, f"--user-data-dir={profile}", *options,
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    if not out.exists() or out.stat().st_size == 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"Chromium wrote no {out.name} (exit {done.returncode}): "
                           + " | ".join(tail))
    return out
