"""Tests for kgateway.routing."""
