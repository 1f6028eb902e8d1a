"""
Who is in the gateway cluster, as the group protocol carries it: each
member's description (a L{Member}, defined with the node's other seams) and
the roster the group leader hands out.
"""

from __future__ import annotations

import json

from kgateway.interfaces import Member

__all__ = ["Member", "decode_member", "decode_roster", "encode_member", "encode_roster"]


def encode_member(member: Member) -> bytes:
    """A member's self-description, carried in its group subscription."""
    return json.dumps(member.to_json(), sort_keys=True).encode()


def decode_member(data: bytes, member_id: str) -> Member:
    """Read a member's self-description and stamp it with its coordinator-given id."""
    raw = json.loads(data.decode())
    raw["member_id"] = member_id
    return Member.from_json(raw)


def encode_roster(members: list[Member]) -> bytes:
    """The roster the leader hands every member."""
    return json.dumps([m.to_json() for m in sorted(members)], sort_keys=True).encode()


def decode_roster(data: bytes) -> list[Member]:
    """Read the roster from an assignment."""
    return [Member.from_json(item) for item in json.loads(data.decode())]
