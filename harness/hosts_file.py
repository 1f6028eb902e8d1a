"""
Host names for tests, written to C{/etc/hosts} in a marked block and removed afterwards.

Nothing on these machines resolves wildcards, so a test of SNI routing names every
C{broker-N.<suffix>} it needs.  Each L{HostsBlock} is one block between two marker lines
naming its owner's pid; adding a block first removes the blocks of owners that are no
longer running (a test run that was killed), so a crash leaves nothing behind for long.
The file is rewritten in place (it may be a bind mount, which a rename would not replace),
under an exclusive lock, so two test processes never lose each other's lines.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

HOSTS = Path("/etc/hosts")
_BEGIN = "# kgateway-test begin"
_END = "# kgateway-test end"
_BLOCK = re.compile(rf"^{_BEGIN} (?P<key>\S+) pid=(?P<pid>\d+)\n.*?^{_END} (?P=key)\n", re.M | re.S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HostsBlock:
    """Names pointing at addresses, in /etc/hosts while the block is added."""

    def __init__(self, names: Mapping[str, str], path: Path = HOSTS) -> None:
        """@param names: host name -> IPv4 address."""
        self.names = dict(names)
        self.path = path
        self.key = uuid.uuid4().hex[:12]
        self.added = False

    def _rewrite(self, change: str) -> None:
        with open(self.path, "r+", encoding="utf-8") as hosts:
            fcntl.flock(hosts, fcntl.LOCK_EX)
            try:
                text = hosts.read()
                kept = _BLOCK.sub(
                    lambda m: (
                        "" if m["key"] == self.key or not _alive(int(m["pid"])) else m.group(0)
                    ),
                    text,
                )
                if kept and not kept.endswith("\n"):
                    kept += "\n"
                hosts.seek(0)
                hosts.write(kept + change)
                hosts.truncate()
                hosts.flush()
            finally:
                fcntl.flock(hosts, fcntl.LOCK_UN)

    def add(self) -> HostsBlock:
        """Write the block (and drop the blocks of dead owners)."""
        lines = [f"{_BEGIN} {self.key} pid={os.getpid()}"]
        lines += [f"{address} {name}" for name, address in sorted(self.names.items())]
        lines.append(f"{_END} {self.key}")
        self._rewrite("\n".join(lines) + "\n")
        self.added = True
        return self

    def remove(self) -> None:
        """Take the block out again (a second call does nothing)."""
        if self.added:
            self._rewrite("")
            self.added = False

    def __enter__(self) -> HostsBlock:
        return self.add()

    def __exit__(self, *exc: object) -> None:
        self.remove()
