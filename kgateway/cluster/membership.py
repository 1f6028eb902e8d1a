"""
Gateway cluster membership through a Kafka consumer group.

Every node of a gateway cluster joins the consumer group C{GATEWAY_GROUP_ID},
subscribed to the cluster's license topic.  Each member describes itself
(advertised host, ports, rack) in its subscription's user data; the group
leader hands every member the full roster in its assignment's user data.  So
Kafka's group protocol is the only coordination: no other service, no state
on disk.  A clean stop leaves the group at once; a crashed node is dropped by
the coordinator after the session timeout, and left out of the others'
answers within a second or two by their direct checks
(L{kgateway.cluster.peer_checks}).

Out of contact with the group (its coordinator died or moved), a node keeps
handing out the last roster it received, minus the peers its checks find
down, while it rejoins; only once the group has been silent for longer than
the session timeout and no peer answers (or it checks none) does it hand out
itself alone (L{MembershipCore.lost}, L{MembershipCore.review}).

The lifecycle (finding the coordinator, joining, syncing, stable, waiting to
retry, stopped) is an Automat machine.  Each state but the first and the
last holds what it has in flight (a network step of
L{kgateway.cluster.group_steps}, a timer) as its state data, and every
transition out of it cancels that: an answer to abandoned work never
arrives, so the machine needs no way to recognise a stale one.  A step's
result comes back as an input.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from automat import TypeMachineBuilder
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.cluster import group_steps
from kgateway.cluster.group_steps import GroupSession, Joined, LicenseTopic, Rebalance
from kgateway.cluster.kafka_client import KafkaClientProtocol
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.peer_checks import PeerChecks
from kgateway.interfaces import IMembership, Member, RosterState

log = Logger()

T = TypeVar("T")

#: Which roster a node hands out: the group's, the last it received (while it
#: rejoins), or itself alone.
FROM_GROUP, LAST_KNOWN, ALONE = "group", "last-known", "alone"


class Membership(TypingProtocol):
    """The inputs of the membership machine."""

    def start(self) -> None:
        """Begin: find the coordinator and join."""

    def coordinator_found(self) -> None:
        """Connected to the group coordinator (the core holds the connection)."""

    def joined(self, joined: Joined) -> None:
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
class Outstanding:
    """A state's data: its network step and its timer, both cancelled when it is left."""

    step: Deferred[None] | None = None
    timer: IDelayedCall | None = None

    def cancel(self) -> None:
        """Abandon both (a step or timer that already finished is left alone)."""
        step, self.step = self.step, None
        if step is not None:
            step.cancel()
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()


@dataclass
class MembershipCore:
    """The state the membership behaviours share."""

    myself: Member
    group_id: str
    license_topic: str
    link: KafkaLink
    replication_factor: Callable[[], int]
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 250
    retry_seconds: float = 1.0
    #: Told every roster this node hands out (for tests; the node reads L{roster}).
    on_roster: Callable[[list[Member]], None] = lambda roster: None
    #: The connection to the group coordinator, from the coordinator found until it fails.
    client: KafkaClientProtocol | None = None
    #: The roster handed out (L{live} leaves out the peers that do not answer).
    roster: list[Member] = field(default_factory=list)
    rebalances: int = 0
    #: Checks the peers directly (None: the group alone says who is live).
    checks: PeerChecks | None = None
    #: Which roster is handed out: L{FROM_GROUP}, L{LAST_KNOWN} or L{ALONE}.
    source: str = ALONE
    #: When the coordinator last answered, and when contact was lost (clock seconds).
    last_heard: float | None = None
    out_since: float | None = None
    #: The reason last warned about while out of contact (repeats are not warned again).
    warned: str = ""
    session: GroupSession = field(init=False)
    _told: list[Member] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.checks is not None:
            self.checks.on_change = self.peers_changed
        self.session = GroupSession(
            self.group_id,
            self.myself,
            LicenseTopic(self.license_topic, self.replication_factor),
            self.session_timeout_ms,
        )

    # The roster this node hands out: the group's; the last one it received while
    # it rejoins; or itself alone once the group and every peer stayed silent.

    def settled(self, roster: list[Member]) -> None:
        """The group leader handed out C{roster}."""
        log.info(
            "Gateway group {group} generation {generation}: {count} member(s): {members}",
            group=self.group_id,
            generation=self.session.generation,
            count=len(roster),
            members=", ".join(
                f"{r.node_name}@{r.host}:{r.port_start}{' rack ' + r.rack if r.rack else ''}"
                for r in roster
            ),
        )
        if self.source != FROM_GROUP and self.out_since is not None:
            log.info(
                "Gateway group {group}: back in the group after {seconds}s out of contact "
                "(on {source} meanwhile)",
                group=self.group_id,
                seconds=round(self.link.clock.seconds() - self.out_since, 1),
                source="the last known roster" if self.source == LAST_KNOWN else "this node alone",
            )
        self.source = FROM_GROUP
        self.out_since = None
        self.warned = ""
        self.heard()
        self._hand_out(roster)

    def heard(self) -> None:
        """The group coordinator answered (a join, a sync, a heartbeat)."""
        self.last_heard = self.link.clock.seconds()

    def lost(self, reason: str) -> None:
        """
        Out of contact with the group: keep the roster it last handed out
        (minus the peers that do not answer) while rejoining, or, with no
        peer in it, hand out only this node.
        """
        if self.source != FROM_GROUP:
            self.review()
            self._warn_retrying(reason)
            return
        self.out_since = self.link.clock.seconds()
        mine = self.myself.node_name
        if all(m.node_name == mine for m in self.roster):
            self.alone()
            self._warn_retrying(reason)
            return
        self.source = LAST_KNOWN
        log.warn(
            "Gateway group {group}: {reason}; rejoining (every {delay}s), and keeping the "
            "last roster it received ({count} member(s), minus peers that do not answer) "
            "meanwhile; only this node if the group stays silent for over {timeout}s and "
            "no peer answers",
            group=self.group_id,
            reason=reason,
            delay=self.retry_seconds,
            count=len(self.roster),
            timeout=self.session_timeout_ms / 1000,
        )
        self.warned = reason
        self.review()

    def _warn_retrying(self, reason: str) -> None:
        # Said once per reason: a coordinator that stays away for a minute is one line.
        emit = log.debug if reason == self.warned else log.warn
        self.warned = reason
        emit(
            "Gateway group {group}: {reason}; retrying in {delay}s, handing out {what} meanwhile",
            group=self.group_id,
            reason=reason,
            delay=self.retry_seconds,
            what="the last known roster" if self.source == LAST_KNOWN else "only this node",
        )

    def review(self) -> None:
        """On the last known roster: fall back to this node alone once that is all there is."""
        if self.source != LAST_KNOWN:
            return
        now = self.link.clock.seconds()
        silent = now - (self.last_heard if self.last_heard is not None else now)
        if silent * 1000 <= self.session_timeout_ms:
            return
        if self.checks is not None and self.checks.any_up():
            return
        log.warn(
            "Gateway group {group}: nothing heard from the group for {seconds}s (over the "
            "session timeout) and no peer answers; handing out only this node",
            group=self.group_id,
            seconds=round(silent, 1),
        )
        self.alone()

    def alone(self) -> None:
        """Out of contact: hand out only ourselves until we rejoin."""
        self.source = ALONE
        self._hand_out([self.myself])

    def live(self) -> list[Member]:
        """The roster handed out minus the peers the checks say are down."""
        down = self.checks.down() if self.checks is not None else frozenset()
        if not down:
            return self.roster
        mine = self.myself.node_name
        return [m for m in self.roster if m.node_name == mine or m.node_name not in down]

    def peers_changed(self) -> None:
        """A peer went down or came back: tell the mappings, and review the kept roster."""
        self._tell()
        self.review()

    def _hand_out(self, roster: list[Member]) -> None:
        if roster != self.roster:
            self.roster = roster
            if self.checks is not None:
                self.checks.watch(roster)
        self._tell()

    def _tell(self) -> None:
        live = self.live()
        if live != self._told:
            self._told = live
            self.on_roster(live)

    # The coordinator connection.

    def adopt(self, machine: Membership, client: KafkaClientProtocol) -> None:
        """Keep C{client} as the coordinator connection, and notice when it closes."""
        self.client = client

        def lost(_: object) -> None:
            # Watched for as long as it is the connection in use: a rebalance
            # keeps it, and its loss must still be noticed.
            if self.client is client:
                machine.failed("the connection to the group coordinator closed")

        client.closed.addCallback(lost)

    def drop_client(self) -> KafkaClientProtocol | None:
        """Stop using the coordinator connection, and hang it up."""
        client, self.client = self.client, None
        if client is not None:
            client.close()
        return client

    def coordinator(self) -> KafkaClientProtocol:
        """The coordinator connection, in the states that have one."""
        assert self.client is not None, "no coordinator connection in this state"
        return self.client

    def step(
        self, machine: Membership, work: Coroutine[Any, Any, T], then: Callable[[T], None]
    ) -> Deferred[None]:
        """Run a network step; its result goes to C{then}, a failure becomes an input."""

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return  # its state was left
            if failure.check(Rebalance):
                machine.rebalance()
                return
            machine.failed(str(failure.value) or type(failure.value).__name__)

        running: Deferred[T] = Deferred.fromCoroutine(work)
        return running.addCallbacks(then, failed)

    async def leave(self) -> None:
        """Leave the group (if the coordinator gave us an id), then hang up."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.session.member_id:
                await group_steps.leave(client, self.session, self.link)
                log.info("Left gateway group {group}", group=self.group_id)
        except Exception as e:
            log.warn(
                "Could not leave gateway group {group} cleanly: {reason}",
                group=self.group_id,
                reason=str(e),
            )
        finally:
            client.close()
            self.session.member_id = ""


# What entering each state starts (Automat runs this before the transition's behaviour).


def _find(m: Membership, core: MembershipCore) -> Outstanding:
    def found(client: KafkaClientProtocol) -> None:
        core.adopt(m, client)
        m.coordinator_found()

    return Outstanding(core.step(m, group_steps.find_coordinator(core.link, core.session), found))


def _join(m: Membership, core: MembershipCore) -> Outstanding:
    work = group_steps.join(core.coordinator(), core.session, core.link)
    return Outstanding(core.step(m, work, m.joined))


def _sync(m: Membership, core: MembershipCore, joined: Joined) -> Outstanding:
    core.heard()
    core.session.generation = joined.generation
    core.session.member_id = joined.member_id
    work = group_steps.sync(core.coordinator(), core.session, core.link, joined)
    return Outstanding(core.step(m, work, m.synced))


def _settle(m: Membership, core: MembershipCore, roster: list[Member]) -> Outstanding:
    core.settled(roster)
    return Outstanding(timer=_next_beat(m, core))


def _wait(m: Membership, core: MembershipCore, reason: str) -> Outstanding:
    # What it hands out meanwhile, and the one line saying so: the behaviour's (lost).
    return Outstanding(timer=core.link.clock.callLater(core.retry_seconds, m.retry))


def _next_beat(m: Membership, core: MembershipCore) -> IDelayedCall:
    return core.link.clock.callLater(core.heartbeat_interval_ms / 1000, m.heartbeat_due)


def _build() -> Callable[[MembershipCore], Membership]:
    machine = TypeMachineBuilder(Membership, MembershipCore)
    Idle = machine.state("Idle")
    Finding = machine.state("FindingCoordinator", _find)
    Joining = machine.state("Joining", _join)
    Syncing = machine.state("Syncing", _sync)
    Stable = machine.state("Stable", _settle)
    Waiting = machine.state("WaitingToRetry", _wait)
    Stopped = machine.state("Stopped")

    # Forward: each input is the result of its state's own step (or timer),
    # so nothing is left to cancel, and the state entered starts the next.
    Idle.upon(Membership.start).to(Finding).returns(None)
    Waiting.upon(Membership.retry).to(Finding).returns(None)
    Finding.upon(Membership.coordinator_found).to(Joining).returns(None)
    Joining.upon(Membership.joined).to(Syncing).returns(None)
    Syncing.upon(Membership.synced).to(Stable).returns(None)

    @Stable.upon(Membership.heartbeat_due).loop()
    def beat(m: Membership, core: MembershipCore, pending: Outstanding) -> None:
        def alive(_: None) -> None:
            core.heard()
            pending.timer = _next_beat(m, core)

        work = group_steps.heartbeat(core.coordinator(), core.session, core.link)
        pending.step = core.step(m, work, alive)

    @Stable.upon(Membership.rebalance).to(Joining)
    @Syncing.upon(Membership.rebalance).to(Joining)
    def rejoin(m: Membership, core: MembershipCore, pending: Outstanding) -> None:
        pending.cancel()
        core.rebalances += 1

    @Finding.upon(Membership.failed).to(Waiting)
    @Joining.upon(Membership.failed).to(Waiting)
    @Syncing.upon(Membership.failed).to(Waiting)
    @Stable.upon(Membership.failed).to(Waiting)
    def give_up(m: Membership, core: MembershipCore, pending: Outstanding, reason: str) -> None:
        pending.cancel()
        core.drop_client()
        core.lost(reason)

    @Joining.upon(Membership.stop).to(Stopped)
    @Syncing.upon(Membership.stop).to(Stopped)
    @Stable.upon(Membership.stop).to(Stopped)
    def leave(m: Membership, core: MembershipCore, pending: Outstanding) -> Deferred[None]:
        pending.cancel()
        return Deferred.fromCoroutine(core.leave())

    @Finding.upon(Membership.stop).to(Stopped)
    @Waiting.upon(Membership.stop).to(Stopped)
    def halt(m: Membership, core: MembershipCore, pending: Outstanding) -> Deferred[None]:
        pending.cancel()
        core.drop_client()
        return succeed(None)

    @Idle.upon(Membership.stop).to(Stopped)
    @Stopped.upon(Membership.stop).to(Stopped)
    def halted(m: Membership, core: MembershipCore) -> Deferred[None]:
        return succeed(None)

    # Started is started, and stopped is stopped.
    for started in (Finding, Joining, Syncing, Stable, Waiting):
        started.upon(Membership.start).loop().returns(None)
    Stopped.upon(Membership.start).loop().returns(None)

    return machine.build()


@implementer(IMembership)
class GatewayMembership:
    """The node's membership in its gateway cluster, and the live roster it learns."""

    def __init__(self, core: MembershipCore) -> None:
        self._core = core
        core.alone()
        self._machine = _new_membership(core)

    @property
    def myself(self) -> Member:
        """This node's own description."""
        return self._core.myself

    @property
    def roster(self) -> list[Member]:
        """The live members (those the peer checks find down left out), this node among them."""
        return self._core.live()

    @property
    def state(self) -> RosterState:
        """Which roster is handed out, since when, and what the peer checks see."""
        core = self._core
        peers = tuple(core.checks.health()) if core.checks is not None else ()
        return RosterState(core.source, core.out_since, peers)

    @property
    def member_id(self) -> str:
        """The coordinator's id for this node, once joined."""
        return self._core.session.member_id

    @property
    def is_member(self) -> bool:
        """Whether the roster the group last handed out names this node (by its member id)."""
        member_id = self.member_id
        return bool(member_id) and any(m.member_id == member_id for m in self._core.roster)

    @property
    def rebalances(self) -> int:
        """How many times the group rebalanced while this node was in it."""
        return self._core.rebalances

    def start(self) -> None:
        """Find the coordinator and join."""
        self._machine.start()

    def stop(self) -> Deferred[None]:
        """Leave the group and stop (checking peers too)."""
        if self._core.checks is not None:
            self._core.checks.stop()
        return self._machine.stop()


def node_name(host: str, port_start: int) -> str:
    """A readable, unique name for this node: its address and a random tag.

    Behind a load balancer every node has the same advertised address and
    ports, so the address alone does not tell nodes apart.
    """
    return f"{host}:{port_start}#{uuid.uuid4().hex[:8]}"


# Built last: Automat resolves the input protocol's annotations at build time.
_new_membership = _build()
