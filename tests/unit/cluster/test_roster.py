"""Members and the roster as they travel in group subscriptions and assignments."""

from __future__ import annotations

import json
from dataclasses import replace

from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.roster import (
    Member,
    decode_member,
    decode_roster,
    encode_member,
    encode_roster,
)
from kgateway.interfaces import AdvertisedListener

ALICE = Member(
    node_name="alice",
    host="gw-a.example",
    port_start=19092,
    port_count=3,
    min_broker_id=1,
    rack="r1",
    joined_at=1700000000.5,
)
BOB = Member(node_name="bob", host="gw-b.example", port_start=29092, port_count=5, min_broker_id=0)


class PortForTests(SynchronousTestCase):
    def test_inside_the_plan(self) -> None:
        self.assertEqual(ALICE.port_for(1), 19092)
        self.assertEqual(ALICE.port_for(2), 19093)
        self.assertEqual(ALICE.port_for(3), 19094)

    def test_outside_the_plan(self) -> None:
        self.assertIsNone(ALICE.port_for(0))  # below the lowest broker id
        self.assertIsNone(ALICE.port_for(4))  # one past the last port
        self.assertIsNone(ALICE.port_for(-1))

    def test_from_broker_id_zero(self) -> None:
        self.assertEqual(BOB.port_for(0), 29092)
        self.assertEqual(BOB.port_for(4), 29096)
        self.assertIsNone(BOB.port_for(5))

    def test_no_ports(self) -> None:
        self.assertIsNone(Member("n", "h", 19092, 0, 1).port_for(1))


class EncodingTests(SynchronousTestCase):
    def test_member_round_trip_stamps_the_member_id(self) -> None:
        """A subscription carries the self-description; the coordinator's id is added on read."""
        data = encode_member(ALICE)
        self.assertNotIn(b"member-7", data)
        decoded = decode_member(data, "member-7")
        self.assertEqual(decoded, replace(ALICE, member_id="member-7"))
        self.assertEqual(decoded.rack, "r1")
        self.assertEqual(decoded.joined_at, 1700000000.5)

    def test_member_without_rack(self) -> None:
        self.assertIsNone(decode_member(encode_member(BOB), "m").rack)

    def test_roster_round_trip_sorted(self) -> None:
        """The roster is encoded in a fixed order, so every member reads the same list."""
        members = [decode_member(encode_member(m), f"id-{m.node_name}") for m in (BOB, ALICE)]
        data = encode_roster(members)
        self.assertEqual(decode_roster(data), sorted(members))
        self.assertEqual([m.node_name for m in decode_roster(data)], ["alice", "bob"])
        self.assertEqual(encode_roster(list(reversed(members))), data)

    def test_empty_roster(self) -> None:
        self.assertEqual(decode_roster(encode_roster([])), [])

    def test_unknown_keys_are_ignored(self) -> None:
        """A newer node's extra fields do not stop an older node reading it."""
        newer = {**ALICE.to_json(), "zone": "eu-1", "weight": 3}
        self.assertEqual(Member.from_json(newer), ALICE)
        self.assertEqual(decode_member(json.dumps(newer).encode(), "m").node_name, "alice")
        roster = json.dumps([newer, {**BOB.to_json(), "tls": True}]).encode()
        self.assertEqual(decode_roster(roster), [ALICE, BOB])

    def test_missing_optional_keys_take_defaults(self) -> None:
        """An older node's description, without rack or join time, still reads."""
        older = {"node_name": "old", "host": "h", "port_start": 1, "port_count": 2}
        older["min_broker_id"] = 0
        member = decode_member(json.dumps(older).encode(), "m-1")
        self.assertEqual(member, Member("old", "h", 1, 2, 0, None, 0.0, "m-1"))


class ListenerTests(SynchronousTestCase):
    """Each member carries its listeners; an older node's member has one, DEFAULT."""

    TWO = Member(
        node_name="carol",
        host="gw-c.internal",
        port_start=7000,
        port_count=4,
        min_broker_id=1,
        listeners=(
            AdvertisedListener("INTERNAL", "gw-c.internal", 7000, 4),
            AdvertisedListener("EXTERNAL", "kafka.example.com", 9000, 8),
        ),
    )

    def test_round_trip_with_listeners(self) -> None:
        data = encode_member(self.TWO)
        self.assertEqual(decode_member(data, "m"), replace(self.TWO, member_id="m"))
        self.assertEqual(decode_roster(encode_roster([self.TWO, ALICE])), [ALICE, self.TWO])

    def test_ports_per_listener(self) -> None:
        self.assertEqual(self.TWO.port_for(2), 7001)  # the first listener's
        self.assertEqual(self.TWO.port_for(2, "INTERNAL"), 7001)
        self.assertEqual(self.TWO.port_for(8, "EXTERNAL"), 9007)
        self.assertIsNone(self.TWO.port_for(8, "INTERNAL"))  # off its 4 ports
        self.assertIsNone(self.TWO.port_for(2, "DEFAULT"))  # no such listener
        self.assertEqual(self.TWO.listener("EXTERNAL"), self.TWO.listeners[1])

    def test_an_older_member_has_one_listener_default(self) -> None:
        """What an older node sent (no listeners key) reads as its host and ports, DEFAULT."""
        older = {k: v for k, v in ALICE.to_json().items() if k != "listeners"}
        member = decode_member(json.dumps(older).encode(), "m-1")
        self.assertEqual(member.listeners, ())
        self.assertEqual(
            member.every_listener(), (AdvertisedListener("DEFAULT", "gw-a.example", 19092, 3),)
        )
        self.assertEqual(member.port_for(2, "DEFAULT"), 19093)
        self.assertIsNone(member.port_for(2, "EXTERNAL"))

    def test_an_older_node_reads_the_first_listener(self) -> None:
        """The top-level host and ports an older node reads are the first listener's."""
        raw = json.loads(encode_member(self.TWO))
        self.assertEqual(
            (raw["host"], raw["port_start"], raw["port_count"]), ("gw-c.internal", 7000, 4)
        )
        self.assertEqual(
            raw["listeners"][1],
            {"name": "EXTERNAL", "host": "kafka.example.com", "port_start": 9000, "port_count": 8},
        )
