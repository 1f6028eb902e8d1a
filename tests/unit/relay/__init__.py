"""Unit tests for kgateway.relay: a client connection, its machine and paths, the broker leg."""
