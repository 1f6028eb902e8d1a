"""The C{twistd kgateway} plugin."""

from twisted.application.service import ServiceMaker

kgateway = ServiceMaker("kgateway", "kgateway.tap", "A Kafka protocol gateway node", "kgateway")
