"""Tests for kgateway.protocol."""
