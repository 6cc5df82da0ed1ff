"""How tests run the real `provision` console script (a module of its own: both conftest.py files share
the module name `conftest`, so nothing may be imported from one)."""

from __future__ import annotations

import sys
from pathlib import Path


def provision_command() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provision.cli"]
