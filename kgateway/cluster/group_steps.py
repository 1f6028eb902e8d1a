"""
The gateway group's network steps, one Kafka exchange each: find the
coordinator, join, sync, heartbeat, leave.

Each step returns what it learnt or raises (L{Rebalance} when the group
wants everyone to join again, L{KafkaRequestError} or a connection error
otherwise); the machine in L{kgateway.cluster.membership} decides what comes
next.  The one thing a step writes is the L{GroupSession}'s member id, as the
coordinator hands it out, so a leave sent while a join is still open names
the member the coordinator knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kafka.protocol.consumer import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import FindCoordinatorRequest
from twisted.internet.defer import CancelledError

from kgateway.cluster.kafka_client import KafkaClientProtocol, KafkaRequestError
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.roster import decode_member, decode_roster, encode_member, encode_roster
from kgateway.cluster.topics import ensure_topic
from kgateway.interfaces import Member
from kgateway.net import HostPort
from kgateway.protocol.error_codes import ErrorCode

PROTOCOL_TYPE = "consumer"
PROTOCOL_NAME = "kgateway-roster"

#: FindCoordinator's key type for a consumer group (1 would be a transaction).
GROUP_KEY = 0

#: SyncGroup and Heartbeat answers that mean: join again.
_REJOIN = (
    ErrorCode.REBALANCE_IN_PROGRESS,
    ErrorCode.ILLEGAL_GENERATION,
    ErrorCode.UNKNOWN_MEMBER_ID,
)


class Rebalance(Exception):
    """The group is rebalancing: join again."""


@dataclass
class LicenseTopic:
    """The topic the group subscribes to; created (once per node) before its first join."""

    name: str
    #: Asked when creating it: the Kafka cluster may have grown since the node started.
    replication_factor: Callable[[], int]
    exists: bool = False

    async def ensure(self, client: KafkaClientProtocol) -> None:
        """Create the topic through C{client} unless this node already saw it exist."""
        if not self.exists:
            await ensure_topic(client, self.name, self.replication_factor(), "license topic")
            self.exists = True


@dataclass
class GroupSession:
    """What this member's group requests carry, and the identity the coordinator gives it."""

    group_id: str
    myself: Member
    license: LicenseTopic
    session_timeout_ms: int = 10000
    member_id: str = ""
    generation: int = -1

    def join_wait(self, link: KafkaLink) -> float:
        """How long a join or sync may take: the coordinator holds it for a rebalance."""
        return self.session_timeout_ms / 1000 + link.timeout_seconds


@dataclass(frozen=True)
class Joined:
    """A completed JoinGroup: this member's generation, id, and (for the leader) the members."""

    generation: int
    member_id: str
    leader: str
    members: list[Member] = field(default_factory=list)

    @property
    def leading(self) -> bool:
        """Whether this member is the one that hands out the roster."""
        return self.leader == self.member_id


async def find_coordinator(link: KafkaLink, session: GroupSession) -> KafkaClientProtocol:
    """A connection to the group coordinator, asked of each bootstrap server in turn."""
    errors = []
    for address in link.addresses():
        try:
            client = await link.open(address)
        except CancelledError:
            raise
        except Exception as e:
            errors.append(f"{address}: {e}")
            continue
        try:
            await session.license.ensure(client)
            version = client.version_for(FindCoordinatorRequest.API_KEY, 3, 1)
            response = await client.request(
                FindCoordinatorRequest[version](key=session.group_id, key_type=GROUP_KEY)
            )
        finally:
            client.close()
        if response.error_code != ErrorCode.NONE:
            raise KafkaRequestError(
                f"FindCoordinator: error {response.error_code}", response.error_code
            )
        return await link.open(HostPort(response.host, response.port))
    raise KafkaRequestError("no bootstrap server answered: " + "; ".join(errors))


def _subscription(session: GroupSession) -> bytes:
    subscription = ConsumerProtocolSubscription(
        version=1,
        topics=[session.license.name],
        user_data=encode_member(session.myself),
        owned_partitions=[],
    )
    return bytes(subscription.encode())


async def join(client: KafkaClientProtocol, session: GroupSession, link: KafkaLink) -> Joined:
    """JoinGroup, again with the id the coordinator asks for, until it completes."""
    version = client.version_for(JoinGroupRequest.API_KEY, 7, 4)
    request = JoinGroupRequest[version]
    while True:
        answer = client.request(
            request(
                group_id=session.group_id,
                session_timeout_ms=session.session_timeout_ms,
                rebalance_timeout_ms=session.session_timeout_ms,
                member_id=session.member_id,
                group_instance_id=None,
                protocol_type=PROTOCOL_TYPE,
                protocols=[
                    request.JoinGroupRequestProtocol(
                        name=PROTOCOL_NAME, metadata=_subscription(session)
                    )
                ],
            )
        )
        # The coordinator holds a join until every member rejoined (at most the
        # rebalance timeout); past that and a margin, it is not answering.
        answer.addTimeout(session.join_wait(link), link.clock)
        response = await answer
        if response.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            session.member_id = response.member_id
            continue
        if response.error_code == ErrorCode.UNKNOWN_MEMBER_ID:
            session.member_id = ""
            continue
        if response.error_code != ErrorCode.NONE:
            raise KafkaRequestError(f"JoinGroup: error {response.error_code}", response.error_code)
        break
    members = []
    for member in response.members:
        subscription = ConsumerProtocolSubscription.decode(bytes(member.metadata))
        members.append(decode_member(bytes(subscription.user_data), member.member_id))
    return Joined(response.generation_id, response.member_id, response.leader, members)


async def sync(
    client: KafkaClientProtocol, session: GroupSession, link: KafkaLink, joined: Joined
) -> list[Member]:
    """SyncGroup: the leader hands every member the roster; every member gets it back."""
    version = client.version_for(SyncGroupRequest.API_KEY, 4, 0)
    request = SyncGroupRequest[version]
    assignments = []
    if joined.leading:
        roster = encode_roster(joined.members)
        for index, member in enumerate(sorted(joined.members)):
            # The license topic's one partition goes to one member, as a
            # consumer group would assign it; every member gets the roster.
            owned = [(session.license.name, [0])] if index == 0 else []
            assignment = ConsumerProtocolAssignment(
                version=1, assigned_partitions=owned, user_data=roster
            )
            assignments.append(
                request.SyncGroupRequestAssignment(
                    member_id=member.member_id, assignment=bytes(assignment.encode())
                )
            )
    answer = client.request(
        request(
            group_id=session.group_id,
            generation_id=session.generation,
            member_id=session.member_id,
            group_instance_id=None,
            protocol_type=PROTOCOL_TYPE,
            protocol_name=PROTOCOL_NAME,
            assignments=assignments,
        )
    )
    # Followers wait for the leader's assignment, at most a rebalance timeout.
    answer.addTimeout(session.join_wait(link), link.clock)
    response = await answer
    _check_generation(session, "SyncGroup", response.error_code)
    assignment = ConsumerProtocolAssignment.decode(bytes(response.assignment))
    return decode_roster(bytes(assignment.user_data))


async def heartbeat(client: KafkaClientProtocol, session: GroupSession, link: KafkaLink) -> None:
    """Tell the coordinator this member is alive; L{Rebalance} if the group wants a new round."""
    version = client.version_for(HeartbeatRequest.API_KEY, 4, 0)
    answer = client.request(
        HeartbeatRequest[version](
            group_id=session.group_id,
            generation_id=session.generation,
            member_id=session.member_id,
            group_instance_id=None,
        )
    )
    answer.addTimeout(link.timeout_seconds, link.clock)
    response = await answer
    _check_generation(session, "Heartbeat", response.error_code)


def _check_generation(session: GroupSession, api: str, error_code: int) -> None:
    """Act on the errors SyncGroup and Heartbeat share: rejoin, or fail."""
    if error_code == ErrorCode.UNKNOWN_MEMBER_ID:
        # The coordinator forgot us (session expired): join afresh.
        session.member_id = ""
    if error_code in _REJOIN:
        raise Rebalance()
    if error_code != ErrorCode.NONE:
        raise KafkaRequestError(f"{api}: error {error_code}", error_code)


async def leave(client: KafkaClientProtocol, session: GroupSession, link: KafkaLink) -> None:
    """LeaveGroup, so the others rebalance at once instead of after the session timeout."""
    version = client.version_for(LeaveGroupRequest.API_KEY, 4, 0)
    request = LeaveGroupRequest[version]
    if version >= 3:
        message = request(
            group_id=session.group_id,
            members=[request.MemberIdentity(member_id=session.member_id, group_instance_id=None)],
        )
    else:
        message = request(group_id=session.group_id, member_id=session.member_id)
    answer = client.request(message)
    # Leaving is a courtesy: a node that is stopping does not wait long for it.
    answer.addTimeout(min(link.timeout_seconds, 5.0), link.clock)
    await answer
