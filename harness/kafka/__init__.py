"""A real Apache Kafka KRaft cluster, run from Maven Central jars, and Kafka's Java tools.

C{python -m harness.kafka --size 3} keeps a cluster in the foreground;
C{python -m harness.kafka --download-only} only fills the jar cache (what C{scripts/setup} runs).
"""

from harness.kafka.cluster import (
    CONFIGS_COMMAND,
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_PERF,
    DELETE_RECORDS_COMMAND,
    GET_OFFSET_SHELL,
    KAFKA_VERSION,
    PRODUCER_PERF,
    TOPIC_COMMAND,
    BrokerInfo,
    KafkaCluster,
    KafkaClusterError,
    ensure_kafka_libs,
    fetch_broker_ids,
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
    "ensure_kafka_libs",
    "fetch_broker_ids",
    "java_tool_command",
]
