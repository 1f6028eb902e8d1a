"""Who is in the gateway cluster: members and the roster the group leader hands out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Member:
    """One gateway node as the others see it."""

    node_name: str
    host: str
    port_start: int
    port_count: int
    min_broker_id: int
    rack: str | None = None
    joined_at: float = 0.0
    #: The id the group coordinator gave this member ("" before it joined).
    member_id: str = ""

    def port_for(self, broker_id: int) -> int | None:
        """This node's port for a broker, or None when the id is off its plan."""
        offset = broker_id - self.min_broker_id
        if 0 <= offset < self.port_count:
            return self.port_start + offset
        return None

    def to_json(self) -> dict[str, object]:
        """The member as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Member:
        """Read a member back; unknown keys (from newer nodes) are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)  # type: ignore[arg-type]


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
