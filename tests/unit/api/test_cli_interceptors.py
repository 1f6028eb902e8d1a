"""
C{kgateway interceptors ...} and C{kgateway plugins} against a node's real
resources (and a fake interceptors topic) through StubTreq.
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import REPO_ROOT
from kgateway.api import cli

from .fakes import VIEWER, ApiNode
from .test_cli import ENV, CliTestCase

IDS = {"plugin": "client-id-required", "priority": 10, "config": {"pattern": "app-.*"}}


class InterceptorCommandTests(CliTestCase):
    def setUp(self) -> None:
        self.api: ApiNode = self.node()

    def config_file(self, content: str) -> str:
        path: str = self.mktemp()
        with open(path, "w") as f:
            f.write(content)
        return path

    def test_put_list_get_delete(self) -> None:
        path = self.config_file(json.dumps(IDS))
        code, out, err = self.run_cli(["interceptors", "put", "ids", "--file", path], self.api.http)
        self.assertEqual(
            (code, out, err), (cli.OK, "interceptor ids created (client-id-required)\n", "")
        )
        code, out, _ = self.run_cli(["interceptors", "put", "ids", "--file", path], self.api.http)
        self.assertEqual(out, "interceptor ids replaced (client-id-required)\n")
        self.assertEqual(len(self.api.topic.records), 2)

        code, out, err = self.run_cli(["interceptors", "list"], self.api.http)
        self.assertEqual((code, err), (cli.OK, ""))
        self.assertEqual(
            out.splitlines(),
            [
                "1 interceptor(s)",
                "PRIORITY  NAME  PLUGIN              SCOPE   CONFIG                 ON THIS NODE",
                '10        ids   client-id-required  global  {"pattern": "app-.*"}  running',
            ],
        )
        code, out, _ = self.run_cli(["interceptors", "get", "ids"], self.api.http)
        self.assertEqual(json.loads(out), {**IDS, "name": "ids", "scope": "global"})
        code, out, _ = self.run_cli(["--json", "interceptors", "list"], self.api.http)
        self.assertEqual(json.loads(out)["interceptors"][0]["name"], "ids")

        code, out, err = self.run_cli(["interceptors", "delete", "ids"], self.api.http)
        self.assertEqual((code, out, err), (cli.OK, "interceptor ids deleted\n", ""))
        code, out, _ = self.run_cli(["interceptors", "list"], self.api.http)
        self.assertEqual(out, "0 interceptor(s)\n")

    def test_a_rejected_config_is_one_line_and_exit_1(self) -> None:
        path = self.config_file(json.dumps({**IDS, "config": {"colour": "red"}}))
        code, out, err = self.run_cli(["interceptors", "put", "ids", "--file", path], self.api.http)
        self.assertEqual((code, out), (cli.FAILED, ""))
        self.assertEqual(len(err.splitlines()), 1)
        self.assertTrue(err.startswith("kgateway: Invalid interceptor: "), err)
        self.assertIn("colour", err)
        self.assertIn("(HTTP 400)", err)
        self.assertEqual(self.api.topic.records, [])

    def test_not_json(self) -> None:
        path = self.config_file("{plugin: nope")
        code, _, err = self.run_cli(["interceptors", "put", "ids", "--file", path], self.api.http)
        self.assertEqual(code, cli.FAILED)
        self.assertIn("the body is not JSON", err)

    def test_unreadable_file(self) -> None:
        code, _, err = self.run_cli(
            ["interceptors", "put", "ids", "--file", "/nonexistent/ids.json"], self.api.http
        )
        self.assertEqual(
            (code, err),
            (cli.FAILED, "kgateway: --file /nonexistent/ids.json: No such file or directory\n"),
        )

    def test_missing_and_forbidden(self) -> None:
        code, _, err = self.run_cli(["interceptors", "get", "nosuch"], self.api.http)
        self.assertEqual(
            (code, err),
            (cli.FAILED, "kgateway: Not found: no interceptor named 'nosuch' (HTTP 404)\n"),
        )
        code, _, err = self.run_cli(["interceptors", "delete", "nosuch"], self.api.http)
        self.assertIn("(HTTP 404)", err)
        viewer = {**ENV, "KGATEWAY_USER": VIEWER.username, "KGATEWAY_PASSWORD": VIEWER.password}
        path = self.config_file(json.dumps(IDS))
        code, _, err = self.run_cli(
            ["interceptors", "put", "ids", "--file", path], self.api.http, environ=viewer
        )
        self.assertEqual(
            (code, err),
            (
                cli.FAILED,
                "kgateway: Forbidden: changing interceptors needs an admin user (HTTP 403)\n",
            ),
        )

    def test_plugins(self) -> None:
        code, out, err = self.run_cli(["plugins"], self.api.http)
        self.assertEqual((code, err), (cli.OK, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["PLUGIN", "DESCRIPTION"])
        self.assertIn("client-id-required", out)

    def test_stdin_and_no_traceback_for_real(self) -> None:
        """The console entry point reads - from stdin, and an unreachable node is one line."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kgateway.api.cli",
                "--url",
                "http://127.0.0.1:9",
                "--timeout",
                "5",
                "interceptors",
                "put",
                "ids",
                "--file",
                "-",
            ],
            input=json.dumps(IDS),
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=60,
        )
        self.assertEqual(result.returncode, cli.FAILED)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn("cannot reach http://127.0.0.1:9", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
