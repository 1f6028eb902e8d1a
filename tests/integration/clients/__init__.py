"""Client scripts run as separate, strace-audited processes by the integration tests."""
