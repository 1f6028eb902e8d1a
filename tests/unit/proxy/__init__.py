"""Unit tests for kgateway.proxy: the client and broker legs."""
