"""
A fake Kafka group coordinator for the membership tests.

It reads real request frames with kafka-python's request classes and answers
with its response classes, so the membership code is exercised against the
same bytes a broker would send.  Gateway nodes reach it through the
L{Connector} seam; every connection is an L{iosim} pair pumped by L{flush}.

The group logic is Kafka's, cut down: a JoinGroup with an empty member id
gets MEMBER_ID_REQUIRED and a fresh id; a join round completes when every
known member has sent JoinGroup and there are at least C{expected} of them
(standing in for C{group.initial.rebalance.delay.ms}); the first member to
join is the leader; followers' SyncGroup waits for the leader's assignments;
any join or leave while the group is stable makes heartbeats answer
REBALANCE_IN_PROGRESS until the next round completes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import errors
from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.consumer import (
    ConsumerProtocolAssignment,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect

from kgateway.cluster.roster import Member, decode_roster
from kgateway.net import HostPort
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import request_info

NONE = errors.NoError.errno
UNKNOWN_MEMBER_ID = errors.UnknownMemberIdError.errno
ILLEGAL_GENERATION = errors.IllegalGenerationError.errno
INCONSISTENT_GROUP_PROTOCOL = errors.InconsistentGroupProtocolError.errno
REBALANCE_IN_PROGRESS = errors.RebalanceInProgressError.errno
TOPIC_ALREADY_EXISTS = errors.TopicAlreadyExistsError.errno
MEMBER_ID_REQUIRED = errors.MemberIdRequiredError.errno

#: The request classes the fake understands, by api key.
REQUESTS: dict[int, Any] = {
    cls.API_KEY: cls
    for cls in (
        ApiVersionsRequest,
        FindCoordinatorRequest,
        CreateTopicsRequest,
        JoinGroupRequest,
        SyncGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
    )
}

#: Where the fake says the coordinator is, unless told otherwise.
ADDRESS = HostPort("coordinator", 9093)

#: What one request is recorded as: (node, api name, member id / group / topic).
Seen = tuple[str, str, str]


@dataclass(frozen=True)
class Reply:
    """Where and how to answer one request."""

    connection: CoordinatorConnection
    correlation_id: int
    version: int


class CoordinatorConnection(Protocol):
    """The coordinator's side of one connection from a gateway node."""

    def __init__(self, coordinator: FakeGroupCoordinator, node: str) -> None:
        self.coordinator = coordinator
        self.node = node
        self.reader = FrameReader()
        self.lost = False
        self.wire: FakeTransport

    def dataReceived(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            info = request_info(frame)
            cls = REQUESTS[info.api_key]
            request = cls.decode(memoryview(frame)[4:], version=info.api_version, header=True)
            self.coordinator.received(Reply(self, info.correlation_id, info.api_version), request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True


class FakeGroupCoordinator:
    """A broker that is bootstrap server and group coordinator at once."""

    def __init__(self, address: HostPort = ADDRESS, expected: int = 1) -> None:
        self.address = address
        #: How many members the first join round waits for.
        self.expected = expected
        #: Every request, as (node, api, member id or key), in arrival order.
        self.seen: list[Seen] = []
        #: Every decoded request, with the node that sent it.
        self.requests: list[tuple[str, Any]] = []
        #: Every connection attempt, as (node, endpoint).
        self.connections: list[tuple[str, HostPort]] = []
        self.servers: list[CoordinatorConnection] = []
        self.pumps: list[IOPump] = []
        #: Versions offered in ApiVersions: those the codec knows, unless changed.
        self.api_versions: dict[int, tuple[int, int]] = {
            key: cls._valid_versions for key, cls in REQUESTS.items()
        }
        #: Nodes whose connection attempts are refused.
        self.refusing: set[str] = set()
        self.find_coordinator_error = NONE
        self.create_topics_error = NONE
        self.topics: set[str] = set()
        #: Responses to these APIs (by name) are kept in C{held} instead of being sent.
        self.holding: set[str] = set()
        self.held: list[tuple[Reply, Any]] = []

        self.generation = 0
        self.leader = ""
        self.protocol_name = ""
        #: Known member ids and their subscription metadata, in join order.
        self.members: dict[str, bytes] = {}
        #: Ids handed out with MEMBER_ID_REQUIRED, not yet used to join.
        self.issued: set[str] = set()
        self.joining: dict[str, Reply] = {}
        self.syncing: dict[str, Reply] = {}
        self.assignments: dict[str, bytes] | None = None
        self.rebalancing = False
        self._next_member = 1

    # The connector seam -------------------------------------------------------

    def connector(self, node: str) -> Any:
        """A L{Connector} for one gateway node; its requests are recorded under C{node}."""

        def connect_node(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            self.connections.append((node, endpoint))
            if node in self.refusing:
                return fail(ConnectionRefusedError(str(endpoint)))
            client = factory.buildProtocol(None)
            assert isinstance(client, Protocol)
            server = CoordinatorConnection(self, node)
            server.wire = FakeTransport(server, isServer=True)
            self.servers.append(server)
            self.pumps.append(
                connect(
                    server,
                    server.wire,
                    client,
                    FakeTransport(client, isServer=False),
                    greet=False,
                )
            )
            return succeed(client)

        return connect_node

    def flush(self) -> None:
        """Move bytes over every connection until nothing moves."""
        for _ in range(1000):
            moved = [pump.pump() for pump in self.pumps]
            if not any(moved):
                return
        raise AssertionError("the connections never went quiet")

    def drop(self, node: str) -> None:
        """The coordinator hangs up on every open connection of a node."""
        for server in self.servers:
            if server.node == node and not server.lost:
                server.wire.loseConnection()
        self.flush()

    def release(self) -> None:
        """Stop holding responses and send those held, in order."""
        self.holding = set()
        held, self.held = self.held, []
        for reply, message in held:
            self._send(reply, message)
        self.flush()

    # What the tests read ------------------------------------------------------

    def seen_by(self, node: str) -> list[tuple[str, str]]:
        """The requests from one node, as (api, member id or key)."""
        return [(api, detail) for who, api, detail in self.seen if who == node]

    def assigned_roster(self, member_id: str) -> list[Member]:
        """The roster the leader assigned a member in the current generation."""
        assert self.assignments is not None
        assignment = ConsumerProtocolAssignment.decode(self.assignments[member_id])
        return decode_roster(bytes(assignment.user_data))

    def expire(self, member_id: str) -> None:
        """The session timeout of a member ran out (it crashed)."""
        self._remove([member_id])

    # Requests -----------------------------------------------------------------

    def received(self, reply: Reply, request: Any) -> None:
        name = type(request).__name__.removesuffix("Request")
        handler = getattr(self, "_" + name)
        self.requests.append((reply.connection.node, request))
        handler(reply, request)

    def _record(self, reply: Reply, api: str, detail: str) -> None:
        self.seen.append((reply.connection.node, api, detail))

    def _send(self, reply: Reply, message: Any) -> None:
        if type(message).__name__.removesuffix("Response") in self.holding:
            self.held.append((reply, message))
            return
        wire = reply.connection.wire
        if reply.connection.lost or wire.disconnecting:
            return
        wire.write(encode_response(message, reply.correlation_id, reply.version))

    def _ApiVersions(self, reply: Reply, request: Any) -> None:
        self._record(reply, "ApiVersions", "")
        keys = [
            ApiVersionsResponse.ApiVersion(api_key=key, min_version=low, max_version=high)
            for key, (low, high) in sorted(self.api_versions.items())
        ]
        self._send(reply, ApiVersionsResponse(error_code=NONE, api_keys=keys, throttle_time_ms=0))

    def _FindCoordinator(self, reply: Reply, request: Any) -> None:
        self._record(reply, "FindCoordinator", request.key)
        assert reply.version < 4, "the fake answers FindCoordinator v0-3 only"
        assert request.key_type == 0
        self._send(
            reply,
            FindCoordinatorResponse(
                throttle_time_ms=0,
                error_code=self.find_coordinator_error,
                error_message=None,
                node_id=1,
                host=self.address.host,
                port=self.address.port,
            ),
        )

    def _CreateTopics(self, reply: Reply, request: Any) -> None:
        (topic,) = request.topics
        self._record(reply, "CreateTopics", topic.name)
        error = self.create_topics_error
        if error == NONE and topic.name in self.topics:
            error = TOPIC_ALREADY_EXISTS
        if error == NONE:
            self.topics.add(topic.name)
        result = CreateTopicsResponse.CreatableTopicResult(
            name=topic.name,
            error_code=error,
            error_message=None if error == NONE else f"fake error {error}",
            num_partitions=-1,
            replication_factor=-1,
            configs=None,
        )
        self._send(reply, CreateTopicsResponse(throttle_time_ms=0, topics=[result]))

    def _JoinGroup(self, reply: Reply, request: Any) -> None:
        member_id = request.member_id
        self._record(reply, "JoinGroup", member_id)
        if request.protocol_type != "consumer":
            self._join_error(reply, INCONSISTENT_GROUP_PROTOCOL, member_id)
            return
        if member_id == "":
            member_id = f"member-{self._next_member}"
            self._next_member += 1
            self.issued.add(member_id)
            self._join_error(reply, MEMBER_ID_REQUIRED, member_id)
            return
        if member_id not in self.members and member_id not in self.issued:
            self._join_error(reply, UNKNOWN_MEMBER_ID, member_id)
            return
        self.issued.discard(member_id)
        self.protocol_name = request.protocols[0].name
        self.members[member_id] = bytes(request.protocols[0].metadata)
        self.joining[member_id] = reply
        self._start_rebalance()
        self._complete_round()

    def _join_error(self, reply: Reply, error: int, member_id: str) -> None:
        self._send(
            reply,
            JoinGroupResponse(
                throttle_time_ms=0,
                error_code=error,
                generation_id=-1,
                protocol_type=None,
                protocol_name=None,
                leader="",
                skip_assignment=False,
                member_id=member_id,
                members=[],
            ),
        )

    def _start_rebalance(self) -> None:
        if self.rebalancing:
            return
        self.rebalancing = True
        # Syncs waiting on the old generation can never complete.
        syncing, self.syncing = self.syncing, {}
        for reply in syncing.values():
            self._sync_answer(reply, REBALANCE_IN_PROGRESS, b"")

    def _complete_round(self) -> None:
        if not self.members or set(self.joining) != set(self.members):
            return
        if len(self.members) < self.expected:
            return
        self.generation += 1
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        self.rebalancing = False
        self.assignments = None
        joining, self.joining = self.joining, {}
        everyone = [
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=member_id, group_instance_id=None, metadata=metadata
            )
            for member_id, metadata in self.members.items()
        ]
        for member_id, reply in joining.items():
            self._send(
                reply,
                JoinGroupResponse(
                    throttle_time_ms=0,
                    error_code=NONE,
                    generation_id=self.generation,
                    protocol_type="consumer",
                    protocol_name=self.protocol_name,
                    leader=self.leader,
                    skip_assignment=False,
                    member_id=member_id,
                    members=everyone if member_id == self.leader else [],
                ),
            )

    def _SyncGroup(self, reply: Reply, request: Any) -> None:
        member_id = request.member_id
        self._record(reply, "SyncGroup", member_id)
        if member_id not in self.members:
            self._sync_answer(reply, UNKNOWN_MEMBER_ID, b"")
        elif self.rebalancing:
            self._sync_answer(reply, REBALANCE_IN_PROGRESS, b"")
        elif request.generation_id != self.generation:
            self._sync_answer(reply, ILLEGAL_GENERATION, b"")
        elif member_id == self.leader and self.assignments is None:
            self.assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
            self._sync_answer(reply, NONE, self.assignments.get(member_id, b""))
            syncing, self.syncing = self.syncing, {}
            for waiting, waiting_reply in syncing.items():
                self._sync_answer(waiting_reply, NONE, self.assignments.get(waiting, b""))
        elif self.assignments is not None:
            self._sync_answer(reply, NONE, self.assignments.get(member_id, b""))
        else:
            self.syncing[member_id] = reply

    def _sync_answer(self, reply: Reply, error: int, assignment: bytes) -> None:
        self._send(
            reply,
            SyncGroupResponse(
                throttle_time_ms=0,
                error_code=error,
                protocol_type="consumer",
                protocol_name=self.protocol_name,
                assignment=assignment,
            ),
        )

    def _Heartbeat(self, reply: Reply, request: Any) -> None:
        member_id = request.member_id
        self._record(reply, "Heartbeat", member_id)
        if member_id not in self.members:
            error = UNKNOWN_MEMBER_ID
        elif self.rebalancing:
            error = REBALANCE_IN_PROGRESS
        elif request.generation_id != self.generation:
            error = ILLEGAL_GENERATION
        else:
            error = NONE
        self._send(reply, HeartbeatResponse(throttle_time_ms=0, error_code=error))

    def _LeaveGroup(self, reply: Reply, request: Any) -> None:
        if reply.version >= 3:
            leaving = [m.member_id for m in request.members]
        else:
            leaving = [request.member_id]
        for member_id in leaving:
            self._record(reply, "LeaveGroup", member_id)
        # As Kafka does: a leaving member's open JoinGroup is answered first.
        self._remove(leaving)
        self._send(
            reply,
            LeaveGroupResponse(
                throttle_time_ms=0,
                error_code=NONE,
                members=[
                    LeaveGroupResponse.MemberResponse(
                        member_id=member_id, group_instance_id=None, error_code=NONE
                    )
                    for member_id in leaving
                ],
            ),
        )

    def _remove(self, leaving: Iterable[str]) -> None:
        for member_id in leaving:
            self.issued.discard(member_id)
            self.syncing.pop(member_id, None)
            pending = self.joining.pop(member_id, None)
            if pending is not None:
                self._join_error(pending, UNKNOWN_MEMBER_ID, member_id)
            if self.members.pop(member_id, None) is not None:
                self.expected = min(self.expected, len(self.members))
                if self.members:
                    self._start_rebalance()
        if not self.members:
            self.rebalancing = False
        self._complete_round()
