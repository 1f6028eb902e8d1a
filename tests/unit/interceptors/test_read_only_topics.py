"""read-only-topics: writes and admin changes refused topic by topic, reads untouched."""

from __future__ import annotations

import uuid
from typing import Any

from kafka.protocol.producer import ProduceRequest, ProduceResponse
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import InterceptorContext, InvalidConfig, Respond
from kgateway.interceptors.builtin.read_only_topics import ReadOnlyTopics
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import read_only_topics
from kgateway.protocol.codec import decode_request, decode_response, encode_response
from kgateway.protocol.error_codes import ErrorCode
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.interceptors.messages import (
    alter_configs,
    batch,
    call,
    context,
    create_partitions,
    delete_records,
    delete_topics,
    produce,
)
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    metadata_request,
    metadata_response,
)

CONFIG = {"topics": ["audit\\..*", "_schemas"]}
REFUSED = "topic 'audit.logins' is read-only (matches 'audit\\\\..*')"


def policy() -> tuple[ReadOnlyTopics, list[Any]]:
    ctx, events = context()
    return ReadOnlyTopics.from_config(CONFIG, ctx), events


class ConfigTests(SynchronousTestCase):
    def test_errors(self) -> None:
        """Missing, empty or bad patterns get one line."""
        for config, message in (
            ({}, "config.topics is required"),
            ({"topics": []}, "config.topics is empty; list the read-only topic patterns"),
            ({"topics": "audit"}, "config.topics must be a list of strings, got 'audit'"),
        ):
            self.assertEqual(str(self.assertRaises(InvalidConfig, policy_from, config)), message)
        error = self.assertRaises(InvalidConfig, policy_from, {"topics": ["a["]})
        self.assertTrue(str(error).startswith("config.topics 'a[' is not a regular expression"))

    def test_whole_name_match(self) -> None:
        """A pattern matches the whole name, not a prefix."""
        interceptor, _ = policy()
        self.assertIsNotNone(interceptor.read_only("_schemas"))
        self.assertIsNone(interceptor.read_only("_schemas2"))
        self.assertIsNone(interceptor.read_only("my.audit.x"))


def policy_from(config: dict[str, Any]) -> ReadOnlyTopics:
    return ReadOnlyTopics.from_config(config, context()[0])


class AdminWritesTests(SynchronousTestCase):
    def test_delete_topics(self) -> None:
        """DeleteTopics of a read-only topic is refused with the pattern in the message."""
        interceptor, events = policy()
        for version in (1, 5, 6):
            outcome = interceptor.on_request(call(delete_topics(["audit.logins"], version)))
            assert isinstance(outcome, Respond)
            self.assertEqual(
                [(r.name, r.error_code, r.error_message) for r in outcome.message.responses],
                [("audit.logins", 44, REFUSED)],
            )
        self.assertEqual(
            [(e.decision, e.reason, e.details) for e in events][0],
            ("denied", REFUSED, {"topic": "audit.logins"}),
        )

    def test_delete_records_partitions_and_configs(self) -> None:
        """DeleteRecords, CreatePartitions and both AlterConfigs are refused on read-only topics."""
        interceptor, _ = policy()
        outcome = interceptor.on_request(call(delete_records({"_schemas": 5})))
        assert isinstance(outcome, Respond)
        self.assertEqual(
            outcome.message.topics[0].partitions[0].error_code, ErrorCode.POLICY_VIOLATION
        )
        outcome = interceptor.on_request(call(create_partitions({"_schemas": 5})))
        assert isinstance(outcome, Respond)
        self.assertEqual(outcome.message.results[0].error_code, ErrorCode.POLICY_VIOLATION)
        for incremental in (False, True):
            outcome = interceptor.on_request(
                call(alter_configs([(2, "audit.logins")], incremental))
            )
            assert isinstance(outcome, Respond)
            self.assertEqual(
                [
                    (r.resource_type, r.resource_name, r.error_code, r.error_message)
                    for r in outcome.message.responses
                ],
                [(2, "audit.logins", 44, REFUSED)],
            )

    def test_other_resources_pass(self) -> None:
        """A broker config change or another topic's is not this policy's business."""
        interceptor, events = policy()
        self.assertIsNone(interceptor.on_request(call(alter_configs([(4, "audit.logins")]))))
        request = call(alter_configs([(2, "orders"), (2, "audit.logins")], True))
        self.assertIsNone(interceptor.on_request(request))
        sent = decode_request(44, request.message.encode(header=True, framed=True), 1)
        self.assertEqual([r.resource_name for r in sent.resources], ["orders"])
        self.assertEqual(len(events), 1)

    def test_reads_not_wanted(self) -> None:
        """Fetch, ListOffsets and the consumer-group APIs never reach the policy."""
        interceptor, _ = policy()
        for api_key in (1, 2, 8, 9, 10, 11, 12, 14):
            self.assertNotIn(api_key, interceptor.requests)
        self.assertNotIn(3, interceptor.requests)


def data_path(events: list[Any]) -> tuple[ClientSide, FakeBrokers]:
    clock = Clock()
    interceptors = InterceptorSet(
        {"read-only-topics": read_only_topics},
        lambda name: InterceptorContext(clock, name, audit=events.append),
    )
    interceptors.apply(
        [InterceptorSpec.parse({"name": "ro", "plugin": "read-only-topics", "config": CONFIG})]
    )
    brokers = FakeBrokers()
    factory = ClientConnectionFactory(
        FixedRouter(1),
        FixedHostMapper("gw", PortPlan(start=7000, count=5, min_broker_id=0)),
        brokers.connect,
        interceptors=interceptors,
    )
    return ClientSide(factory), brokers


def framed(message: Any, correlation_id: int) -> bytes:
    message.with_header(correlation_id=correlation_id, client_id="app")
    return bytes(message.encode(header=True, framed=True))


class ProduceDataPathTests(SynchronousTestCase):
    def test_mixed_produce_split_and_merged(self) -> None:
        """The broker gets only the writable topic; the client gets both topics' answers."""
        events: list[Any] = []
        client, brokers = data_path(events)
        records = batch()
        client.send(framed(produce({"orders": [records], "audit.logins": [batch()]}), 1))
        (sent,) = brokers.opened[0].requests()
        forwarded = decode_request(0, sent, 9)
        self.assertEqual([t.name for t in forwarded.topic_data], ["orders"])
        self.assertEqual(forwarded.topic_data[0].partition_data[0].records, records)
        cls = ProduceResponse[9]
        partition = cls.TopicProduceResponse.PartitionProduceResponse
        broker_answer = cls(
            throttle_time_ms=0,
            responses=[
                cls.TopicProduceResponse(
                    name="orders",
                    partition_responses=[
                        partition(
                            index=0,
                            error_code=0,
                            base_offset=41,
                            log_append_time_ms=-1,
                            log_start_offset=0,
                            record_errors=[],
                            error_message=None,
                        )
                    ],
                )
            ],
        )
        brokers.opened[0].answer(encode_response(broker_answer, 1, 9))
        (answer,) = client.responses()
        response = decode_response(ProduceResponse, answer, 9)
        self.assertEqual(
            {
                (t.name, p.index): (p.error_code, p.base_offset)
                for t in response.responses
                for p in t.partition_responses
            },
            {("orders", 0): (0, 41), ("audit.logins", 0): (44, -1)},
        )
        self.assertEqual([e.details["topic"] for e in events], ["audit.logins"])

    def test_produce_by_topic_id(self) -> None:
        """Produce v13 names topics by id: an unknown id is refused, a learnt one judged by name."""
        events: list[Any] = []
        client, brokers = data_path(events)
        broker = brokers.opened[0]
        by_id = ProduceRequest[13]
        data = by_id.TopicProduceData
        request = by_id(
            transactional_id=None,
            acks=-1,
            timeout_ms=1000,
            topic_data=[
                data(
                    topic_id=uuid.UUID(int=1),
                    partition_data=[data.PartitionProduceData(index=0, records=batch())],
                )
            ],
        )
        client.send(framed(request, 1))
        self.assertEqual(broker.requests(), [])
        (answer,) = client.responses()
        refused = decode_response(ProduceResponse, answer, 13).responses[0]
        self.assertEqual(refused.partition_responses[0].error_code, ErrorCode.UNKNOWN_TOPIC_ID)
        # The client refreshes its metadata through the gateway, which learns orders' id.
        client.send(metadata_request(2))
        broker.answer(metadata_response(2, [(1, "b1.kafka", 9092)]))
        client.responses()
        client.send(framed(request, 3))
        self.assertEqual(len(broker.requests()), 2)  # metadata, then the produce
        self.assertEqual(
            [(e.api_key, e.reason, e.details) for e in events],
            [
                (
                    0,
                    "topic id 00000000-0000-0000-0000-000000000001 is not known to the gateway "
                    "yet; refresh metadata and retry",
                    {"topic": None, "topicId": "00000000-0000-0000-0000-000000000001"},
                )
            ],
        )


class TopicIdTests(SynchronousTestCase):
    def test_delete_by_learnt_id(self) -> None:
        """DeleteTopics v6 by id alone is judged by the name the id was learnt with."""
        interceptor, events = policy()
        topic_id = uuid.UUID(int=7)
        interceptor.names[topic_id] = "audit.logins"
        request = delete_topics([], 6)
        request.topics = [type(request).DeleteTopicState(name=None, topic_id=topic_id)]
        outcome = interceptor.on_request(call(request))
        assert isinstance(outcome, Respond)
        (result,) = outcome.message.responses
        self.assertEqual(
            (result.topic_id, result.error_code, result.error_message), (topic_id, 44, REFUSED)
        )
        self.assertEqual(events[0].details, {"topic": "audit.logins", "topicId": str(topic_id)})
