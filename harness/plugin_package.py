"""
Build a plugin distribution's wheel and install it into a directory of its
own, the way an operator adds a third-party interceptor next to kgateway.

Used by the tests of the example plugin (C{tests/example_plugin}): the
directory goes on a process's C{PYTHONPATH}, after the source tree, like a
second site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness import REPO_ROOT

#: The example interceptor plugin, a distribution of its own.
EXAMPLE_PLUGIN = REPO_ROOT / "tests" / "example_plugin"


class PluginPackageError(RuntimeError):
    """pip could not build or install the plugin; the message has pip's own words."""


def _pip(*args: str) -> None:
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", *args],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as e:
        raise PluginPackageError(
            f"pip {args[0]} failed ({e.returncode}): {e.stderr.decode(errors='replace')[-2000:]}"
        ) from None


def build_wheel(source: Path, into: Path) -> Path:
    """
    Build C{source}'s wheel into C{into} and return it.

    pip builds in isolation, so setuptools comes from PyPI (the only network
    it needs).  The source is copied first, so build/ and *.egg-info never
    land in the repository, and Twisted's dropin.cache never in the wheel.
    """
    copy = into / f"{source.name}-source"
    shutil.copytree(
        source,
        copy,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "dropin.cache", "__pycache__"),
    )
    _pip("wheel", "--no-deps", "-q", "-w", str(into), str(copy))
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise PluginPackageError(f"expected one wheel in {into}, found {wheels}")
    return wheels[0]


def install_wheel(wheel: Path, target: Path) -> Path:
    """Install C{wheel} (not its dependencies) into C{target}, for C{PYTHONPATH}."""
    _pip("install", "--no-deps", "-q", "--target", str(target), str(wheel))
    return target
