"""Tests for the admin API: resources in memory with StubTreq, auth, CLI."""
