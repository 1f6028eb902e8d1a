"""A real Apache Kafka KRaft cluster, run from Maven Central jars, and Kafka's Java tools.

The modules: C{maven} (the jar cache), C{tools} (Java command lines and the tools' main
classes), C{properties} (what each broker is configured with, listeners included), C{node}
(one broker's JVM), C{cluster} (the cluster) and C{__main__} (C{python -m harness.kafka}).
The names most callers need are here.
"""

from harness.kafka.cluster import KafkaCluster, fetch_broker_ids
from harness.kafka.maven import KAFKA_VERSION, KafkaDownloadError, ensure_kafka_libs
from harness.kafka.node import KafkaClusterError
from harness.kafka.properties import BrokerInfo, Listener
from harness.kafka.tools import (
    CONFIGS_COMMAND,
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_PERF,
    DELETE_RECORDS_COMMAND,
    GET_OFFSET_SHELL,
    PRODUCER_PERF,
    TOPIC_COMMAND,
    java_tool_command,
)

__all__ = [
    "CONFIGS_COMMAND",
    "CONSOLE_CONSUMER",
    "CONSOLE_PRODUCER",
    "CONSUMER_PERF",
    "DELETE_RECORDS_COMMAND",
    "GET_OFFSET_SHELL",
    "KAFKA_VERSION",
    "PRODUCER_PERF",
    "TOPIC_COMMAND",
    "BrokerInfo",
    "KafkaCluster",
    "KafkaClusterError",
    "KafkaDownloadError",
    "Listener",
    "ensure_kafka_libs",
    "fetch_broker_ids",
    "java_tool_command",
]
