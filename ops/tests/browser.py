"""How the browser tests (and docs/make_screenshots.py) start Debian's Chromium."""

from __future__ import annotations

import os

CHROMIUM = "/usr/bin/chromium"
# No sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
# The rest keeps a headless run from phoning home or updating itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def launch_args() -> dict:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
