"""Tests for L{kgateway.protocol.error_codes}: the names agree with kafka.errors."""

from __future__ import annotations

import kafka.errors
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.error_codes import ErrorCode

#: Where Kafka's name (the enum's) is not kafka-python's.
KAFKA_PYTHON_NAMES = {
    ErrorCode.NONE: "NO_ERROR",
    ErrorCode.NOT_LEADER_OR_FOLLOWER: "NOT_LEADER_FOR_PARTITION",
}


class ErrorCodeTests(SynchronousTestCase):
    """Each code is the kafka.errors class of the same name."""

    def test_names_match_kafka_errors(self) -> None:
        """kafka-python's error for each code has the member's name (or its older one)."""
        for code in ErrorCode:
            error = kafka.errors.for_code(code)
            self.assertEqual(error.errno, code, code.name)
            self.assertEqual(error.message, KAFKA_PYTHON_NAMES.get(code, code.name), code.name)

    def test_no_aliases(self) -> None:
        """Two names for one number would make one an alias of the other: each is distinct."""
        self.assertEqual(len(ErrorCode.__members__), len(ErrorCode))

    def test_wire_values(self) -> None:
        """The codes the gateway answers with itself, as Kafka's protocol documents them."""
        self.assertEqual(
            (
                ErrorCode.NONE,
                ErrorCode.COORDINATOR_NOT_AVAILABLE,
                ErrorCode.UNSUPPORTED_VERSION,
                ErrorCode.POLICY_VIOLATION,
            ),
            (0, 15, 35, 44),
        )
