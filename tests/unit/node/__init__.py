"""Unit tests for kgateway.node: the node built from its parts."""
