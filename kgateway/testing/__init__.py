"""Test harnesses: a real Apache Kafka cluster and proof that clients never reached a broker."""
