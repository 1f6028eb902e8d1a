"""
The SNI host-routing settings (issue 14): the node-wide mechanism, the
broker names, the advertised port, and the refusals at start.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase

from kgateway.config import Settings
from kgateway.interfaces import AdvertisedListener, BrokerInfo, IMembership, Member
from kgateway.listener import Listener
from kgateway.net import HostPort
from kgateway.node.listening import ListenerPlan, address_planner, plan_listeners, router_for
from kgateway.routing.router import PortRouter
from kgateway.routing.sni import SniNames, SniRouter
from kgateway.routing.sni_config import HostRouting
from tests.unit.routing.test_router import FakeDirectory
from tests.unit.test_config_client_side import BOOTSTRAP, Stores, named, refused


class Roster:
    """A membership that is only its roster."""

    def __init__(self, roster: list[Member]) -> None:
        self.roster = roster


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


class ListeningTests(SynchronousTestCase):
    """What a node listens with on an SNI listener: its router and the addresses it hands out."""

    def setUp(self) -> None:
        self.stores = Stores(self)
        self.directory = FakeDirectory([BrokerInfo(1, "k1", 9092), BrokerInfo(7, "k7", 9092)])

    def node(self, **environ: str) -> tuple[Settings, list[ListenerPlan]]:
        settings = Settings.load(
            {
                **BOOTSTRAP,
                **self.stores.environ(),
                "GATEWAY_ROUTING_MECHANISM": "host",
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_PORT_START": "6969",
                "GATEWAY_ADVERTISED_HOST": "gw-a.example.com",
                "GATEWAY_ADVERTISED_SNI_PORT": "443",
                **environ,
            },
            {},
        )
        return settings, list(plan_listeners(settings.listeners, 0, 7, 443))

    def test_router(self) -> None:
        settings, (plan,) = self.node()
        self.assertIsInstance(router_for(settings, plan, self.directory), SniRouter)
        port_settings = Settings.load(BOOTSTRAP, {})
        (port_plan,) = plan_listeners(port_settings.listeners, 0, 7)
        self.assertIsInstance(router_for(port_settings, port_plan, self.directory), PortRouter)

    def test_internal_load_balancing_names_each_node(self) -> None:
        settings, (plan,) = self.node()
        other = AdvertisedListener("DEFAULT", "gw-b.example.com", 443, 1)
        roster = [
            Member("a", "gw-a.example.com", 443, 1, 0, listeners=(plan.advertised,)),
            Member("b", "gw-b.example.com", 443, 1, 0, listeners=(other,)),
        ]
        planner = address_planner(settings, plan, cast(IMembership, Roster(roster)), self.directory)
        self.assertEqual(
            planner.candidates(7),
            [
                HostPort("broker-7.gw-a.example.com", 443),
                HostPort("broker-7.gw-b.example.com", 443),
            ],
        )

    def test_external_load_balancing_names_the_load_balancer(self) -> None:
        settings, (plan,) = self.node(
            GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING="false",
            GATEWAY_ADVERTISED_HOST="kafka.example.com",
        )
        planner = address_planner(settings, plan, cast(IMembership, Roster([])), self.directory)
        self.assertEqual(
            planner.mapping("10.0.0.1|app").address_for(7),
            HostPort("broker-7.kafka.example.com", 443),
        )
