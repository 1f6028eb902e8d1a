"""Unit tests for kgateway.relay: the client and broker legs."""
