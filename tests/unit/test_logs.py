"""JSON log lines for log shippers, and how twistd is told to use them."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from kgateway.logs import event_as_json_line, json_observer, use_json_logs
from kgateway.node.service import makeService
from tests.unit.node.test_service import make_node


class JsonLineTests(SynchronousTestCase):
    def test_one_object_per_line_with_the_fields(self) -> None:
        out = io.StringIO()
        log = Logger(namespace="kgateway.relay.client_machine", observer=json_observer(out))
        log.info(
            "{conn}: client closed the connection ({reason})",
            conn="client 10.0.0.7:5000",
            reason="Connection was closed cleanly.",
            sent=123,
        )
        [line] = out.getvalue().splitlines()
        record = json.loads(line)
        self.assertRegex(record.pop("time"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
        self.assertEqual(
            record,
            {
                "level": "info",
                "namespace": "kgateway.relay.client_machine",
                "message": "client 10.0.0.7:5000: client closed the connection "
                "(Connection was closed cleanly.)",
                "conn": "client 10.0.0.7:5000",
                "reason": "Connection was closed cleanly.",
                "sent": 123,
            },
        )

    def test_failure_and_odd_values(self) -> None:
        try:
            raise ValueError("bad")
        except ValueError:
            failure = Failure()
        line = event_as_json_line(
            {
                "log_format": "failed with {thing}",
                "log_level": LogLevel.critical,
                "log_namespace": "x",
                "log_time": 0.0,
                "log_failure": failure,
                "thing": object,
                "message": ("legacy",),
            }
        )
        record = json.loads(line)
        self.assertEqual(record["level"], "critical")
        self.assertEqual(record["time"], "1970-01-01T00:00:00.000+00:00")
        self.assertIn("ValueError: bad", record["traceback"])
        self.assertEqual(record["thing"], "<class 'object'>")
        self.assertNotIn("legacy", line)


class TwistdTests(SynchronousTestCase):
    def test_application_component(self) -> None:
        application = Application("kgateway")
        use_json_logs(application)
        self.assertTrue(ILogObserver.providedBy(application.getComponent(ILogObserver)))

    def test_node_installs_json_logs_when_asked(self) -> None:
        node, _, _, _ = make_node([])
        json_node = makeService(replace(node.settings, log_format="json"), node.reactor)
        text, json_app = Application("text"), Application("json")
        node.setServiceParent(text)
        json_node.setServiceParent(json_app)
        self.assertIsNone(text.getComponent(ILogObserver, None))
        self.assertIsNotNone(json_app.getComponent(ILogObserver, None))
