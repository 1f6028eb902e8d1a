"""The marked /etc/hosts block of the SNI tests, on a file of the test's own."""

from __future__ import annotations

import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from harness.hosts_file import HostsBlock

ORIGINAL = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"


class HostsBlockTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        self.path.write_text(ORIGINAL)

    def test_add_and_remove(self) -> None:
        block = HostsBlock({"broker-1.gw.test": "127.0.0.2", "gw.test": "127.0.0.2"}, self.path)
        with block:
            text = self.path.read_text()
            self.assertTrue(text.startswith(ORIGINAL))
            self.assertIn("127.0.0.2 broker-1.gw.test\n", text)
            self.assertIn("127.0.0.2 gw.test\n", text)
        self.assertEqual(self.path.read_text(), ORIGINAL)
        block.remove()  # twice: nothing more
        self.assertEqual(self.path.read_text(), ORIGINAL)

    def test_two_blocks_keep_each_other(self) -> None:
        one = HostsBlock({"a.test": "127.0.0.2"}, self.path).add()
        two = HostsBlock({"b.test": "127.0.0.3"}, self.path).add()
        one.remove()
        text = self.path.read_text()
        self.assertNotIn("a.test", text)
        self.assertIn("127.0.0.3 b.test", text)
        two.remove()
        self.assertEqual(self.path.read_text(), ORIGINAL)

    def test_a_dead_owners_block_goes(self) -> None:
        """A block left by a process that died is removed by the next one added."""
        dead = subprocess.Popen(["true"])
        dead.wait()
        self.path.write_text(
            ORIGINAL
            + f"# kgateway-test begin old pid={dead.pid}\n127.0.0.9 stale.test\n"
            + "# kgateway-test end old\n"
        )
        with HostsBlock({"new.test": "127.0.0.2"}, self.path):
            text = self.path.read_text()
            self.assertNotIn("stale.test", text)
            self.assertIn("new.test", text)
        self.assertEqual(self.path.read_text(), ORIGINAL)
