"""kgateway: a Kafka protocol gateway on Twisted (its version: importlib.metadata)."""
