"""Unit tests for kgateway.cluster: the node's view of the brokers."""
