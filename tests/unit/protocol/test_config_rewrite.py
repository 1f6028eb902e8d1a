"""DescribeConfigs answers: values naming the cluster's hosts hidden, the rest untouched."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import DescribeConfigsResponse
from kafka.protocol.api_key import ApiKey
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import decode_response
from kgateway.protocol.config_rewrite import carries_address, rewrite_describe_configs
from kgateway.protocol.rewrite import REWRITERS
from tests.unit.protocol.builders import (
    BROKER_HOST_MARK,
    CORRELATION_ID,
    TOP_TAG,
    framed,
    mapper,
)

Result = DescribeConfigsResponse.DescribeConfigsResult
Entry = Result.DescribeConfigsResourceResult
Synonym = Entry.DescribeConfigsSynonym

LISTENERS = "PLAINTEXT://b1.broker.internal:9092,CONTROLLER://b1.broker.internal:9093"
VOTERS = "1@b1.broker.internal:9093,2@b2.broker.internal:9093"
STATIC = 4  # config source STATIC_BROKER_CONFIG
BROKER = 4  # resource type BROKER


def entry(name: str, value: str | None, version: int, sensitive: bool = False) -> Any:
    fields: dict[str, Any] = {
        "name": name,
        "value": value,
        "read_only": True,
        "is_sensitive": sensitive,
        "config_source": STATIC,
        "synonyms": [Synonym(name=name, value=value, source=STATIC)],
    }
    if version >= 3:
        fields.update(config_type=2, documentation=None)
    return Entry(**fields)


def response(version: int, configs: list[Any], tags: dict[str, bytes] | None = None) -> bytes:
    message = DescribeConfigsResponse(
        throttle_time_ms=0,
        results=[
            Result(
                error_code=0,
                error_message=None,
                resource_type=BROKER,
                resource_name="1",
                configs=configs,
            )
        ],
    )
    if tags:
        message.unknown_tags = dict(tags)
    return framed(message, version)


class DescribeConfigsTests(SynchronousTestCase):
    def test_registered(self) -> None:
        self.assertIs(REWRITERS[ApiKey.DescribeConfigs], rewrite_describe_configs)

    def test_addresses_hidden_at_every_version(self) -> None:
        for version in range(1, 5):
            frame = response(
                version,
                [
                    entry("listeners", LISTENERS, version),
                    entry("advertised.listeners", LISTENERS, version),
                    entry("controller.quorum.voters", VOTERS, version),
                    entry("sasl.oauthbearer.jwks.endpoint.url", "https://idp.internal/k", version),
                    entry("broker.rack", "a", version),
                    entry("log.retention.hours", "168", version),
                    entry("ssl.keystore.password", None, version, sensitive=True),
                ],
            )
            rewritten = rewrite_describe_configs(frame, version, mapper().mapping())
            self.assertNotIn(BROKER_HOST_MARK, rewritten)
            self.assertNotIn(b"idp.internal", rewritten)
            answer = decode_response(DescribeConfigsResponse, rewritten, version)
            self.assertEqual(answer.header.correlation_id, CORRELATION_ID)
            configs = {c.name: c for c in answer.results[0].configs}
            for name in (
                "listeners",
                "advertised.listeners",
                "controller.quorum.voters",
                "sasl.oauthbearer.jwks.endpoint.url",
            ):
                self.assertIsNone(configs[name].value, name)
                self.assertTrue(configs[name].is_sensitive, name)
                self.assertEqual([s.value for s in configs[name].synonyms], [None])
            self.assertEqual(configs["broker.rack"].value, "a")
            self.assertFalse(configs["broker.rack"].is_sensitive)
            self.assertEqual(configs["log.retention.hours"].value, "168")
            self.assertEqual(configs["broker.rack"].synonyms[0].value, "a")

    def test_nothing_to_hide_keeps_the_bytes(self) -> None:
        """A topic's configs, or a broker's without hosts, go on as they arrived."""
        frame = response(4, [entry("cleanup.policy", "compact", 4), entry("listeners", "", 4)])
        self.assertIs(rewrite_describe_configs(frame, 4, mapper().mapping()), frame)

    def test_unknown_tags_kept(self) -> None:
        frame = response(4, [entry("listeners", LISTENERS, 4)], tags=TOP_TAG)
        answer = decode_response(
            DescribeConfigsResponse, rewrite_describe_configs(frame, 4, mapper().mapping()), 4
        )
        self.assertEqual(answer.unknown_tags, TOP_TAG)

    def test_which_names(self) -> None:
        for name in (
            "listeners",
            "advertised.listeners",
            "controller.quorum.voters",
            "controller.quorum.bootstrap.servers",
            "zookeeper.connect",
            "confluent.metadata.bootstrap.servers",
            "sasl.oauthbearer.token.endpoint.url",
        ):
            self.assertTrue(carries_address(name), name)
        unnamed: tuple[str | None, ...] = (
            "listener.security.protocol.map",
            "inter.broker.listener.name",
            "controller.listener.names",
            "broker.rack",
            "log.dirs",
            None,
        )
        for other in unnamed:
            self.assertFalse(carries_address(other), other)
