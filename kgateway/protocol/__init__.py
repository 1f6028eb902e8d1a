"""The Kafka wire protocol as the gateway sees it: frames, headers, versions, rewrites."""
