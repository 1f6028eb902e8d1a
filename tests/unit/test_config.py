"""
Settings.load: defaults, options over environment, and one actionable line
for every bad value; and the twistd plugin's exit on a bad setting.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import socket
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from kgateway import config, tap
from kgateway.config import (
    FAMILIES,
    SETTINGS,
    AdminUser,
    ConfigError,
    Settings,
    kafka_client_settings,
)
from kgateway.net import HostPort
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from kgateway.setting import Setting, path, positive_int, settings_table

BOOTSTRAP = {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9093"}
NO_OPTIONS: dict[str, str | None] = {s.option: None for s in SETTINGS}


class DefaultsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        settings = Settings.load(BOOTSTRAP, NO_OPTIONS)
        self.assertEqual(settings.bootstrap_servers, (HostPort("k1", 9092), HostPort("k2", 9093)))
        self.assertEqual(settings.bind_host, "0.0.0.0")
        self.assertEqual(settings.advertised_host, socket.gethostname())
        self.assertEqual(settings.port_start, 6969)
        self.assertIsNone(settings.port_count)
        self.assertEqual(settings.min_broker_id, 0)
        self.assertEqual(settings.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES)
        self.assertEqual(settings.metadata_refresh_seconds, 5.0)
        self.assertEqual(settings.upstream_connect_timeout_seconds, 10.0)
        self.assertEqual(settings.kafka, {})

    def test_environment_read(self) -> None:
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_BIND_HOST": "127.0.0.1",
                "GATEWAY_ADVERTISED_HOST": "gw.example.com",
                "GATEWAY_PORT_START": "7000",
                "GATEWAY_PORT_COUNT": "12",
                "GATEWAY_MIN_BROKERID": "1",
                "GATEWAY_MAX_FRAME_BYTES": "1000",
                "GATEWAY_METADATA_REFRESH_MS": "250",
                "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS": "1500",
            },
            {},
        )
        self.assertEqual(
            (
                settings.bind_host,
                settings.advertised_host,
                settings.port_start,
                settings.port_count,
                settings.min_broker_id,
                settings.max_frame_bytes,
                settings.metadata_refresh_seconds,
                settings.upstream_connect_timeout_seconds,
            ),
            ("127.0.0.1", "gw.example.com", 7000, 12, 1, 1000, 0.25, 1.5),
        )

    def test_option_beats_environment(self) -> None:
        settings = Settings.load(
            {**BOOTSTRAP, "GATEWAY_PORT_START": "7000", "GATEWAY_ADVERTISED_HOST": "env-host"},
            {**NO_OPTIONS, "port-start": "8000", "bootstrap-servers": "opt:1234"},
        )
        self.assertEqual(settings.port_start, 8000)
        self.assertEqual(settings.bootstrap_servers, (HostPort("opt", 1234),))
        self.assertEqual(settings.advertised_host, "env-host")

    def test_ipv6_bootstrap(self) -> None:
        settings = Settings.load({"KAFKA_BOOTSTRAP_SERVERS": "[::1]:9092"}, {})
        self.assertEqual(settings.bootstrap_servers, (HostPort("::1", 9092),))

    def test_kafka_client_settings(self) -> None:
        """The KAFKA_* variables without a row of their own, as Kafka names them."""
        self.assertEqual(
            kafka_client_settings(
                {
                    **BOOTSTRAP,
                    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                    "KAFKA_CLIENT_ID": "me",
                    "KAFKA_SASL_LOGIN_CALLBACK_HANDLER_CLASS": "x.Y",
                    "GATEWAY_PORT_START": "1",
                    "PATH": "/bin",
                }
            ),
            {"client.id": "me", "sasl.login.callback.handler.class": "x.Y"},
        )
        settings = Settings.load(
            {**BOOTSTRAP, "KAFKA_SECURITY_PROTOCOL": "plaintext", "KAFKA_CLIENT_ID": "me"}, {}
        )
        self.assertEqual(settings.kafka, {"client.id": "me"})
        self.assertEqual(settings.broker_security.protocol, "PLAINTEXT")


class BadValueTests(SynchronousTestCase):
    """Each bad value: a ConfigError of one line naming the setting and the value."""

    def assert_refused(
        self,
        environ: dict[str, str],
        setting: str,
        value: str,
        options: dict[str, str | None] | None = None,
    ) -> str:
        with self.assertRaises(ConfigError) as caught:
            Settings.load(environ, options or {})
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn(setting, message)
        self.assertIn(value, message)
        return message

    def test_non_numeric(self) -> None:
        for name in (
            "GATEWAY_PORT_START",
            "GATEWAY_PORT_COUNT",
            "GATEWAY_MIN_BROKERID",
            "GATEWAY_MAX_FRAME_BYTES",
            "GATEWAY_METADATA_REFRESH_MS",
            "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS",
        ):
            message = self.assert_refused({**BOOTSTRAP, name: "ten"}, name, "'ten'")
            self.assertIn("not a whole number", message)

    def test_out_of_range_values(self) -> None:
        for name, value, why in (
            ("GATEWAY_PORT_START", "70000", "not a port number (1-65535)"),
            ("GATEWAY_PORT_START", "0", "not a port number (1-65535)"),
            ("GATEWAY_PORT_COUNT", "0", "must be 1 or more"),
            ("GATEWAY_MIN_BROKERID", "-1", "must be 0 or more"),
            ("GATEWAY_MAX_FRAME_BYTES", "-5", "must be 1 or more"),
            ("GATEWAY_METADATA_REFRESH_MS", "0", "must be 1 or more"),
        ):
            message = self.assert_refused({**BOOTSTRAP, name: value}, name, value)
            self.assertIn(why, message)

    def test_option_named_when_bad(self) -> None:
        self.assert_refused(BOOTSTRAP, "GATEWAY_PORT_START", "99999", {"port-start": "99999"})

    def test_port_range_past_65535(self) -> None:
        message = self.assert_refused(
            {**BOOTSTRAP, "GATEWAY_PORT_START": "65530", "GATEWAY_PORT_COUNT": "10"},
            "GATEWAY_PORT_COUNT",
            "10",
        )
        self.assertIn("65530", message)
        self.assertIn("at most 6", message)
        # The last port exactly at 65535 is fine.
        Settings.load({**BOOTSTRAP, "GATEWAY_PORT_START": "65530", "GATEWAY_PORT_COUNT": "6"}, {})

    def test_bootstrap_missing_or_empty(self) -> None:
        for environ in ({}, {"KAFKA_BOOTSTRAP_SERVERS": ""}, {"KAFKA_BOOTSTRAP_SERVERS": "  "}):
            message = self.assert_refused(environ, "KAFKA_BOOTSTRAP_SERVERS", "not set")
            self.assertIn("host:port", message)

    def test_bad_host_port(self) -> None:
        for value, culprit in (
            ("localhost", "'localhost' is not host:port"),
            (":9092", "':9092' is not host:port"),
            ("k1:9092,,k2:9092", "'' is not host:port"),
            ("k1:abc", "'abc' is not a whole number"),
            ("k1:", "'' is not a whole number"),
            ("k1:9092,k2:99999", "99999 is not a port number"),
        ):
            message = self.assert_refused(
                {"KAFKA_BOOTSTRAP_SERVERS": value}, "KAFKA_BOOTSTRAP_SERVERS", repr(value)
            )
            self.assertIn(culprit, message)

    def test_bad_host(self) -> None:
        self.assert_refused(
            {**BOOTSTRAP, "GATEWAY_ADVERTISED_HOST": "two words"},
            "GATEWAY_ADVERTISED_HOST",
            "'two words'",
        )
        self.assert_refused({**BOOTSTRAP, "GATEWAY_BIND_HOST": ""}, "GATEWAY_BIND_HOST", "''")

    def test_unknown_security_protocol(self) -> None:
        message = self.assert_refused(
            {**BOOTSTRAP, "KAFKA_SECURITY_PROTOCOL": "SASL_TLS"},
            "KAFKA_SECURITY_PROTOCOL",
            "SASL_TLS",
        )
        self.assertIn("valid: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", message)

    def test_value_with_newline_stays_one_line(self) -> None:
        self.assert_refused(
            {**BOOTSTRAP, "GATEWAY_PORT_START": "1\n2"}, "GATEWAY_PORT_START", "'1\\n2'"
        )


class PluginTests(SynchronousTestCase):
    """twistd kgateway: a bad setting is one line on stderr and exit status 2."""

    def test_bad_setting_exits_with_one_line(self) -> None:
        self.patch(os, "environ", {**BOOTSTRAP, "GATEWAY_PORT_START": "nope"})
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        options = tap.Options()
        options.parseOptions([])
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options)
        self.assertEqual(caught.exception.code, 2)
        self.assertIsNone(caught.exception.__cause__)
        self.assertTrue(caught.exception.__suppress_context__)
        lines = stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("GATEWAY_PORT_START='nope'", lines[0])
        self.assertNotIn("Traceback", stderr.getvalue())

    def test_missing_bootstrap_exits(self) -> None:
        self.patch(os, "environ", {})
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        options = tap.Options()
        options.parseOptions([])
        with self.assertRaises(SystemExit):
            tap.makeService(options)
        self.assertEqual(len(stderr.getvalue().splitlines()), 1)
        self.assertIn("KAFKA_BOOTSTRAP_SERVERS is not set", stderr.getvalue())

    def test_options_reach_the_node(self) -> None:
        from tests.unit.node.reactors import NodeMemoryReactor

        self.patch(os, "environ", {**BOOTSTRAP})
        options = tap.Options()
        options.parseOptions(["--port-start", "7100", "--advertised-host", "gw"])
        node = tap.makeService(options, reactor=NodeMemoryReactor())
        self.assertEqual(node.settings.port_start, 7100)
        self.assertEqual(node.settings.advertised_host, "gw")


class AdminApiSettingsTests(SynchronousTestCase):
    """The admin API's settings; the users' passwords never appear in an error."""

    def load(self, **environ: str) -> Settings:
        return Settings.load({**BOOTSTRAP, **environ}, NO_OPTIONS)

    def error(self, **environ: str) -> str:
        with self.assertRaises(ConfigError) as caught:
            self.load(**environ)
        message = str(caught.exception)
        self.assertEqual(len(message.splitlines()), 1, message)
        return message

    def test_defaults(self) -> None:
        settings = self.load()
        self.assertEqual(
            (
                settings.http_port,
                settings.http_bind_host,
                settings.http_tls,
                settings.admin_api_users,
                settings.secured_metrics,
                settings.admin_api_open_on_loopback,
                settings.log_format,
            ),
            (8888, "0.0.0.0", None, (), True, False, "text"),
        )
        self.assertIn("no admin API users", settings.admin_api_refusal or "")

    def test_read(self) -> None:
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "GATEWAY_HTTP_PORT": "9443",
                "GATEWAY_HTTP_BIND_HOST": "127.0.0.1",
                "GATEWAY_ADMIN_API_USERS": '[{"username": "ops", "password": "pw", "admin": true},'
                ' {"username": "ro", "password": "x:y"}]',
                "GATEWAY_SECURED_METRICS": "false",
                "GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK": "true",
                "GATEWAY_LOG_FORMAT": "JSON",
            },
            {**NO_OPTIONS, "http-port": "9444"},
        )
        self.assertEqual(settings.http_port, 9444)
        self.assertEqual(settings.http_bind_host, "127.0.0.1")
        self.assertEqual(
            settings.admin_api_users,
            (AdminUser("ops", "pw", True), AdminUser("ro", "x:y", False)),
        )
        self.assertFalse(settings.secured_metrics)
        self.assertTrue(settings.admin_api_open_on_loopback)
        self.assertEqual(settings.log_format, "json")
        self.assertIsNone(settings.admin_api_refusal)

    def test_password_not_in_repr(self) -> None:
        settings = self.load(GATEWAY_ADMIN_API_USERS='[{"username": "ops", "password": "hunter2"}]')
        self.assertNotIn("hunter2", repr(settings))
        self.assertIn("ops", repr(settings))

    def test_bad_users_one_line_without_the_value(self) -> None:
        secret = "hunter2"
        cases = {
            "[": "GATEWAY_ADMIN_API_USERS is not valid JSON",
            f'{{"username": "u", "password": "{secret}"}}': "must be a JSON list",
            f'["{secret}"]': "entry 1 is not an object",
            f'[{{"password": "{secret}"}}]': 'entry 1 needs a non-empty "username"',
            f'[{{"username": "a:b", "password": "{secret}"}}]': "without ':'",
            '[{"username": "u"}]': "user 'u' needs a non-empty \"password\"",
            f'[{{"username": "u", "password": "{secret}", "admin": "yes"}}]': '"admin" must be',
            f'[{{"username": "u", "password": "{secret}", "role": 1}}]': "unknown key(s) role",
            f'[{{"username": "u", "password": "{secret}"}}, '
            '{"username": "u", "password": "x"}]': "user 'u' is listed twice",
        }
        for value, expected in cases.items():
            message = self.error(GATEWAY_ADMIN_API_USERS=value)
            self.assertIn(expected, message)
            self.assertNotIn(secret, message)

    def test_bad_values(self) -> None:
        self.assertIn("not a port number", self.error(GATEWAY_HTTP_PORT="0"))
        self.assertIn("valid: true or false", self.error(GATEWAY_SECURED_METRICS="maybe"))
        self.assertEqual(
            self.error(GATEWAY_LOG_FORMAT="xml"), "GATEWAY_LOG_FORMAT='xml': valid: text or json"
        )

    def test_tls_needs_both_readable_matching_files(self) -> None:
        self.assertEqual(
            self.error(GATEWAY_HTTP_TLS_KEY="/k.pem"),
            "GATEWAY_HTTP_TLS_KEY is set but GATEWAY_HTTP_TLS_CERT is not: HTTPS needs both PEM "
            "files",
        )
        self.assertEqual(
            self.error(GATEWAY_HTTP_TLS_KEY="/nonexistent/k.pem", GATEWAY_HTTP_TLS_CERT="/c.pem"),
            "GATEWAY_HTTP_TLS_KEY='/nonexistent/k.pem': cannot read it (No such file or directory)",
        )
        garbage = self.mktemp()
        with open(garbage, "w") as f:
            f.write("not pem\n")
        message = self.error(GATEWAY_HTTP_TLS_KEY=garbage, GATEWAY_HTTP_TLS_CERT=garbage)
        self.assertIn("not a PEM certificate and its matching private key", message)


README = Path(__file__).parents[2] / "README.md"


def readme_table(text: str) -> str:
    """The settings table of the README's "Running a node" section, as its lines."""
    section = text.split("\n## Running a node\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = lines.index("| environment variable | option | default | meaning |")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


class RowTests(SynchronousTestCase):
    """Each setting is one row: the dataclass, --help and the README are made from it."""

    def test_readme_table_is_the_rows(self) -> None:
        """The README's table lists the rows' variables, options, defaults and help, in order."""
        expected = settings_table(SETTINGS, FAMILIES)
        found = readme_table(README.read_text())
        if found != expected:
            self.fail(
                'README.md\'s settings table (section "Running a node") is not what the rows '
                "in kgateway/config.py say; replace it with the output of "
                "`python -m kgateway.config --markdown`:\n" + expected
            )

    def test_readme_check_notices_a_change(self) -> None:
        """A README whose table lost a row, or changed a default, fails the comparison."""
        text = README.read_text()
        table = readme_table(text)
        for changed in (
            text.replace("| `6969` |", "| `7000` |"),
            text.replace(table.splitlines()[3] + "\n", ""),
        ):
            self.assertNotEqual(readme_table(changed), table)

    def test_markdown_command(self) -> None:
        """python -m kgateway.config --markdown prints the table; anything else is usage."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        self.assertEqual(config.main(["--markdown"]), 0)
        self.assertEqual(out.getvalue(), settings_table(SETTINGS, FAMILIES))
        self.assertEqual(config.main([]), 2)
        self.assertIn("usage", err.getvalue())

    def test_table_cells_escaped(self) -> None:
        """A pipe or angle brackets in a row do not break the Markdown table."""
        row = Setting("X_Y", "x-y", None, positive_int, None, "a | b", unset="k_<id>")
        line = settings_table([row], []).splitlines()[2]
        self.assertEqual(line, "| `X_Y` | `--x-y` | k_&lt;id&gt; | a \\| b |")

    def test_dataclass_defaults_are_the_rows(self) -> None:
        """Every row with a default is its field's default, parsed."""
        defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
        for row in SETTINGS:
            if row.field is not None and row.default is not None:
                self.assertEqual(defaults[row.field], row.initial(), row.env)

    def test_every_field_has_a_row(self) -> None:
        """
        Each Settings field is filled by a row, a family, the admin API's TLS
        pair, the client side's TLS rows or the host-routing rows; nothing else.
        """
        filled = {row.field for row in SETTINGS if row.field} | {f.field for f in FAMILIES}
        self.assertEqual(
            {f.name for f in dataclasses.fields(Settings)},
            filled | {"http_tls", "server_tls", "broker_security", "host_routing"},
            "fields",
        )
        self.assertEqual(len(filled), len([row for row in SETTINGS if row.field]) + len(FAMILIES))

    def test_names_unique(self) -> None:
        """No two rows share a variable or an option."""
        self.assertEqual(len({row.env for row in SETTINGS}), len(SETTINGS))
        self.assertEqual(len({row.option for row in SETTINGS}), len(SETTINGS))

    def test_variables_named_in_help_exist(self) -> None:
        """A setting named in another's help is a real setting (not a renamed one)."""
        known = {row.env for row in SETTINGS}
        # A family is named by its prefix (GATEWAY_LISTENER_<NAME>_*).
        known |= {family.prefix.split("<")[0] for family in FAMILIES}
        for row in SETTINGS:
            for name in re.findall(r"\b(?:GATEWAY|KAFKA)_[A-Z_]+\b", row.about):
                self.assertIn(name, known, row.env)

    def test_help_shows_variable_and_default(self) -> None:
        """twistd kgateway --help gives each option's variable, and its default when it has one."""
        helps = {name: text for name, _, _, text in tap.Options.optParameters}
        self.assertEqual(list(helps), [row.option for row in SETTINGS])
        for row in SETTINGS:
            self.assertIn(f"[env {row.env}", helps[row.option])
            if row.default is not None:
                self.assertIn(f"default {row.default}]", helps[row.option])
        self.assertIn("(default: this machine's host name)", helps["advertised-host"])
        self.assertIn("(required)", helps["bootstrap-servers"])

    def test_every_bad_value_is_one_line(self) -> None:
        """Every setting refuses a bad value in one line naming the setting and the value."""
        bad = "no good\n"
        for row in SETTINGS:
            if row.parse is path:
                continue  # the TLS files: checked as a pair, below
            with self.assertRaises(ConfigError) as caught:
                Settings.load({**BOOTSTRAP, row.env: bad}, {})
            message = str(caught.exception)
            self.assertNotIn("\n", message, row.env)
            self.assertIn(row.env, message)
            if not row.secret:
                self.assertIn(repr(bad), message, row.env)
        with self.assertRaises(ConfigError) as caught:
            Settings.load(
                {**BOOTSTRAP, "GATEWAY_HTTP_TLS_KEY": bad, "GATEWAY_HTTP_TLS_CERT": bad}, {}
            )
        self.assertIn(f"GATEWAY_HTTP_TLS_KEY={bad!r}", str(caught.exception))

    def test_secrets_never_echoed(self) -> None:
        """A secret's bad value is refused without repeating it."""
        secrets = [row for row in SETTINGS if row.secret]
        self.assertEqual(
            [row.env for row in secrets],
            [
                "GATEWAY_ADMIN_API_USERS",
                "GATEWAY_SSL_KEY_STORE_PASSWORD",
                "GATEWAY_SSL_KEY_PASSWORD",
                "GATEWAY_SSL_TRUST_STORE_PASSWORD",
                "KAFKA_SSL_TRUSTSTORE_PASSWORD",
                "KAFKA_SSL_KEYSTORE_PASSWORD",
                "KAFKA_SSL_KEY_PASSWORD",
                "KAFKA_SASL_JAAS_CONFIG",
            ],
        )
        for row in secrets:
            for value in ("[hunter2", '"hunter2"', '[{"password": "hunter2"}]', '{"hunter2": 1}'):
                with self.assertRaises(ConfigError) as caught:
                    Settings.load({**BOOTSTRAP, row.env: value}, {})
                self.assertIn(row.env, str(caught.exception))
                self.assertNotIn("hunter2", str(caught.exception))


class GroupIdTests(SynchronousTestCase):
    """The group id defaults to one made of the cluster id, however Settings is made."""

    def test_constructed(self) -> None:
        """Settings(cluster_id=...) without a group id gets kgateway_<cluster id>."""
        bootstrap = (HostPort("k", 9092),)
        self.assertEqual(Settings(bootstrap).group_id, "kgateway_gateway")
        self.assertEqual(Settings(bootstrap, cluster_id="prod").group_id, "kgateway_prod")
        self.assertEqual(Settings(bootstrap, cluster_id="prod", group_id="g").group_id, "g")

    def test_loaded(self) -> None:
        """GATEWAY_CLUSTER_ID alone names the group; GATEWAY_GROUP_ID wins; blank is unset."""
        self.assertEqual(
            Settings.load({**BOOTSTRAP, "GATEWAY_CLUSTER_ID": "prod"}, {}).group_id,
            "kgateway_prod",
        )
        both = {**BOOTSTRAP, "GATEWAY_CLUSTER_ID": "prod", "GATEWAY_GROUP_ID": "mine"}
        self.assertEqual(Settings.load(both, {}).group_id, "mine")
        blank = {**BOOTSTRAP, "GATEWAY_GROUP_ID": " "}
        self.assertEqual(Settings.load(blank, {}).group_id, "kgateway_gateway")
