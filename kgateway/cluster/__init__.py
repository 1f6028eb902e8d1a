"""What the node knows about the Kafka cluster behind it."""
