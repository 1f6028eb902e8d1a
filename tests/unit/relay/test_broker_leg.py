"""
The broker leg on its own: an owner that records what it is told, and a
fake broker behind the Connector seam.
"""

from __future__ import annotations

import struct

from automat import NoTransition
from twisted.trial.unittest import SynchronousTestCase

from kgateway.net import HostPort
from kgateway.protocol.framing import Cut, FrameStream
from kgateway.relay.broker_leg import BrokerLeg, BrokerLegOwner, open_broker_leg
from kgateway.relay.transport import Transport
from tests.unit.relay.fakes import (
    FakeBrokers,
    catch_logs,
    list_offsets_response,
)

BROKER = HostPort("b3.kafka", 9094)


class RecordingOwner:
    """Records each event the broker leg reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def broker_ready(self, leg: BrokerLeg, transport: Transport, reader: FrameStream) -> None:
        self.events.append(("ready", transport))

    def responses(self, cut: Cut) -> None:
        self.events.append(("responses", cut.frames))

    def broker_unreachable(self, reason: str, os_error: int) -> None:
        self.events.append(("unreachable", reason))

    def broker_lost(self, reason: str) -> None:
        self.events.append(("lost", reason))


class BrokerLegTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.owner = RecordingOwner()
        # The leg's owner is a typing.Protocol: the recorder provides it structurally.
        owner: BrokerLegOwner = self.owner
        self.assertIs(owner, self.owner)

    def test_ready_gives_the_transport_requests_go_to(self) -> None:
        """
        The leg reports ready once open, with the broker connection's
        transport; the owner writes its requests there (the leg keeps no
        buffer, so nothing can be sent before).
        """
        brokers = FakeBrokers(delayed=True)
        open_broker_leg(BROKER, self.owner, brokers.connect)
        self.assertEqual(self.owner.events, [])

        side = brokers.open_next()
        self.assertEqual(side.endpoint, BROKER)
        self.assertEqual(self.owner.events, [("ready", side.transport)])
        self.assertEqual(side.transport.value(), b"")

    def test_no_frames_pass_through_the_machine(self) -> None:
        """Only the connection's lifecycle is an input; frames go between the protocols."""
        leg = open_broker_leg(BROKER, self.owner, FakeBrokers(delayed=True).connect)
        self.assertFalse(hasattr(leg, "send"))
        self.assertFalse(hasattr(leg, "received"))
        with self.assertRaises(NoTransition):
            leg.lost("not connected yet")  # only a connected leg can lose its connection

    def test_responses_reported_as_whole_frames(self) -> None:
        """Each response is reported once complete, as the pieces it arrived in."""
        brokers = FakeBrokers()
        open_broker_leg(BROKER, self.owner, brokers.connect)
        [side] = brokers.opened
        one, two = list_offsets_response(1), list_offsets_response(2)
        side.answer((one + two)[:5])
        side.answer((one + two)[5:])
        # Every read is reported (the owner counts what is held); frames once whole.
        self.assertEqual(
            self.owner.events[1:], [("responses", []), ("responses", [[one[:5], one[5:]], [two]])]
        )

    def test_connect_failure_reported_with_endpoint(self) -> None:
        open_broker_leg(BROKER, self.owner, FakeBrokers(refuse=True).connect)
        [(event, reason)] = self.owner.events
        # Unreachable, not lost: the owner may try another broker (issue 16).
        self.assertEqual(event, "unreachable")
        self.assertIn(f"cannot connect to broker at {BROKER}", str(reason))

    def test_broker_closing_reported_with_endpoint(self) -> None:
        brokers = FakeBrokers()
        leg = open_broker_leg(BROKER, self.owner, brokers.connect)
        brokers.opened[0].hang_up()
        self.assertEqual(self.owner.events[-1][0], "lost")
        self.assertIn(f"broker {BROKER} closed the connection", str(self.owner.events[-1][1]))
        # Closed: late events change nothing.
        leg.close("late")
        leg.lost("again")
        leg.connect_failed("late", 0)
        self.assertEqual(brokers.opened[0].transport.value(), b"")
        self.assertEqual(len(self.owner.events), 2)

    def test_close_hangs_up_without_reporting_back(self) -> None:
        brokers = FakeBrokers()
        leg = open_broker_leg(BROKER, self.owner, brokers.connect)
        leg.close("client closed")
        self.assertFalse(brokers.opened[0].transport.connected)
        self.assertEqual([event for event, _ in self.owner.events], ["ready"])
        leg.close("again")
        self.assertEqual(brokers.opened[0].transport.value(), b"")

    def test_close_while_connecting_cancels_the_attempt(self) -> None:
        brokers = FakeBrokers(delayed=True)
        leg = open_broker_leg(BROKER, self.owner, brokers.connect)
        leg.close("client closed")
        [(_, _, attempt)] = brokers.waiting
        self.assertTrue(attempt.called)  # cancelled (the leg consumes the CancelledError)
        self.assertEqual(self.owner.events, [])
        # If the connection opens anyway, it is hung up and nothing is sent.
        side = brokers.open_next()
        self.assertFalse(side.transport.connected)
        self.assertEqual(side.transport.value(), b"")
        self.assertEqual(self.owner.events, [])

    def test_bad_frame_from_broker_aborts(self) -> None:
        brokers = FakeBrokers()
        logs = catch_logs(self)
        open_broker_leg(BROKER, self.owner, brokers.connect, max_frame_bytes=100)
        side = brokers.opened[0]
        side.answer(struct.pack(">i", 101))
        self.assertTrue(side.transport.disconnected)
        self.assertEqual(self.owner.events[-1][0], "lost")
        self.assertTrue(any("over the limit of 100 bytes" in line for line in logs()), logs())
