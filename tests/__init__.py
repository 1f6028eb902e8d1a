"""kgateway tests."""
