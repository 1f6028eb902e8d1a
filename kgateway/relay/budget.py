"""
The node's memory budget: the bytes its client connections hold, all told.

Frames are passed on as they arrive wherever nothing needs them whole, so a
connection normally holds a few reads.  What it does hold is counted
(L{Holding.set}, by the connection, after each read and each delivery):
the incomplete frames kept whole (for an interceptor, for SASL, or waiting),
the whole requests that wait, the answers that wait for their turn or an
interceptor, and what Twisted still has queued to send on either side.

Over the budget the node stops reading from the connections that hold the
most: every connection holding at least the average share when the budget
is crossed, and from then on any connection that grows past the average.
A connection holding little keeps going, so a few clients sending huge
frames do not stall everyone.  Once the total is back under
C{resume_fraction} of the budget, every paused connection is read again.
The partial-frame deadline closes whoever stays stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.logger import Logger

from kgateway.log_limit import LogLimiter
from kgateway.relay.read_gate import ReadGate, Reason

DEFAULT_MAX_BUFFERED_BYTES = 512 * 1024 * 1024

_BUDGET = int(Reason.BUDGET)

log = Logger()


class Holding:
    """What one client connection (both its sides) holds, as the budget counts it."""

    __slots__ = ("_budget", "name", "held", "paused", "_gates")

    def __init__(self, budget: MemoryBudget, name: str, gates: Iterable[ReadGate]) -> None:
        self._budget: MemoryBudget | None = budget
        #: Names the connection in log lines.
        self.name = name
        #: Bytes held now.
        self.held = 0
        #: Whether the budget stopped reading from this connection.
        self.paused = False
        self._gates = list(gates)

    def add_gate(self, gate: ReadGate) -> None:
        """Another side of the connection to stop reading from (the broker's, once open)."""
        self._gates.append(gate)
        if self.paused:
            gate.pause(_BUDGET)

    def set(self, held: int) -> None:
        """The connection holds C{held} bytes now."""
        old = self.held
        if held != old:
            self.held = held
            budget = self._budget
            if budget is not None:
                budget.changed(self, old, held)

    def release(self) -> None:
        """The connection closed: it holds nothing, and the budget forgets it."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget.forget(self)
        self.held = 0
        self._gates = []

    def pause(self) -> None:
        """Stop reading from every side, for the budget."""
        self.paused = True
        for gate in self._gates:
            gate.pause(_BUDGET)

    def resume(self) -> None:
        """The budget no longer stops reading."""
        self.paused = False
        for gate in self._gates:
            gate.resume(_BUDGET)


class MemoryBudget:
    """The bytes every client connection of the node holds, kept under C{limit}."""

    def __init__(
        self,
        limit: int = DEFAULT_MAX_BUFFERED_BYTES,
        resume_fraction: float = 0.75,
        logs: LogLimiter | None = None,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.resume_below = int(limit * resume_fraction)
        #: Called when what was held in a burst is free again (the node gives the
        #: pages back to the system): once the total fell under an eighth of the
        #: budget after it had reached a quarter of it (and 32 MiB).
        self.on_drained = on_drained
        self._burst_at = max(limit // 4, 32 * 1024 * 1024)
        self._drained_at = limit // 8
        self._bursting = False
        #: Bytes held now, every connection together.
        self.total = 0
        #: The most held at once.
        self.peak = 0
        #: How many times a connection was paused for the budget.
        self.pauses = 0
        self._holdings: set[Holding] = set()
        self._holders = 0  # holdings with held > 0
        self._paused: set[Holding] = set()
        self._over = False
        self._logs = logs if logs is not None else LogLimiter(log)

    @property
    def paused_connections(self) -> int:
        """Connections not read from for the budget, now."""
        return len(self._paused)

    def holding(self, name: str, gates: Iterable[ReadGate]) -> Holding:
        """A new connection's account, stopping the given sides when the budget says."""
        holding = Holding(self, name, gates)
        self._holdings.add(holding)
        return holding

    def changed(self, holding: Holding, old: int, new: int) -> None:
        """A connection's holding went from C{old} to C{new} bytes."""
        self.total = total = self.total + new - old
        if not old:
            self._holders += 1
        elif not new:
            self._holders -= 1
        if total > self.peak:
            self.peak = total
        if total >= self._burst_at:
            self._bursting = True
        elif self._bursting and total <= self._drained_at:
            self._bursting = False
            if self.on_drained is not None:
                self.on_drained()
        if total > self.limit:
            if not self._over:
                self._over = True
                self._pause_the_largest()
            elif new > old and not holding.paused and new * self._holders >= total:
                self._pause(holding)
        elif self._over and total <= self.resume_below:
            self._resume_all()

    def forget(self, holding: Holding) -> None:
        """A connection closed: what it held is free."""
        self._holdings.discard(holding)
        self._paused.discard(holding)
        held = holding.held
        holding.held = 0
        if held:
            self.changed(holding, held, 0)

    def _pause(self, holding: Holding) -> None:
        holding.pause()
        self._paused.add(holding)
        self.pauses += 1

    def _pause_the_largest(self) -> None:
        average = self.total / max(self._holders, 1)
        largest: Holding | None = None
        for holding in self._holdings:
            if holding.held >= average and not holding.paused:
                self._pause(holding)
                if largest is None or holding.held > largest.held:
                    largest = holding
        self._logs.warn(
            "The node holds {total} bytes, over its budget of {limit} bytes "
            "(GATEWAY_MAX_BUFFERED_BYTES): not reading from the {count} connections "
            "holding the most (the most: {name}, {held} bytes) until it is under {low}",
            total=self.total,
            limit=self.limit,
            count=len(self._paused),
            name=largest.name if largest is not None else "none",
            held=largest.held if largest is not None else 0,
            low=self.resume_below,
        )

    def _resume_all(self) -> None:
        self._over = False
        paused, self._paused = self._paused, set()
        for holding in paused:
            holding.resume()
        self._logs.info(
            "The node holds {total} bytes, under its budget again: reading from "
            "{count} paused connections",
            total=self.total,
            count=len(paused),
        )
