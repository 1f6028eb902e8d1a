"""
The SNI host-routing settings (issue 14): the node-wide mechanism, the
broker names, the advertised port, and the refusals at start.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kgateway.config import Settings
from kgateway.listener import Listener
from kgateway.node.listening import plan_listeners
from kgateway.routing.sni import SniNames
from kgateway.routing.sni_config import HostRouting
from tests.unit.test_config_client_side import BOOTSTRAP, Stores, named, refused


class HostRoutingSettingsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stores = Stores(self)

    def load(self, environ: dict[str, str]) -> Settings:
        return Settings.load({**BOOTSTRAP, **self.stores.environ(), **environ}, {})

    def test_defaults(self) -> None:
        settings = Settings.load(BOOTSTRAP, {})
        self.assertEqual(settings.host_routing, HostRouting("port", SniNames("broker", "-"), None))
        self.assertEqual(settings.listeners[0].routing, "port")

    def test_host_mechanism(self) -> None:
        settings = self.load(
            {
                "GATEWAY_ROUTING_MECHANISM": "HOST",
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_PORT_START": "6969",
                "GATEWAY_ADVERTISED_HOST": "gw.example.com",
                "GATEWAY_ADVERTISED_HOST_PREFIX": "Kafka",
                "GATEWAY_SNI_HOST_SEPARATOR": ".",
                "GATEWAY_ADVERTISED_SNI_PORT": "443",
            }
        )
        self.assertEqual(settings.host_routing, HostRouting("host", SniNames("kafka", "."), 443))
        (listener,) = settings.listeners
        self.assertEqual(
            listener,
            Listener("DEFAULT", 6969, None, "SSL", "gw.example.com", "0.0.0.0", "NONE", "sni"),
        )
        # One port, whatever the broker ids, advertised at GATEWAY_ADVERTISED_SNI_PORT.
        (plan,) = plan_listeners(settings.listeners, 0, 40, settings.host_routing.advertised_port)
        self.assertEqual(list(plan.plan.ports), [6969])
        self.assertEqual(
            (plan.advertised.host, plan.advertised.port_start), ("gw.example.com", 443)
        )
        (plan,) = plan_listeners(settings.listeners, 0, 40)
        self.assertEqual(plan.advertised.port_start, 6969)

    def test_mtls_on_sni(self) -> None:
        settings = self.load(
            {
                "GATEWAY_ROUTING_MECHANISM": "host",
                "GATEWAY_SECURITY_PROTOCOL": "SASL_SSL",
                "GATEWAY_SSL_CLIENT_AUTH": "required",
                **self.stores.environ(trust=True),
            }
        )
        (listener,) = settings.listeners
        self.assertEqual((listener.routing, listener.client_auth), ("sni", "REQUIRE"))

    def test_mechanism_is_every_listeners_default(self) -> None:
        settings = self.load(
            {
                "GATEWAY_ROUTING_MECHANISM": "host",
                **named(
                    outside={"PORTS": "6969", "SECURITY_PROTOCOL": "SSL"},
                    inside={"PORTS": "9092-9095", "ROUTING": "port"},
                ),
            }
        )
        self.assertEqual([each.routing for each in settings.listeners], ["sni", "port"])

    def test_host_needs_tls(self) -> None:
        for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            refused(
                self,
                {"GATEWAY_ROUTING_MECHANISM": "host", "GATEWAY_SECURITY_PROTOCOL": protocol},
                "GATEWAY_ROUTING_MECHANISM=host needs TLS",
                f"GATEWAY_SECURITY_PROTOCOL={protocol}",
                "use SSL or SASL_SSL",
            )
        refused(
            self,
            {"GATEWAY_ROUTING_MECHANISM": "host", **named(a={"PORTS": "6969"})},
            "GATEWAY_ROUTING_MECHANISM=host needs TLS",
        )

    def test_one_port(self) -> None:
        refused(
            self,
            {
                **self.stores.environ(),
                "GATEWAY_ROUTING_MECHANISM": "host",
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_PORT_COUNT": "4",
            },
            "GATEWAY_PORT_COUNT gives 4 ports",
            "give one port",
        )
        refused(
            self,
            {
                **self.stores.environ(),
                **named(a={"PORTS": "6969-6970", "ROUTING": "sni", "SECURITY_PROTOCOL": "SSL"}),
            },
            "GATEWAY_LISTENER_A_PORTS gives 2 ports, but GATEWAY_LISTENER_A_ROUTING=sni",
        )

    def test_bad_values(self) -> None:
        for variable, value, why in (
            ("GATEWAY_ROUTING_MECHANISM", "sni", "valid: port (a port per broker) or host"),
            ("GATEWAY_ADVERTISED_HOST_PREFIX", "-broker", "use 1-32 letters, digits and '-'"),
            ("GATEWAY_ADVERTISED_HOST_PREFIX", "bro ker", "use 1-32 letters"),
            ("GATEWAY_SNI_HOST_SEPARATOR", "_", "at most 8 of letters, digits, '-' and '.'"),
            ("GATEWAY_ADVERTISED_SNI_PORT", "70000", "70000 is not a port number"),
        ):
            refused(self, {variable: value}, f"{variable}={value!r}", why)
