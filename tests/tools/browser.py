"""Headless Chromium for the report tests: found on PATH, else installed with apt-get (Debian's
`chromium` package) when running as root; the tests skip with the reason otherwise."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser")


@cache
def chromium() -> str:
    """The Chromium executable, installing it if needed; skips the calling test when there is none."""
    found = _find()
    if found:
        return found
    reason = _install()
    found = _find()
    if not found:
        pytest.skip(f"headless Chromium is needed to render the report and could not be installed: {reason}")
    return found


def _find() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def _install() -> str:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get (install Debian's chromium package)"
    with open(Path(tempfile.gettempdir()) / "aic-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install when test workers race
        if _find():
            return ""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            except subprocess.TimeoutExpired:
                return f"{' '.join(cmd)} timed out"
            if proc.returncode != 0:
                return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    return ""


def headless(*args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with `args` (a URL last)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
