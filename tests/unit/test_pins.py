"""
The constraints files agree with pyproject.toml.

C{constraints/minimum.txt} is the floor of every runtime dependency (tox's C{unit-oldest}
env), C{constraints/dev.txt} pins the tools of the C{dev} extra: a floor raised in
pyproject.toml without its pin (or a tool added to the extra without one) fails here, not in a
user's install.
"""

import re
import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def normalized(name: str) -> str:
    """The name as PyPI compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(requirements: list[str]) -> dict[str, str]:
    """C{name: version} of each requirement's C{>=} bound."""
    found: dict[str, str] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match is not None, requirement
        floor = re.search(r">=\s*([0-9][0-9.]*)", match.group(2))
        assert floor is not None, f"{requirement} has no >= floor"
        found[normalized(match.group(1))] = floor.group(1)
    return found


def pins(path: Path) -> dict[str, str]:
    """C{name: version} of a constraints file's C{name==version} lines."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[normalized(name)] = version.strip()
    return found


def release(version: str) -> tuple[int, ...]:
    """C{"24.8.1"} as C{(24, 8, 1)}."""
    return tuple(int(part) for part in version.split("."))


class PinsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def test_minimum_is_every_runtime_floor(self) -> None:
        """Each pin is its floor's release, or that release's first patch that exists."""
        wanted = floors(self.project["dependencies"])
        pinned = pins(ROOT / "constraints" / "minimum.txt")
        self.assertEqual(sorted(pinned), sorted(wanted))
        for name, floor in wanted.items():
            pin = release(pinned[name])
            self.assertEqual(pin[: len(release(floor))], release(floor), name)

    def test_dev_tools_are_pinned_at_or_above_their_floor(self) -> None:
        wanted = floors(self.project["optional-dependencies"]["dev"])
        pinned = pins(ROOT / "constraints" / "dev.txt")
        for name, floor in wanted.items():
            self.assertIn(name, pinned)
            self.assertGreaterEqual(release(pinned[name]), release(floor), name)
