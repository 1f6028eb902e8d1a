"""create-topic-policy: limits judged topic by topic, refusals merged with the broker's answer."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import (
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import InvalidConfig, Respond
from kgateway.interceptors.builtin.create_topic_policy import CreateTopicPolicy
from kgateway.interceptors.builtin.partial import MAX_HELD, held_count
from kgateway.interceptors.builtin.read_only_topics import ReadOnlyTopics
from kgateway.protocol.codec import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from kgateway.protocol.error_codes import ErrorCode
from tests.unit.interceptors.messages import (
    call,
    client,
    context,
    create_partitions,
    create_topics,
    response_call,
)

LIMITS = {
    "minPartitions": 2,
    "maxPartitions": 12,
    "minReplicationFactor": 3,
    "maxReplicationFactor": 3,
    "namePattern": "[a-z][a-z0-9.-]*",
}


def policy(config: dict[str, Any] = LIMITS) -> tuple[CreateTopicPolicy, list[Any]]:
    ctx, events = context()
    return CreateTopicPolicy.from_config(config, ctx), events


def results(message: Any) -> dict[str, tuple[int, str | None]]:
    return {t.name: (t.error_code, t.error_message) for t in message.topics}


class ConfigTests(SynchronousTestCase):
    def test_errors_are_one_line(self) -> None:
        """Wrong types, bounds, a bad regex and unknown keys each get one line naming the key."""
        cases = {
            "config.maxPartitions must be an integer, got 'ten'": {"maxPartitions": "ten"},
            "config.minPartitions must be >= 1, got 0": {"minPartitions": 0},
            "config.minPartitions 5 is above config.maxPartitions 2; nothing could pass": {
                "minPartitions": 5,
                "maxPartitions": 2,
            },
            "config.allowBrokerDefaults must be true or false, got 'yes'": {
                "allowBrokerDefaults": "yes"
            },
        }
        for message, config in cases.items():
            error = self.assertRaises(InvalidConfig, policy, config)
            self.assertEqual(str(error), message)
        error = self.assertRaises(InvalidConfig, policy, {"namePattern": "("})
        self.assertTrue(str(error).startswith("config.namePattern '(' is not a regular expr"))
        error = self.assertRaises(InvalidConfig, policy, {"maxPartition": 3})
        self.assertIn("unknown config key(s) maxPartition; known:", str(error))
        self.assertNotIn("\n", str(error))


class CreateTopicsTests(SynchronousTestCase):
    def test_all_within_limits_goes_untouched(self) -> None:
        """Topics within every limit: the request goes on as it came; each is audited allowed."""
        interceptor, events = policy()
        request = call(create_topics([("orders", 6, 3), ("payments", 2, 3)]))
        self.assertIsNone(interceptor.on_request(request))
        self.assertFalse(request.changed)
        self.assertEqual(held_count(request.client), 0)
        self.assertEqual(
            [(e.decision, e.details["topic"]) for e in events],
            [("allowed", "orders"), ("allowed", "payments")],
        )

    def test_every_limit_named(self) -> None:
        """Each broken limit is refused with POLICY_VIOLATION and a message naming it."""
        interceptor, events = policy()
        request = call(
            create_topics(
                [("few", 1, 3), ("many", 13, 3), ("thin", 4, 1), ("fat", 4, 5), ("Bad_Name", 4, 3)]
            )
        )
        outcome = interceptor.on_request(request)
        assert isinstance(outcome, Respond)
        self.assertEqual(
            results(outcome.message),
            {
                "few": (44, "partitions 1 is below minPartitions 2"),
                "many": (44, "partitions 13 is above maxPartitions 12"),
                "thin": (44, "replication factor 1 is below minReplicationFactor 3"),
                "fat": (44, "replication factor 5 is above maxReplicationFactor 3"),
                "Bad_Name": (
                    44,
                    "topic name 'Bad_Name' does not match namePattern '[a-z][a-z0-9.-]*'",
                ),
            },
        )
        self.assertEqual({e.decision for e in events}, {"denied"})
        self.assertEqual(events[0].reason, "partitions 1 is below minPartitions 2")
        self.assertEqual(
            events[0].details, {"topic": "few", "partitions": 1, "replicationFactor": 3}
        )
        self.assertEqual(events[0].plugin, "create-topic-policy")
        self.assertEqual(events[0].client, client())
        self.assertEqual(events[0].api_key, 19)

    def test_mixed_request_is_split_and_merged(self) -> None:
        """The broker gets only the valid topics; the client gets every topic's answer."""
        interceptor, events = policy()
        request = call(create_topics([("orders", 6, 3), ("huge", 100, 3), ("payments", 2, 3)]))
        self.assertIsNone(interceptor.on_request(request))
        self.assertTrue(request.changed)
        sent = decode_request(19, encode_request(request.message), 7)
        self.assertEqual([t.name for t in sent.topics], ["orders", "payments"])
        self.assertEqual(sent.header.correlation_id, 7)

        cls = CreateTopicsResponse[7]
        broker = cls(
            throttle_time_ms=0,
            topics=[
                cls.CreatableTopicResult(
                    name=name, error_code=0, num_partitions=n, replication_factor=3, configs=[]
                )
                for name, n in (("orders", 6), ("payments", 2))
            ],
        )
        answer = response_call(request, broker)
        self.assertIsNone(interceptor.on_response(answer))
        self.assertTrue(answer.changed)
        merged = results(answer.message)
        self.assertEqual(list(merged), ["orders", "payments", "huge"])
        self.assertEqual([merged["orders"][0], merged["payments"][0]], [0, 0])
        self.assertEqual(merged["huge"], (44, "partitions 100 is above maxPartitions 12"))
        # What the client receives decodes with the merged topic in it.
        delivered = decode_response(CreateTopicsResponse, encode_response(answer.message, 7, 7), 7)
        self.assertEqual(delivered.topics[2].error_message, merged["huge"][1])
        self.assertEqual(held_count(request.client), 0)

    def test_other_connections_response_untouched(self) -> None:
        """A response with the same correlation id on another connection gets nothing merged."""
        interceptor, _ = policy()
        request = call(create_topics([("orders", 6, 3), ("huge", 100, 3)]))
        interceptor.on_request(request)
        other = call(create_topics([("x", 6, 3)]), who=client())
        cls = CreateTopicsResponse[7]
        answer = response_call(other, cls(throttle_time_ms=0, topics=[]))
        interceptor.on_response(answer)
        self.assertFalse(answer.changed)
        self.assertEqual((held_count(request.client), held_count(other.client)), (1, 0))

    def test_held_refusals_bounded(self) -> None:
        """A connection whose answers never come holds at most MAX_HELD refusals."""
        interceptor, _ = policy()
        who = client()
        for correlation_id in range(MAX_HELD + 5):
            request = create_topics([("orders", 6, 3), ("huge", 100, 3)])
            interceptor.on_request(call(request, correlation_id, who))
        self.assertEqual(held_count(who), MAX_HELD)

    def test_broker_defaults(self) -> None:
        """-1 is refused while a limit on it is set; allowed with allowBrokerDefaults."""
        interceptor, _ = policy({"maxPartitions": 12})
        outcome = interceptor.on_request(call(create_topics([("t", -1, -1)])))
        assert isinstance(outcome, Respond)
        self.assertEqual(
            results(outcome.message)["t"][1],
            "partitions -1 (the broker's default) is not allowed while maxPartitions is set; "
            "name the number",
        )
        allowing, _ = policy({"maxPartitions": 12, "allowBrokerDefaults": True})
        self.assertIsNone(allowing.on_request(call(create_topics([("t", -1, -1)]))))

    def test_explicit_assignment_counts(self) -> None:
        """With a replica assignment the numbers are the assignment's."""
        interceptor, _ = policy({"maxPartitions": 2, "maxReplicationFactor": 2})
        assignment = CreateTopicsRequest[7].CreatableTopic.CreatableReplicaAssignment
        assigned = {"t": [assignment(partition_index=i, broker_ids=[1, 2, 3]) for i in range(2)]}
        outcome = interceptor.on_request(call(create_topics([("t", -1, -1)], 7, assigned)))
        assert isinstance(outcome, Respond)
        self.assertEqual(
            results(outcome.message)["t"],
            (44, "replication factor 3 is above maxReplicationFactor 2"),
        )

    def test_old_version(self) -> None:
        """v2 (the oldest the codec has) is judged and answered in its own shape."""
        interceptor, _ = policy()
        outcome = interceptor.on_request(call(create_topics([("few", 1, 3)], version=2)))
        assert isinstance(outcome, Respond)
        self.assertEqual(results(outcome.message)["few"][0], 44)


class CreatePartitionsTests(SynchronousTestCase):
    def test_growth_above_max_refused(self) -> None:
        """CreatePartitions beyond maxPartitions is refused; within it goes on."""
        interceptor, events = policy()
        outcome = interceptor.on_request(call(create_partitions({"orders": 20})))
        assert isinstance(outcome, Respond)
        self.assertEqual(
            [(r.name, r.error_code, r.error_message) for r in outcome.message.results],
            [("orders", 44, "partitions 20 is above maxPartitions 12")],
        )
        self.assertEqual(events[-1].details, {"topic": "orders", "count": 20})
        self.assertIsNone(interceptor.on_request(call(create_partitions({"orders": 12}))))

    def test_answer_encodes(self) -> None:
        """The refusal encodes as the client's version of the response."""
        interceptor, _ = policy()
        request = call(create_partitions({"orders": 20}, version=0))
        outcome = interceptor.on_request(request)
        assert isinstance(outcome, Respond)
        response = response_call(request, outcome.message)
        decoded = decode_response(type(outcome.message), response.frame, 0)
        self.assertEqual(decoded.results[0].error_code, ErrorCode.POLICY_VIOLATION)


class TwoPoliciesTests(SynchronousTestCase):
    """create-topic-policy and read-only-topics both refusing parts of one CreatePartitions."""

    def policies(self) -> tuple[CreateTopicPolicy, ReadOnlyTopics]:
        ctx, _ = context()
        return (
            CreateTopicPolicy.from_config({"maxPartitions": 10}, ctx),
            ReadOnlyTopics.from_config({"topics": ["ro-.*"]}, ctx),
        )

    def test_both_refusals_merged(self) -> None:
        """The broker gets the one acceptable topic; the client hears about all three."""
        limits, read_only = self.policies()
        request = call(create_partitions({"big": 20, "ro-a": 3, "fine": 5}))
        self.assertIsNone(limits.on_request(request))
        self.assertIsNone(read_only.on_request(request))
        sent = decode_request(37, encode_request(request.message), 3)
        self.assertEqual([t.name for t in sent.topics], ["fine"])
        cls = CreatePartitionsResponse[3]
        broker = cls(
            throttle_time_ms=0,
            results=[cls.CreatePartitionsTopicResult(name="fine", error_code=0)],
        )
        answer = response_call(request, broker)
        limits.on_response(answer)  # the first to see the answer merges every refusal
        read_only.on_response(answer)
        self.assertEqual(
            {r.name: r.error_code for r in answer.message.results},
            {"fine": 0, "big": 44, "ro-a": 44},
        )
        self.assertEqual(held_count(request.client), 0)

    def test_later_policy_answers_for_both(self) -> None:
        """When the second policy refuses what the first left, its answer carries both."""
        limits, read_only = self.policies()
        request = call(create_partitions({"big": 20, "ro-a": 3}))
        self.assertIsNone(limits.on_request(request))
        outcome = read_only.on_request(request)
        assert isinstance(outcome, Respond)
        self.assertEqual(
            [(r.name, r.error_code) for r in outcome.message.results],
            [("big", 44), ("ro-a", 44)],
        )
        self.assertEqual(held_count(request.client), 0)
