"""
Gateway cluster membership through a Kafka consumer group.

Every node of a gateway cluster joins the consumer group C{GATEWAY_GROUP_ID},
subscribed to the cluster's license topic.  Each member describes itself
(advertised host, ports, rack) in its subscription's user data; the group
leader hands every member the full roster in its assignment's user data.  So
Kafka's group protocol is the only coordination: no other service, no state
on disk.  A clean stop leaves the group at once; a crashed node is dropped by
the coordinator after the session timeout.

The lifecycle (finding the coordinator, joining, syncing, stable, leaving)
is an Automat machine; every network step is an asynchronous call whose
result comes back to the machine as an input.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as TypingProtocol

from automat import TypeMachineBuilder
from kafka.protocol.consumer import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import FindCoordinatorRequest
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from kgateway.cluster.kafka_client import KafkaClientProtocol, KafkaRequestError, open_client
from kgateway.cluster.roster import (
    Member,
    decode_member,
    decode_roster,
    encode_member,
    encode_roster,
)
from kgateway.cluster.topics import ensure_compacted_topic
from kgateway.net import Connector, HostPort

log = Logger()

PROTOCOL_TYPE = "consumer"
PROTOCOL_NAME = "kgateway-roster"

# Kafka error codes the group protocol has to act on.
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79


class Rebalance(Exception):
    """The group is rebalancing: join again."""


class Membership(TypingProtocol):
    """The inputs of the membership machine."""

    def start(self) -> None:
        """Begin: find the coordinator and join."""

    def coordinator_found(self, client: KafkaClientProtocol) -> None:
        """Connected to the group coordinator."""

    def joined(self, generation: int, member_id: str, leader: str, members: list[Member]) -> None:
        """JoinGroup completed."""

    def synced(self, roster: list[Member]) -> None:
        """SyncGroup handed us the roster."""

    def rebalance(self) -> None:
        """The coordinator asked the group to join again."""

    def heartbeat_due(self) -> None:
        """Time to tell the coordinator we are alive."""

    def failed(self, reason: str) -> None:
        """Contact with the coordinator was lost or refused."""

    def retry(self) -> None:
        """The back-off after a failure is over."""

    def stop(self) -> Deferred[None]:
        """Leave the group (at once, if we are in it) and stop."""


@dataclass
class MembershipCore:
    """The state the membership behaviours share."""

    myself: Member
    group_id: str
    license_topic: str
    bootstrap: Callable[[], Sequence[HostPort]]
    connect: Connector
    clock: IReactorTime
    replication_factor: Callable[[], int]
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 250
    retry_seconds: float = 1.0
    request_timeout: float = 10.0
    on_roster: Callable[[list[Member]], None] = lambda roster: None
    client: KafkaClientProtocol | None = None
    member_id: str = ""
    generation: int = -1
    roster: list[Member] = field(default_factory=list)
    #: Incremented on every transition that abandons work in flight, so
    #: answers to abandoned requests are recognised and ignored.
    epoch: int = 0
    timer: IDelayedCall | None = None
    license_ready: bool = False
    rebalances: int = 0

    def cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def drop_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def alone(self) -> None:
        """Out of contact: hand out only ourselves until we rejoin."""
        self.set_roster([self.myself])

    def set_roster(self, roster: list[Member]) -> None:
        if roster != self.roster:
            self.roster = roster
            self.on_roster(roster)

    def run(self, machine: Membership, work: Callable[[], Any]) -> None:
        """Run an async step; a failure becomes the C{failed} input unless the step is stale."""
        epoch = self.epoch

        async def step() -> None:
            try:
                await work()
            except Rebalance:
                if epoch == self.epoch:
                    machine.rebalance()
            except Exception as e:  # every failure of a network step means: start over
                if epoch == self.epoch:
                    machine.failed(str(e) or type(e).__name__)

        ensureDeferred(step())

    def current(self, epoch: int) -> bool:
        return epoch == self.epoch


async def _find_coordinator(core: MembershipCore, machine: Membership, epoch: int) -> None:
    errors = []
    for endpoint in core.bootstrap():
        try:
            client = await open_client(core.connect, endpoint, core.clock, core.request_timeout)
        except Exception as e:
            errors.append(f"{endpoint}: {e}")
            continue
        try:
            # Stopped (or restarted) while connecting: send nothing more.
            if not core.current(epoch):
                return
            if not core.license_ready:
                await _ensure_license_topic(core, client)
            version = client.version_for(FindCoordinatorRequest.API_KEY, 3, 1)
            response = await client.request(
                FindCoordinatorRequest[version](key=core.group_id, key_type=0)
            )
        finally:
            client.close()
        if not core.current(epoch):
            return
        if response.error_code != NONE:
            raise KafkaRequestError(
                f"FindCoordinator: error {response.error_code}", response.error_code
            )
        coordinator = HostPort(response.host, response.port)
        found = await open_client(core.connect, coordinator, core.clock, core.request_timeout)
        if not core.current(epoch):
            found.close()
            return
        machine.coordinator_found(found)
        return
    raise KafkaRequestError("no bootstrap server answered: " + "; ".join(errors))


async def _ensure_license_topic(core: MembershipCore, client: KafkaClientProtocol) -> None:
    await ensure_compacted_topic(
        client, core.license_topic, core.replication_factor(), "license topic"
    )
    core.license_ready = True


def _subscription(core: MembershipCore) -> bytes:
    subscription = ConsumerProtocolSubscription(
        version=1,
        topics=[core.license_topic],
        user_data=encode_member(core.myself),
        owned_partitions=[],
    )
    return bytes(subscription.encode())


async def _join(core: MembershipCore, machine: Membership, epoch: int) -> None:
    client = core.client
    assert client is not None
    version = client.version_for(JoinGroupRequest.API_KEY, 7, 4)
    request = JoinGroupRequest[version]
    while True:
        answer = client.request(
            request(
                group_id=core.group_id,
                session_timeout_ms=core.session_timeout_ms,
                rebalance_timeout_ms=core.session_timeout_ms,
                member_id=core.member_id,
                group_instance_id=None,
                protocol_type=PROTOCOL_TYPE,
                protocols=[
                    request.JoinGroupRequestProtocol(
                        name=PROTOCOL_NAME, metadata=_subscription(core)
                    )
                ],
            )
        )
        # The coordinator holds a join until every member rejoined (at most the
        # rebalance timeout); past that and a margin, it is not answering.
        answer.addTimeout(core.session_timeout_ms / 1000 + core.request_timeout, core.clock)
        response = await answer
        # A late answer (after stop or back-off) must not start another join.
        if not core.current(epoch):
            return
        if response.error_code == MEMBER_ID_REQUIRED:
            core.member_id = response.member_id
            continue
        if response.error_code == UNKNOWN_MEMBER_ID:
            core.member_id = ""
            continue
        if response.error_code != NONE:
            raise KafkaRequestError(f"JoinGroup: error {response.error_code}", response.error_code)
        break
    members = []
    for member in response.members:
        subscription = ConsumerProtocolSubscription.decode(bytes(member.metadata))
        members.append(decode_member(bytes(subscription.user_data), member.member_id))
    if core.current(epoch):
        machine.joined(response.generation_id, response.member_id, response.leader, members)


async def _sync(
    core: MembershipCore, machine: Membership, epoch: int, leader: bool, members: list[Member]
) -> None:
    client = core.client
    assert client is not None
    version = client.version_for(SyncGroupRequest.API_KEY, 4, 0)
    request = SyncGroupRequest[version]
    assignments = []
    if leader:
        roster = encode_roster(members)
        for index, member in enumerate(sorted(members)):
            # The license topic's one partition goes to one member, as a
            # consumer group would assign it; every member gets the roster.
            owned = [(core.license_topic, [0])] if index == 0 else []
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
            group_id=core.group_id,
            generation_id=core.generation,
            member_id=core.member_id,
            group_instance_id=None,
            protocol_type=PROTOCOL_TYPE,
            protocol_name=PROTOCOL_NAME,
            assignments=assignments,
        )
    )
    # Followers wait for the leader's assignment, at most a rebalance timeout.
    answer.addTimeout(core.session_timeout_ms / 1000 + core.request_timeout, core.clock)
    response = await answer
    _check_generation(core, "SyncGroup", response.error_code)
    assignment = ConsumerProtocolAssignment.decode(bytes(response.assignment))
    if core.current(epoch):
        machine.synced(decode_roster(bytes(assignment.user_data)))


def _check_generation(core: MembershipCore, api: str, error_code: int) -> None:
    """Act on the errors SyncGroup and Heartbeat share: rejoin, or fail."""
    if error_code == UNKNOWN_MEMBER_ID:
        # The coordinator forgot us (session expired): join afresh.
        core.member_id = ""
    if error_code in (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID):
        raise Rebalance()
    if error_code != NONE:
        raise KafkaRequestError(f"{api}: error {error_code}", error_code)


async def _heartbeat(core: MembershipCore, machine: Membership, epoch: int) -> None:
    client = core.client
    assert client is not None
    version = client.version_for(HeartbeatRequest.API_KEY, 4, 0)
    answer = client.request(
        HeartbeatRequest[version](
            group_id=core.group_id,
            generation_id=core.generation,
            member_id=core.member_id,
            group_instance_id=None,
        )
    )
    answer.addTimeout(core.request_timeout, core.clock)
    response = await answer
    _check_generation(core, "Heartbeat", response.error_code)
    if core.current(epoch):
        core.timer = core.clock.callLater(core.heartbeat_interval_ms / 1000, machine.heartbeat_due)


async def _leave(core: MembershipCore) -> None:
    client = core.client
    if client is None or not core.member_id:
        return
    try:
        version = client.version_for(LeaveGroupRequest.API_KEY, 4, 0)
        request = LeaveGroupRequest[version]
        if version >= 3:
            message = request(
                group_id=core.group_id,
                members=[request.MemberIdentity(member_id=core.member_id, group_instance_id=None)],
            )
        else:
            message = request(group_id=core.group_id, member_id=core.member_id)
        answer = client.request(message)
        answer.addTimeout(min(core.request_timeout, 5.0), core.clock)
        await answer
        log.info("Left gateway group {group}", group=core.group_id)
    except Exception as e:
        log.warn(
            "Could not leave gateway group {group} cleanly: {reason}",
            group=core.group_id,
            reason=str(e),
        )
    finally:
        core.drop_client()
        core.member_id = ""


def _build() -> Callable[[MembershipCore], Membership]:
    machine = TypeMachineBuilder(Membership, MembershipCore)
    Idle = machine.state("Idle")
    Finding = machine.state("FindingCoordinator")
    Joining = machine.state("Joining")
    Syncing = machine.state("Syncing")
    Stable = machine.state("Stable")
    Waiting = machine.state("WaitingToRetry")
    Stopped = machine.state("Stopped")

    @Idle.upon(Membership.start).to(Finding)
    @Waiting.upon(Membership.retry).to(Finding)
    def find(m: Membership, core: MembershipCore) -> None:
        core.epoch += 1
        epoch = core.epoch
        core.run(m, lambda: _find_coordinator(core, m, epoch))

    @Finding.upon(Membership.coordinator_found).to(Joining)
    def join(m: Membership, core: MembershipCore, client: KafkaClientProtocol) -> None:
        core.client = client
        epoch = core.epoch

        def lost(_: object) -> None:
            # Not tied to this epoch: a rebalance moves the epoch on but keeps
            # the connection, whose loss must still be noticed.
            if core.client is client:
                m.failed("the connection to the group coordinator closed")

        client.closed.addCallback(lost)
        core.run(m, lambda: _join(core, m, epoch))

    @Stable.upon(Membership.rebalance).to(Joining)
    @Syncing.upon(Membership.rebalance).to(Joining)
    @Joining.upon(Membership.rebalance).to(Joining)
    def rejoin(m: Membership, core: MembershipCore) -> None:
        core.cancel_timer()
        core.rebalances += 1
        core.epoch += 1
        epoch = core.epoch
        core.run(m, lambda: _join(core, m, epoch))

    @Joining.upon(Membership.joined).to(Syncing)
    def sync(
        m: Membership,
        core: MembershipCore,
        generation: int,
        member_id: str,
        leader: str,
        members: list[Member],
    ) -> None:
        core.generation = generation
        core.member_id = member_id
        epoch = core.epoch
        core.run(m, lambda: _sync(core, m, epoch, leader == member_id, members))

    @Syncing.upon(Membership.synced).to(Stable)
    def settle(m: Membership, core: MembershipCore, roster: list[Member]) -> None:
        log.info(
            "Gateway group {group} generation {generation}: {count} member(s): {members}",
            group=core.group_id,
            generation=core.generation,
            count=len(roster),
            members=", ".join(
                f"{r.node_name}@{r.host}:{r.port_start}{' rack ' + r.rack if r.rack else ''}"
                for r in roster
            ),
        )
        core.set_roster(roster)
        core.timer = core.clock.callLater(core.heartbeat_interval_ms / 1000, m.heartbeat_due)

    @Stable.upon(Membership.heartbeat_due).loop()
    def beat(m: Membership, core: MembershipCore) -> None:
        core.timer = None
        epoch = core.epoch
        core.run(m, lambda: _heartbeat(core, m, epoch))

    @Finding.upon(Membership.failed).to(Waiting)
    @Joining.upon(Membership.failed).to(Waiting)
    @Syncing.upon(Membership.failed).to(Waiting)
    @Stable.upon(Membership.failed).to(Waiting)
    def back_off(m: Membership, core: MembershipCore, reason: str) -> None:
        log.warn(
            "Gateway group {group}: {reason}; retrying in {delay}s, handing out only "
            "this node meanwhile",
            group=core.group_id,
            reason=reason,
            delay=core.retry_seconds,
        )
        core.epoch += 1
        core.cancel_timer()
        core.drop_client()
        core.alone()
        core.timer = core.clock.callLater(core.retry_seconds, m.retry)

    @Stable.upon(Membership.stop).to(Stopped)
    @Joining.upon(Membership.stop).to(Stopped)
    @Syncing.upon(Membership.stop).to(Stopped)
    def leave(m: Membership, core: MembershipCore) -> Deferred[None]:
        core.epoch += 1
        core.cancel_timer()
        return ensureDeferred(_leave(core))

    @Idle.upon(Membership.stop).to(Stopped)
    @Finding.upon(Membership.stop).to(Stopped)
    @Waiting.upon(Membership.stop).to(Stopped)
    @Stopped.upon(Membership.stop).to(Stopped)
    def halt(m: Membership, core: MembershipCore) -> Deferred[None]:
        core.epoch += 1
        core.cancel_timer()
        core.drop_client()
        return succeed(None)

    # Answers that arrive after the machine moved on are dropped.
    for state in (Idle, Finding, Joining, Syncing, Stable, Waiting, Stopped):
        for event in (Membership.coordinator_found,):
            if state is not Finding:

                @state.upon(event).loop()
                def stale_client(
                    m: Membership, core: MembershipCore, client: KafkaClientProtocol
                ) -> None:
                    client.close()

    for state in (Idle, Waiting, Stopped, Finding, Stable, Syncing):
        if state is not Joining:
            state.upon(Membership.joined).loop().returns(None)
    for state in (Idle, Waiting, Stopped, Finding, Stable, Joining):
        state.upon(Membership.synced).loop().returns(None)
    for state in (Idle, Waiting, Stopped, Finding):
        state.upon(Membership.rebalance).loop().returns(None)
        state.upon(Membership.heartbeat_due).loop().returns(None)
    for state in (Joining, Syncing):
        state.upon(Membership.heartbeat_due).loop().returns(None)
    for state in (Idle, Waiting, Stopped):
        state.upon(Membership.failed).loop().returns(None)
    for state in (Finding, Joining, Syncing, Stable, Stopped):
        state.upon(Membership.start).loop().returns(None)
    Idle.upon(Membership.retry).loop().returns(None)
    for state in (Finding, Joining, Syncing, Stable, Stopped):
        state.upon(Membership.retry).loop().returns(None)
    Waiting.upon(Membership.start).loop().returns(None)

    return machine.build()


class GatewayMembership:
    """The node's membership in its gateway cluster, and the live roster it learns."""

    def __init__(self, core: MembershipCore) -> None:
        self.core = core
        core.set_roster([core.myself])
        self.machine = _new_membership(core)

    @property
    def roster(self) -> list[Member]:
        """The live members, this node always among them."""
        return self.core.roster

    @property
    def member_id(self) -> str:
        """The coordinator's id for this node, once joined."""
        return self.core.member_id

    @property
    def is_member(self) -> bool:
        """Whether the roster the group last handed out names this node (by its member id)."""
        member_id = self.core.member_id
        return bool(member_id) and any(m.member_id == member_id for m in self.core.roster)

    def start(self) -> None:
        """Find the coordinator and join."""
        self.machine.start()

    def stop(self) -> Deferred[None]:
        """Leave the group and stop."""
        return self.machine.stop()


def node_name(host: str, port_start: int) -> str:
    """A readable, unique name for this node: its address and a random tag.

    Behind a load balancer every node has the same advertised address and
    ports, so the address alone does not tell nodes apart.
    """
    return f"{host}:{port_start}#{uuid.uuid4().hex[:8]}"


# Built last: Automat resolves the input protocol's annotations at build time.
_new_membership = _build()
