"""
The client side's settings (issue 13): listeners, TLS towards clients and
the start-time refusal; every mistake is one line naming the setting and the
fix, and no password ever shows.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from kgateway import tap
from kgateway.config import ConfigError, Settings
from kgateway.listener import Listener, client_auth
from kgateway.security.server_config import ServerTls, StoreFile, server_tls
from tests.certificates import (
    Authority,
    write_pem_key_store,
    write_pkcs12_key_store,
    write_pkcs12_trust_store,
)

BOOTSTRAP = {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092"}
CANARY = "canary-Pa55-9d1e"


def refused(case: SynchronousTestCase, environ: dict[str, str], *expected: str) -> str:
    """Settings.load refuses C{environ} with one line holding every C{expected} text."""
    with case.assertRaises(ConfigError) as caught:
        Settings.load({**BOOTSTRAP, **environ}, {})
    message = str(caught.exception)
    case.assertNotIn("\n", message)
    for text in expected:
        case.assertIn(text, message)
    return message


class SingleListenerTests(SynchronousTestCase):
    """The single-listener settings make one listener, DEFAULT."""

    def test_default(self) -> None:
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_PORT_START": "7000",
                "GATEWAY_PORT_COUNT": "4",
                "GATEWAY_ADVERTISED_HOST": "gw.example",
                "GATEWAY_BIND_HOST": "10.0.0.1",
            },
            {},
        )
        self.assertEqual(
            settings.listeners,
            (Listener("DEFAULT", 7000, 4, "PLAINTEXT", "gw.example", "10.0.0.1"),),
        )
        self.assertIsNone(settings.server_tls)

    def test_constructed_settings_have_the_default_listener(self) -> None:
        settings = Settings((), port_start=7100, advertised_host="h", bind_host="b")
        self.assertEqual(
            settings.listeners, (Listener("DEFAULT", 7100, None, "PLAINTEXT", "h", "b"),)
        )

    def test_protocol_defaults_to_the_brokers(self) -> None:
        """GATEWAY_SECURITY_PROTOCOL unset: KAFKA_SECURITY_PROTOCOL's value."""
        settings = Settings.load({**BOOTSTRAP, "KAFKA_SECURITY_PROTOCOL": "plaintext"}, {})
        self.assertEqual(settings.listeners[0].security_protocol, "PLAINTEXT")
        # With brokers on SSL (the broker side's branch), clients are on SSL too:
        listener = Listener("DEFAULT", 9092, None, "SSL", "h", "b")
        with self.assertRaises(ConfigError) as caught:
            server_tls(lambda row: None, [listener], "KAFKA_SECURITY_PROTOCOL")
        self.assertEqual(
            str(caught.exception),
            "KAFKA_SECURITY_PROTOCOL=SSL (the default of GATEWAY_SECURITY_PROTOCOL) needs a key "
            "store for the node's certificate: set GATEWAY_SSL_KEY_STORE_PATH (and "
            "GATEWAY_SSL_KEY_TYPE, GATEWAY_SSL_KEY_STORE_PASSWORD), or use PLAINTEXT or "
            "SASL_PLAINTEXT",
        )

    def test_client_auth_needs_tls(self) -> None:
        refused(
            self,
            {"GATEWAY_SSL_CLIENT_AUTH": "REQUIRE"},
            "GATEWAY_SSL_CLIENT_AUTH=REQUIRE needs TLS",
            "GATEWAY_SECURITY_PROTOCOL=PLAINTEXT",
        )

    def test_bad_values(self) -> None:
        for variable, value, valid in (
            ("GATEWAY_SECURITY_PROTOCOL", "TLS", "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
            ("GATEWAY_SSL_CLIENT_AUTH", "sometimes", "NONE, REQUEST, REQUIRE"),
            ("GATEWAY_SSL_KEY_TYPE", "p12x", "pem, pkcs12, jks"),
            ("GATEWAY_SSL_TRUST_STORE_TYPE", "der", "pem, pkcs12, jks"),
            ("GATEWAY_SSL_UPDATE_INTERVAL_MS", "-1", "0 or more"),
        ):
            refused(self, {variable: value}, variable, repr(value), valid)

    def test_kafka_spellings_of_client_auth(self) -> None:
        for given, meant in (("required", "REQUIRE"), ("requested", "REQUEST"), ("none", "NONE")):
            self.assertEqual(client_auth("GATEWAY_SSL_CLIENT_AUTH", given), meant)


def named(**listeners: dict[str, str]) -> dict[str, str]:
    """The environment of named listeners: name -> {KEY: value}."""
    environ = {"GATEWAY_LISTENER_NAMES": ",".join(listeners)}
    for name, keys in listeners.items():
        for key, value in keys.items():
            environ[f"GATEWAY_LISTENER_{name.upper()}_{key}"] = value
    return environ


class NamedListenerTests(SynchronousTestCase):
    """GATEWAY_LISTENER_NAMES and GATEWAY_LISTENER_<NAME>_*."""

    def test_two_listeners(self) -> None:
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_ADVERTISED_HOST": "gw-0.internal",
                "GATEWAY_BIND_HOST": "0.0.0.0",
                **named(
                    internal={"PORTS": "9092-9095"},
                    external={
                        "PORTS": "19092",
                        "SECURITY_PROTOCOL": "sasl_plaintext",
                        "ADVERTISED_HOST": "kafka.example.com",
                        "BIND_ADDRESS": "10.1.2.3",
                        "ROUTING": "port",
                    },
                ),
            },
            {},
        )
        self.assertEqual(
            settings.listeners,
            (
                Listener("INTERNAL", 9092, 4, "PLAINTEXT", "gw-0.internal", "0.0.0.0"),
                Listener(
                    "EXTERNAL", 19092, None, "SASL_PLAINTEXT", "kafka.example.com", "10.1.2.3"
                ),
            ),
        )

    def test_bad_names(self) -> None:
        for value, culprit in (
            ("in-ternal", "'in-ternal' is not a listener name"),
            ("1st", "'1st' is not a listener name"),
            ("a,,b", "'' is not a listener name"),
            ("A,a", "A is listed twice"),
        ):
            refused(self, {"GATEWAY_LISTENER_NAMES": value}, "GATEWAY_LISTENER_NAMES", culprit)

    def test_ports_required_and_checked(self) -> None:
        refused(
            self,
            named(inside={}),
            "GATEWAY_LISTENER_INSIDE_PORTS is not set",
            "FIRST-LAST",
        )
        for value, why in (
            ("9099-9092", "the last port 9092 is below the first 9099"),
            ("9092-70000", "70000 is not a port number"),
            ("nine", "'nine' is not a whole number"),
        ):
            refused(self, named(inside={"PORTS": value}), "GATEWAY_LISTENER_INSIDE_PORTS", why)

    def test_overlapping_ports(self) -> None:
        refused(
            self,
            named(a={"PORTS": "9092-9099"}, b={"PORTS": "9095-9100"}),
            "GATEWAY_LISTENER_B_PORTS (9095-9100) overlaps GATEWAY_LISTENER_A_PORTS (9092-9099)",
            "at ports 9095-9099",
            "a range of its own",
        )
        # A range whose count the brokers decide still has its first port.
        refused(self, named(a={"PORTS": "9092-9099"}, b={"PORTS": "9099"}), "overlaps")

    def test_sni_needs_tls(self) -> None:
        """An SNI listener without TLS is refused in one line naming the protocol's setting."""
        refused(
            self,
            named(a={"PORTS": "9092", "ROUTING": "sni"}),
            "GATEWAY_LISTENER_A_ROUTING=sni needs TLS",
            "GATEWAY_SECURITY_PROTOCOL=PLAINTEXT",
            "use SSL or SASL_SSL",
        )
        refused(
            self,
            named(a={"PORTS": "9092", "ROUTING": "SNI", "SECURITY_PROTOCOL": "SASL_PLAINTEXT"}),
            "GATEWAY_LISTENER_A_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        )
        refused(self, named(a={"PORTS": "9092", "ROUTING": "host"}), "valid: port, sni")

    def test_single_listener_ports_beside_names(self) -> None:
        for variable in ("GATEWAY_PORT_START", "GATEWAY_PORT_COUNT"):
            refused(
                self,
                {variable: "7000", **named(a={"PORTS": "9092"})},
                f"{variable} is set beside GATEWAY_LISTENER_NAMES",
                "GATEWAY_LISTENER_<NAME>_PORTS",
            )

    def test_stray_listener_variables(self) -> None:
        refused(
            self,
            {"GATEWAY_LISTENER_EXTRNAL_PORTS": "9092", **named(external={"PORTS": "9093"})},
            "GATEWAY_LISTENER_EXTRNAL_PORTS is not a setting of any listener",
            "(EXTERNAL)",
        )
        refused(
            self,
            {"GATEWAY_LISTENER_A_PORTS": "9092"},
            "GATEWAY_LISTENER_A_PORTS is set but GATEWAY_LISTENER_NAMES is not",
        )

    def test_client_auth_on_a_plaintext_listener(self) -> None:
        refused(
            self,
            named(a={"PORTS": "9092", "SSL_CLIENT_AUTH": "REQUIRE"}),
            "GATEWAY_LISTENER_A_SSL_CLIENT_AUTH=REQUIRE needs TLS",
            "set GATEWAY_LISTENER_A_SECURITY_PROTOCOL to SSL or SASL_SSL",
        )

    def test_node_wide_client_auth_only_for_tls_listeners(self) -> None:
        """GATEWAY_SSL_CLIENT_AUTH is every TLS listener's default; plaintext ones ignore it."""
        stores = Stores(self)
        settings = Settings.load(
            {
                **BOOTSTRAP,
                **stores.environ(trust=True),
                "GATEWAY_SSL_CLIENT_AUTH": "REQUIRE",
                **named(
                    inside={"PORTS": "9092"},
                    outside={"PORTS": "9192", "SECURITY_PROTOCOL": "SSL"},
                    partners={
                        "PORTS": "9292",
                        "SECURITY_PROTOCOL": "SSL",
                        "SSL_CLIENT_AUTH": "NONE",
                    },
                ),
            },
            {},
        )
        self.assertEqual(
            [(each.name, each.client_auth) for each in settings.listeners],
            [("INSIDE", "NONE"), ("OUTSIDE", "REQUIRE"), ("PARTNERS", "NONE")],
        )


class RefusalTests(SynchronousTestCase):
    """Clients that do not log in, in front of brokers that require SASL: refused at start."""

    def test_plaintext_clients_before_sasl_brokers(self) -> None:
        for protocol in ("PLAINTEXT", "SSL"):
            refused(
                self,
                {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "GATEWAY_SECURITY_PROTOCOL": protocol},
                f"GATEWAY_SECURITY_PROTOCOL={protocol} in front of "
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                "would need the gateway to log in for them",
                "use SASL_PLAINTEXT or SASL_SSL",
            )

    def test_one_listener_without_sasl(self) -> None:
        refused(
            self,
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "GATEWAY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                **named(a={"PORTS": "9092"}, b={"PORTS": "9192", "SECURITY_PROTOCOL": "PLAINTEXT"}),
            },
            "GATEWAY_LISTENER_B_SECURITY_PROTOCOL=PLAINTEXT in front of "
            "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        )

    def test_sasl_clients_pass_the_refusal(self) -> None:
        """SASL clients before SASL brokers pass it (the broker side's own check comes next)."""
        message = refused(
            self,
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "KAFKA_SASL_MECHANISM is not set",
        )
        self.assertNotIn("log in for them", message)


class Stores:
    """A CA, the gateway's certificate, and its stores in a test's directory."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.directory = Path(case.mktemp())
        self.directory.mkdir()
        self.authority = Authority()
        self.server = self.authority.issue("gateway")
        self.key_store = write_pkcs12_key_store(
            self.directory / "gateway.p12", self.server, self.authority, CANARY
        )
        self.trust_store = write_pkcs12_trust_store(
            self.directory / "trust.p12", self.authority, CANARY
        )

    def environ(self, trust: bool = False) -> dict[str, str]:
        """The settings of these stores."""
        environ = {
            "GATEWAY_SSL_KEY_STORE_PATH": str(self.key_store),
            "GATEWAY_SSL_KEY_STORE_PASSWORD": CANARY,
        }
        if trust:
            environ["GATEWAY_SSL_TRUST_STORE_PATH"] = str(self.trust_store)
            environ["GATEWAY_SSL_TRUST_STORE_PASSWORD"] = CANARY
        return environ


class ServerTlsTests(SynchronousTestCase):
    """The stores are read at start: each bad one is one line naming the setting and the fix."""

    def setUp(self) -> None:
        self.stores = Stores(self)

    def test_ssl_listener(self) -> None:
        settings = Settings.load(
            {**BOOTSTRAP, "GATEWAY_SECURITY_PROTOCOL": "SSL", **self.stores.environ(trust=True)},
            {},
        )
        self.assertEqual(
            settings.server_tls,
            ServerTls(
                StoreFile(str(self.stores.key_store), None, CANARY),
                None,
                StoreFile(str(self.stores.trust_store), None, CANARY),
                600.0,
            ),
        )
        self.assertTrue(settings.listeners[0].tls)

    def test_pem_key_store_with_an_encrypted_key(self) -> None:
        pem = write_pem_key_store(
            self.stores.directory / "gateway.pem", self.stores.server, self.stores.authority, "k3y"
        )
        base = {
            **BOOTSTRAP,
            "GATEWAY_SECURITY_PROTOCOL": "SSL",
            "GATEWAY_SSL_KEY_STORE_PATH": str(pem),
            "GATEWAY_SSL_KEY_TYPE": "PEM",
        }
        settings = Settings.load({**base, "GATEWAY_SSL_KEY_PASSWORD": "k3y"}, {})
        assert settings.server_tls is not None
        self.assertEqual(settings.server_tls.key_store.type, "PEM")
        refused(self, base, "GATEWAY_SSL_KEY_STORE_PATH", "encrypted", "GATEWAY_SSL_KEY_PASSWORD")
        message = refused(
            self,
            {**base, "GATEWAY_SSL_KEY_PASSWORD": CANARY},
            "GATEWAY_SSL_KEY_PASSWORD does not decrypt the private key",
        )
        self.assertNotIn(CANARY, message)

    def test_no_key_store(self) -> None:
        refused(
            self,
            {"GATEWAY_SECURITY_PROTOCOL": "SASL_SSL"},
            "GATEWAY_SECURITY_PROTOCOL=SASL_SSL needs a key store",
            "set GATEWAY_SSL_KEY_STORE_PATH",
        )
        refused(
            self,
            named(out={"PORTS": "9092", "SECURITY_PROTOCOL": "SSL"}),
            "GATEWAY_LISTENER_OUT_SECURITY_PROTOCOL=SSL needs a key store",
        )

    def test_no_trust_store_for_client_certificates(self) -> None:
        refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_CLIENT_AUTH": "REQUIRE",
                **self.stores.environ(),
            },
            "GATEWAY_SSL_CLIENT_AUTH=REQUIRE needs the CAs",
            "set GATEWAY_SSL_TRUST_STORE_PATH",
        )

    def test_missing_file(self) -> None:
        refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                **self.stores.environ(),
                "GATEWAY_SSL_KEY_STORE_PATH": "/nonexistent/gw.p12",
            },
            "GATEWAY_SSL_KEY_STORE_PATH='/nonexistent/gw.p12': cannot read it",
        )

    def test_wrong_password(self) -> None:
        message = refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                **self.stores.environ(),
                "GATEWAY_SSL_KEY_STORE_PASSWORD": CANARY + "-wrong",
            },
            "GATEWAY_SSL_KEY_STORE_PASSWORD does not open GATEWAY_SSL_KEY_STORE_PATH",
            "a wrong password",
        )
        self.assertNotIn(CANARY, message)
        message = refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_CLIENT_AUTH": "REQUEST",
                **self.stores.environ(trust=True),
                "GATEWAY_SSL_TRUST_STORE_PASSWORD": CANARY + "-wrong",
            },
            "GATEWAY_SSL_TRUST_STORE_PASSWORD",
            "GATEWAY_SSL_TRUST_STORE_PATH",
        )
        self.assertNotIn(CANARY, message)

    def test_wrong_type_says_which(self) -> None:
        pem = write_pem_key_store(
            self.stores.directory / "gw.pem", self.stores.server, self.stores.authority
        )
        refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_KEY_STORE_PATH": str(pem),
                "GATEWAY_SSL_KEY_TYPE": "pkcs12",
            },
            "is not a PKCS12 store (it reads as PEM)",
            "set GATEWAY_SSL_KEY_TYPE=PEM",
        )
        # Unset, the type is found from the file.
        Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_KEY_STORE_PATH": str(pem),
            },
            {},
        )

    def test_key_not_the_certificates(self) -> None:
        other = self.stores.authority.issue("someone else")
        mixed = self.stores.directory / "mixed.pem"
        mixed.write_bytes(other.key_pem() + self.stores.server.certificate_pem())
        refused(
            self,
            {
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_KEY_STORE_PATH": str(mixed),
                "GATEWAY_SSL_KEY_TYPE": "pem",
            },
            "the private key does not match its certificate (CN=gateway,O=kgateway tests)",
        )

    def test_expired_and_not_yet_valid(self) -> None:
        for issued, why in (
            (self.stores.authority.issue("old", starts_in_days=-10, valid_days=5), "expired on"),
            (self.stores.authority.issue("early", starts_in_days=2), "is not valid before"),
        ):
            path = write_pem_key_store(
                self.stores.directory / f"{why[:3]}.pem", issued, self.stores.authority
            )
            refused(
                self,
                {
                    "GATEWAY_SECURITY_PROTOCOL": "SSL",
                    "GATEWAY_SSL_KEY_STORE_PATH": str(path),
                    "GATEWAY_SSL_KEY_TYPE": "pem",
                },
                "GATEWAY_SSL_KEY_STORE_PATH",
                why,
            )

    def test_password_without_a_store(self) -> None:
        for password, store in (
            ("GATEWAY_SSL_KEY_STORE_PASSWORD", "GATEWAY_SSL_KEY_STORE_PATH"),
            ("GATEWAY_SSL_TRUST_STORE_PASSWORD", "GATEWAY_SSL_TRUST_STORE_PATH"),
        ):
            message = refused(self, {password: CANARY}, f"{password} is set but {store} is not")
            self.assertNotIn(CANARY, message)


class NoPasswordShowsTests(SynchronousTestCase):
    """A canary password never reaches a repr, --help or an error."""

    def test_repr_and_help(self) -> None:
        stores = Stores(self)
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_SECURITY_PROTOCOL": "SSL",
                "GATEWAY_SSL_CLIENT_AUTH": "REQUIRE",
                "GATEWAY_SSL_KEY_PASSWORD": CANARY,
                **stores.environ(trust=True),
            },
            {},
        )
        self.assertNotIn(CANARY, repr(settings))
        self.assertNotIn(CANARY, str(settings))
        help_text = str(tap.Options())
        self.assertNotIn(CANARY, help_text)
        self.assertIn("GATEWAY_LISTENER_<NAME>_*", tap.Options.longdesc)
        self.assertIn("_PORTS: FIRST-LAST", tap.Options.longdesc)
