"""Render an HTML file to PNG with headless Chromium (to look at a report as a reader will)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from augframe.errors import AugframeError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
ENV = "AUGFRAME_CHROMIUM"


class ChromiumNotFound(AugframeError, FileNotFoundError):
    """No Chromium/Chrome executable was found."""


def find_chromium() -> str | None:
    """The browser named by $AUGFRAME_CHROMIUM, else the first Chromium/Chrome on PATH, else None."""
    env = os.environ.get(ENV)
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: str | os.PathLike[str], png_path: str | os.PathLike[str], *, width: int = 1280,
               height: int = 2400, timeout: float = 120.0) -> Path:
    """Write a ``width`` x ``height`` PNG of the page's top (a local file, no network)."""
    browser = find_chromium()
    if browser is None:
        raise ChromiumNotFound(
            "no Chromium found to render the report; install it (Debian: apt-get install -y chromium) or set "
            f"{ENV} to the browser executable"
        )
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    if not html_path.is_file():
        raise AugframeError(f"report page {html_path} does not exist")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_png = png_path.with_name(f".{png_path.name}.tmp.png")
    with tempfile.TemporaryDirectory(prefix="augframe-chromium-") as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={profile}", f"--window-size={int(width)},{int(height)}",
            f"--screenshot={tmp_png}", html_path.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not tmp_png.is_file():
        raise AugframeError(f"Chromium failed to render {html_path} (exit {proc.returncode}): {proc.stderr[-800:]}")
    os.replace(tmp_png, png_path)
    return png_path
