"""Direct checks of the gateway peers, on a fake clock against fake peer ports."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.peer_checks import PeerChecks
from kgateway.cluster.roster import Member
from kgateway.net import HostPort
from tests.unit.cluster.fake_peers import HANG_UP, REFUSE, SILENT, FakePeers, advance
from tests.unit.relay.fakes import catch_logs

INTERVAL = 0.25
TIMEOUT = 0.75


def peer(n: int) -> Member:
    return Member(f"n{n}", f"gw{n}.test", 19000 + 100 * n, 3, 1, member_id=f"member-{n}")


def first_port(n: int) -> HostPort:
    return HostPort(f"gw{n}.test", 19000 + 100 * n)


class PeerCheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.peers = FakePeers()
        self.logs = catch_logs(self)
        self.changes = 0
        self.checks = PeerChecks(
            "n1", self.clock, self.peers.connect, interval_seconds=INTERVAL, timeout_seconds=TIMEOUT
        )

        def changed() -> None:
            self.changes += 1

        self.checks.on_change = changed
        self.addCleanup(self.checks.stop)

    def advance(self, seconds: float) -> None:
        advance(self.clock, self.peers, seconds)

    def lines(self, text: str) -> list[str]:
        return [line for line in self.logs() if text in line]

    def test_an_answering_peer_is_checked_on_one_connection(self) -> None:
        """A peer that answers stays up: four checks a second, one connection, never itself."""
        self.checks.watch([peer(1), peer(2)])
        self.advance(1.0 - 0.001)
        self.assertEqual(self.peers.attempts, [first_port(2)])
        self.assertEqual(self.peers.asked, [first_port(2)] * 4)
        # A peer's connection list tells the checks from its clients.
        self.assertEqual(self.peers.client_ids, {"kgateway-peer-check"})
        self.assertEqual(self.checks.down(), frozenset())
        [health] = self.checks.health()
        self.assertEqual((health.node_name, health.up, health.misses), ("n2", True, 0))
        self.assertIsNotNone(health.round_trip_ms)
        self.assertEqual(self.changes, 0)

    def test_a_killed_peer_is_down_after_two_refusals_and_back_when_it_answers(self) -> None:
        """Refused twice in a row: down at once (one line, why), and up on its next answer."""
        self.checks.watch([peer(1), peer(2)])
        self.advance(0.3)
        self.peers.hosts["gw2.test"] = REFUSE
        self.peers.servers[0].wire.loseConnection()  # the process died: its connection closes
        self.advance(0.25)
        self.assertEqual(self.checks.down(), frozenset(), "one refusal is not down")
        self.advance(0.25)
        # Its next check was refused, and the one after it, on its next port.
        self.assertEqual(self.checks.down(), frozenset({"n2"}))
        self.assertEqual(self.changes, 1)
        [line] = self.lines("is down")
        self.assertIn("Gateway peer n2 at gw2.test:19201 is down: connection refused", line)
        self.assertIn("(2 checks in a row)", line)

        self.advance(2.0)
        self.assertEqual(len(self.lines("is down")), 1)
        self.peers.hosts.clear()
        self.advance(INTERVAL)
        self.assertEqual(self.checks.down(), frozenset())
        self.assertEqual(self.changes, 2)
        [back] = self.lines("answers again")
        self.assertIn("Gateway peer n2 at gw2.test:", back)

    def test_a_stopped_peer_times_out_with_one_check_outstanding(self) -> None:
        """A peer that never answers: one check at a time, down after two timeouts."""
        self.checks.watch([peer(1), peer(2)])
        self.advance(0.1)
        self.peers.hosts["gw2.test"] = SILENT
        self.advance(0.2)  # the check due at 0.25 is asked, and never answered
        asked = len(self.peers.asked)
        self.advance(TIMEOUT - 0.1)
        self.assertEqual(len(self.peers.asked), asked, "a second check while one is outstanding")
        self.assertEqual(self.checks.down(), frozenset())
        self.advance(0.1 + TIMEOUT)
        self.assertEqual(self.checks.down(), frozenset({"n2"}))
        [line] = self.lines("is down")
        self.assertIn("no answer within 750 ms (2 checks in a row)", line)
        # Each failed check hung up: at most one connection open.
        self.assertLessEqual(self.peers.open(), 1)

    def test_this_nodes_own_late_loop_is_not_a_peer_down(self) -> None:
        """The deadline fires long after it was due (this node was starved): no miss."""
        self.checks.watch([peer(1), peer(2)])
        # The first check is asked; before its answer is read the loop stalls for 3 s.
        self.clock.advance(3.0)
        self.peers.flush()
        [health] = self.checks.health()
        self.assertEqual((health.up, health.misses, health.reason), (True, 0, ""))
        # Not failed and retried: a miss would have hung up and gone to the next port.
        self.assertEqual(self.peers.attempts, [first_port(2)])
        self.assertEqual(self.lines("is down"), [])
        # And the checks go on as before.
        self.advance(1.0)
        self.assertEqual(self.checks.down(), frozenset())

    def test_a_port_whose_broker_is_down_is_not_the_peer_down(self) -> None:
        """A port that hangs up (its broker is down): the next check goes to the next port."""
        self.peers.modes[first_port(2)] = HANG_UP
        self.checks.watch([peer(1), peer(2)])
        self.advance(3.0)
        self.assertEqual(self.checks.down(), frozenset())
        self.assertEqual(self.lines("is down"), [])
        self.assertIn(HostPort("gw2.test", 19201), self.peers.asked)

    def test_a_peer_leaving_the_roster_is_no_longer_checked(self) -> None:
        """watch() starts checks for new peers and stops those of peers gone."""
        self.checks.watch([peer(1), peer(2)])
        self.advance(0.5)
        self.checks.watch([peer(1), peer(3)])
        self.peers.flush()
        self.assertEqual(self.peers.open(), 1)
        asked = len(self.peers.asked)
        self.advance(1.0)
        self.assertEqual({a.host for a in self.peers.asked[asked:]}, {"gw3.test"})
        self.assertEqual([h.node_name for h in self.checks.health()], ["n3"])

    def test_a_new_member_id_keeps_the_check(self) -> None:
        """The same node rejoined (a new member id): its check and its state go on."""
        self.peers.hosts["gw2.test"] = REFUSE
        self.checks.watch([peer(1), peer(2)])
        self.advance(0.3)
        self.assertEqual(self.checks.down(), frozenset({"n2"}))
        rejoined = Member("n2", "gw2.test", 19200, 3, 1, member_id="member-9")
        self.checks.watch([peer(1), rejoined])
        self.assertEqual(self.checks.down(), frozenset({"n2"}))

    def test_stop_cancels_everything(self) -> None:
        """Stopped: nothing due, nothing open, nothing asked later."""
        self.checks.watch([peer(1), peer(2), peer(3)])
        self.advance(0.5)
        self.checks.stop()
        self.peers.flush()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.peers.open(), 0)
        asked = len(self.peers.asked)
        self.advance(2.0)
        self.assertEqual(len(self.peers.asked), asked)
        self.checks.watch([peer(2)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
