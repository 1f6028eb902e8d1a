"""
The C{kgateway} command against a node's real resources through StubTreq,
and its one-line failures (a subprocess checks there is never a traceback).
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from harness import REPO_ROOT
from kgateway.api import cli
from tests.unit.relay.fakes import ClientSide, metadata_request

from .fakes import AUTH, BASE, ApiNode, make_api_node

ENV = {"KGATEWAY_URL": BASE, "KGATEWAY_USER": AUTH[0], "KGATEWAY_PASSWORD": AUTH[1]}


class CliTestCase(SynchronousTestCase):
    def run_cli(
        self, argv: list[str], http: Any, environ: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        running: Deferred[int] = ensureDeferred(
            cli.run(
                argv, client=http, out=out, err=err, environ=ENV if environ is None else environ
            )
        )
        for _ in range(10):
            if running.called:
                break
            if isinstance(http, StubTreq):
                http.flush()
        return self.successResultOf(running), out.getvalue(), err.getvalue()

    def node(self, **kwargs: Any) -> ApiNode:
        return make_api_node(self, **kwargs)


class CommandTests(CliTestCase):
    def test_status(self) -> None:
        api = self.node()
        code, out, err = self.run_cli(["status"], api.http)
        self.assertEqual((code, err), (cli.OK, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0], "node      gw-a.test:7000@1 on gw-a.test (rack a)")
        self.assertEqual(lines[1], "ready     yes")
        self.assertTrue(lines[2].startswith("version   kgateway "))
        self.assertEqual(lines[3], "cluster   prod (Kafka group kgateway_prod)")
        self.assertEqual(
            lines[5:9],
            [
                "members (2)",
                "ID                HOST       PORTS      MIN BROKER  RACK  JOINED",
                "gw-a.test:7000@1  gw-a.test  7000-7005  0           a     "
                "2023-11-14T22:13:20.000+00:00",
                "gw-b.test:7100@2  gw-b.test  7100-7105  0           b     "
                "2023-11-14T22:15:00.000+00:00",
            ],
        )
        self.assertEqual(
            lines[10:],
            [
                "brokers (3)",
                "ID  HOST      PORT  RACK",
                "1   k1.kafka  9092  a",
                "2   k2.kafka  9092  b",
                "3   k3.kafka  9092  c",
            ],
        )

    def test_status_not_ready_exits_3(self) -> None:
        api = self.node()
        api.membership.is_member = False
        code, out, _ = self.run_cli(["status"], api.http)
        self.assertEqual(code, cli.NOT_READY)
        self.assertIn(
            "ready     NO: not a member of gateway cluster 'prod' (group kgateway_prod) yet", out
        )

    def test_status_json(self) -> None:
        api = self.node()
        code, out, _ = self.run_cli(["--json", "status"], api.http)
        self.assertEqual(code, cli.OK)
        data = json.loads(out)
        self.assertEqual(set(data), {"ready", "readiness", "cluster", "versions"})
        self.assertTrue(data["ready"])

    def test_mapping(self) -> None:
        api = self.node()
        code, out, _ = self.run_cli(["mapping"], api.http)
        self.assertEqual(code, cli.OK)
        self.assertEqual(
            out.splitlines(),
            [
                "mode: rack-aware, listener DEFAULT",
                "BROKER  RACK  ADDRESS        SAME RACK  HANDED OUT AT",
                "1       a     k1.kafka:9092  yes        gw-a.test:7001 (gw-a.test:7000@1)",
                "2       b     k2.kafka:9092  yes        gw-b.test:7102 (gw-b.test:7100@2)",
                "3       c     k3.kafka:9092  no         gw-a.test:7003 (gw-a.test:7000@1), "
                "gw-b.test:7103 (gw-b.test:7100@2)",
            ],
        )

    def test_mapping_for_a_rack_and_json(self) -> None:
        api = self.node()
        code, out, _ = self.run_cli(["--json", "mapping", "--rack", "c"], api.http)
        self.assertEqual(code, cli.OK)
        self.assertEqual([b["broker_id"] for b in json.loads(out)["brokers"]], [3])

    def test_mapping_unknown_rack(self) -> None:
        api = self.node()
        code, out, err = self.run_cli(["mapping", "--rack", "q"], api.http)
        self.assertEqual((code, out), (cli.FAILED, ""))
        self.assertEqual(
            err, "kgateway: Unknown rack: no broker is in rack 'q'; racks: a, b, c (HTTP 404)\n"
        )

    def test_connections(self) -> None:
        api = self.node()
        code, out, _ = self.run_cli(["connections"], api.http)
        self.assertEqual(out, "0 client connection(s) on gw-a.test:7000@1\n")
        client = ClientSide(api.node.factory, gateway_port=7001, port=40002)
        client.send(metadata_request(1))
        api.clock.advance(2)
        code, out, _ = self.run_cli(["connections"], api.http)
        self.assertEqual(code, cli.OK)
        self.assertEqual(
            out.splitlines(),
            [
                "1 client connection(s) on gw-a.test:7000@1",
                "PEER            PORT -> BROKER  BROKER         CLIENT ID    IN  OUT  IN FLIGHT"
                "  AGE",
                "10.0.0.7:40002  7001 -> 1       k1.kafka:9092  test-client  30  0    1        "
                "  2.0s",
            ],
        )
        code, out, _ = self.run_cli(["--json", "connections"], api.http)
        self.assertEqual(json.loads(out)["connections"][0]["peer"], "10.0.0.7:40002")


class FailureTests(CliTestCase):
    def test_wrong_credentials(self) -> None:
        api = self.node()
        code, out, err = self.run_cli(
            ["--user", "ops", "--password", "wrong", "status"], api.http, environ={}
        )
        self.assertEqual((code, out), (cli.FAILED, ""))
        self.assertEqual(
            err,
            "kgateway: http://127.0.0.1:8888 refused the credentials (401): check --user and "
            "--password (or KGATEWAY_USER and KGATEWAY_PASSWORD)\n",
        )

    def test_no_credentials(self) -> None:
        api = self.node()
        code, _, err = self.run_cli(["--url", BASE, "mapping"], api.http, environ={})
        self.assertEqual(code, cli.FAILED)
        self.assertIn("refused the credentials (401)", err)

    def test_user_without_password(self) -> None:
        code, _, err = self.run_cli(["--user", "ops", "status"], None, environ={})
        self.assertEqual(
            (code, err), (cli.USAGE, "kgateway: give both --user and --password (or neither)\n")
        )

    def test_unreachable(self) -> None:
        class Refusing:
            def get(self, url: str, **kwargs: Any) -> Any:
                return fail(ConnectionRefusedError("111: Connection refused"))

        code, _, err = self.run_cli(["status"], Refusing())
        self.assertEqual(code, cli.FAILED)
        self.assertEqual(
            err,
            f"kgateway: cannot reach {BASE}: Connection was refused by other side: "
            "111: Connection refused.\n",
        )

    def test_not_an_admin_api(self) -> None:
        root = Resource()
        root.putChild(b"health", Resource())
        root.children[b"health"].putChild(b"ready", Data(b"<html>hello</html>", "text/html"))
        code, _, err = self.run_cli(["status"], StubTreq(root))
        self.assertEqual(code, cli.FAILED)
        self.assertEqual(
            err,
            f"kgateway: {BASE}/health/ready answered HTTP 200 but not in JSON: is it a "
            "kgateway admin API?\n",
        )

    def test_unreachable_for_real_no_traceback(self) -> None:
        """The console entry point against a closed port: one line, exit 1."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kgateway.api.cli",
                "--url",
                f"http://127.0.0.1:{port}",
                "status",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr,
            f"kgateway: cannot reach http://127.0.0.1:{port}: Connection was refused by other "
            "side: 111: Connection refused.\n",
        )
