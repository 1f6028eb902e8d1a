"""Integration tests: real Apache Kafka brokers and real gateway processes."""
