"""The command lines that run Kafka's Java classes: the broker and its command-line tools."""

from __future__ import annotations

from pathlib import Path

from harness.kafka.maven import ensure_kafka_libs

# Main classes, verified against the 4.1.1 jars (several moved between Kafka releases).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONFIGS_COMMAND = "kafka.admin.ConfigCommand"
DELETE_RECORDS_COMMAND = "org.apache.kafka.tools.DeleteRecordsCommand"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"


def java_command(
    main_class: str, *args: str, heap: str = "256m", log4j_config: Path | None = None
) -> list[str]:
    """The argv that runs C{main_class} on Kafka's classpath (downloaded first if need be).

    C{log4j_config} is a log4j2 properties file; without one the class logs as its jar says.
    """
    libs = ensure_kafka_libs()
    logging = [f"-Dlog4j2.configurationFile={log4j_config}"] if log4j_config is not None else []
    return [
        "java",
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        *logging,
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def java_tool_command(main_class: str, *args: str) -> list[str]:
    """The argv that runs one of Kafka's Java tools, e.g. C{TOPIC_COMMAND}."""
    return java_command(main_class, *args)
