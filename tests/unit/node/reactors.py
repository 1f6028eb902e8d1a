"""
The fake reactor a node takes in tests.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from kgateway.interfaces import INodeReactor


@implementer(INodeReactor)
class NodeMemoryReactor(MemoryReactorClock):
    """
    A MemoryReactorClock declared as the L{INodeReactor} it is: it has the core, time and
    TCP interfaces, but only the node's interface, which combines them, tells mypy so.
    """
