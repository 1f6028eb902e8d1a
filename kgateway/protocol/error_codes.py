"""
The Kafka error codes kgateway reads or answers with, named once.

The numbers are kafka-python's (C{kafka.errors.<Name>Error.errno}), so none
is written here; the names are Kafka's own (its C{Errors} enum), which in
two places differ from kafka-python's.  API keys need no such table:
kafka-python's C{kafka.protocol.api_key.ApiKey} is one already.

An error code the gateway has not needed yet is C{kafka.errors} away: add
it here when the code starts using it.
"""

from __future__ import annotations

from enum import IntEnum

import kafka.errors as errors


class ErrorCode(IntEnum):
    """A Kafka error code, as brokers send it in a response's C{error_code} fields."""

    #: Kafka's C{NONE}; kafka-python calls it C{NO_ERROR}.
    NONE = errors.NoError.errno
    OFFSET_OUT_OF_RANGE = errors.OffsetOutOfRangeError.errno
    UNKNOWN_TOPIC_OR_PARTITION = errors.UnknownTopicOrPartitionError.errno
    LEADER_NOT_AVAILABLE = errors.LeaderNotAvailableError.errno
    #: Renamed from C{NOT_LEADER_FOR_PARTITION} (KIP-392), kafka-python's name.
    NOT_LEADER_OR_FOLLOWER = errors.NotLeaderForPartitionError.errno
    REQUEST_TIMED_OUT = errors.RequestTimedOutError.errno
    REPLICA_NOT_AVAILABLE = errors.ReplicaNotAvailableError.errno
    NETWORK_EXCEPTION = errors.NetworkExceptionError.errno
    COORDINATOR_LOAD_IN_PROGRESS = errors.CoordinatorLoadInProgressError.errno
    COORDINATOR_NOT_AVAILABLE = errors.CoordinatorNotAvailableError.errno
    NOT_COORDINATOR = errors.NotCoordinatorError.errno
    NOT_ENOUGH_REPLICAS = errors.NotEnoughReplicasError.errno
    ILLEGAL_GENERATION = errors.IllegalGenerationError.errno
    UNKNOWN_MEMBER_ID = errors.UnknownMemberIdError.errno
    REBALANCE_IN_PROGRESS = errors.RebalanceInProgressError.errno
    TOPIC_AUTHORIZATION_FAILED = errors.TopicAuthorizationFailedError.errno
    UNSUPPORTED_VERSION = errors.UnsupportedVersionError.errno
    INVALID_REQUEST = errors.InvalidRequestError.errno
    TOPIC_ALREADY_EXISTS = errors.TopicAlreadyExistsError.errno
    POLICY_VIOLATION = errors.PolicyViolationError.errno
    KAFKA_STORAGE_ERROR = errors.KafkaStorageError.errno
    MEMBER_ID_REQUIRED = errors.MemberIdRequiredError.errno
    UNKNOWN_TOPIC_ID = errors.UnknownTopicIdError.errno
    # issue 13: the node's own SASL logins
    UNSUPPORTED_SASL_MECHANISM = errors.UnsupportedSaslMechanismError.errno
    ILLEGAL_SASL_STATE = errors.IllegalSaslStateError.errno
    SASL_AUTHENTICATION_FAILED = errors.SaslAuthenticationFailedError.errno
