"""
The example plugin in C{tests/example_plugin}: what C{topic-prefix-guard}
does with requests and responses, how it checks its config, and that its
wheel, installed in a directory of its own, is discovered next to the
built-ins without an C{__init__.py} of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse
from kafka.protocol.producer import ProduceRequest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harness import REPO_ROOT
from harness.plugin_package import EXAMPLE_PLUGIN as EXAMPLE
from harness.plugin_package import build_wheel, install_wheel
from kgateway.interceptors.api import (
    AuditEvent,
    ClientInfo,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    RequestCall,
    Respond,
    ResponseCall,
)
from kgateway.protocol.codec import decode_response, encode_response

MODULE = EXAMPLE / "kgateway" / "plugins" / "kgateway_example.py"
CLIENT = ClientInfo("10.0.0.7:50000", broker_id=1, client_id="app")


def load_example() -> ModuleType:
    """The example's module, loaded from its source file under a name of its own."""
    spec = importlib.util.spec_from_file_location("kgateway_example_under_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


def framed(message: Any, correlation_id: int = 7) -> bytes:
    message.with_header(correlation_id=correlation_id, client_id="app")
    return bytes(message.encode(header=True, framed=True))


def produce(*topics: str, version: int = 9) -> RequestCall:
    cls = ProduceRequest[version]
    data = [
        cls.TopicProduceData(
            name=topic,
            partition_data=[cls.TopicProduceData.PartitionProduceData(index=0, records=None)],
        )
        for topic in topics
    ]
    message = cls(transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data)
    return RequestCall(CLIENT, ApiKey.Produce, version, 7, framed(message))


def create_topics(*topics: str, version: int = 7) -> RequestCall:
    cls = CreateTopicsRequest[version]
    wanted = [
        cls.CreatableTopic(
            name=topic, num_partitions=1, replication_factor=1, assignments=[], configs=[]
        )
        for topic in topics
    ]
    message = cls(topics=wanted, timeout_ms=1000, validate_only=False)
    return RequestCall(CLIENT, ApiKey.CreateTopics, version, 8, framed(message))


class GuardTests(SynchronousTestCase):
    """topic-prefix-guard on single messages."""

    def setUp(self) -> None:
        self.events: list[AuditEvent] = []
        self.context = InterceptorContext(Clock(), "prefixes", audit=self.events.append)

    def guard(self, **config: Any) -> Any:
        interceptor = example.topic_prefix_guard.build(
            {"prefixes": ["team-a.", "shared."], **config}, self.context
        )
        self.assertTrue(IInterceptor.providedBy(interceptor))
        return interceptor

    def test_wants_only_what_it_checks(self) -> None:
        """Produce and CreateTopics requests, ApiVersions responses; nothing else is decoded."""
        guard = self.guard()
        self.assertEqual(set(guard.requests), {0, 19})
        self.assertEqual(set(guard.responses), {18})
        self.assertEqual(set(self.guard(refuseCreate=False).requests), {0})

    def test_allowed_produce_passes_unchanged(self) -> None:
        call = produce("team-a.orders", "shared.clicks")
        self.assertIsNone(self.guard().on_request(call))
        self.assertFalse(call.changed)
        self.assertEqual(self.events, [])

    def test_produce_outside_the_prefixes_is_refused(self) -> None:
        """Every partition gets TOPIC_AUTHORIZATION_FAILED with the reason, and it is audited."""
        guard = self.guard()
        call = produce("team-a.orders", "team-b.orders")
        outcome = guard.on_request(call)
        self.assertIsInstance(outcome, Respond)
        reason = "topic(s) team-b.orders outside the allowed prefixes team-a., shared."
        answers = {
            (topic.name, p.index, p.error_code, p.error_message)
            for topic in outcome.message.responses
            for p in topic.partition_responses
        }
        self.assertEqual(
            answers, {("team-a.orders", 0, 29, reason), ("team-b.orders", 0, 29, reason)}
        )
        self.assertEqual(guard.refused, 1)
        [event] = self.events
        self.assertEqual(
            (event.interceptor, event.plugin, event.api_key, event.decision, event.reason),
            ("prefixes", "topic-prefix-guard", 0, "denied", reason),
        )
        self.assertEqual(event.details, {"topics": ["team-b.orders"]})

    def test_create_outside_the_prefixes_is_refused(self) -> None:
        outcome = self.guard().on_request(create_topics("elsewhere", "team-a.new"))
        self.assertIsInstance(outcome, Respond)
        self.assertEqual(
            {(t.name, t.error_code) for t in outcome.message.topics},
            {("elsewhere", 44), ("team-a.new", 44)},
        )
        self.assertIsNone(self.guard().on_request(create_topics("team-a.new")))

    def test_api_versions_capped_below_topic_ids(self) -> None:
        """Produce is offered up to v12 (topics by name); other APIs are left alone."""
        cls = ApiVersionsResponse[3]
        offered = cls(
            error_code=0,
            api_keys=[
                cls.ApiVersion(api_key=0, min_version=3, max_version=13),
                cls.ApiVersion(api_key=1, min_version=4, max_version=17),
            ],
            throttle_time_ms=0,
        )
        frame = encode_response(offered, 3, 3)
        call = ResponseCall(CLIENT, ApiKey.ApiVersions, 3, 3, frame)
        self.assertIsNone(self.guard().on_response(call))
        self.assertTrue(call.changed)
        again = decode_response(ApiVersionsResponse, encode_response(call.message, 3, 3), 3)
        self.assertEqual([(a.api_key, a.max_version) for a in again.api_keys], [(0, 12), (1, 17)])
        capped = ResponseCall(CLIENT, ApiKey.ApiVersions, 3, 4, encode_response(again, 4, 3))
        self.guard().on_response(capped)
        self.assertFalse(capped.changed)

    def test_produce_by_topic_id_is_refused(self) -> None:
        """A v13 Produce names no topic: the guard cannot check it, so it refuses it."""
        outcome = self.guard().on_request(produce("", version=13))
        self.assertIsInstance(outcome, Respond)
        self.assertIn("(a topic id)", self.events[0].reason)

    def test_config_errors_are_one_line(self) -> None:
        cases = {
            "config.prefixes is required": {},
            "config.prefixes must be a list of strings, got 'team-a.'": {"prefixes": "team-a."},
            "config.prefixes must list at least one topic prefix": {"prefixes": []},
            "config.prefixes must not contain an empty prefix (it would allow every topic)": {
                "prefixes": ["a", ""]
            },
            "config.refuseCreate must be true or false, got 'yes'": {
                "prefixes": ["a"],
                "refuseCreate": "yes",
            },
            "unknown config key(s) prefix; known: prefixes, refuseCreate": {
                "prefixes": ["a"],
                "prefix": "b",
            },
        }
        for message, config in cases.items():
            with self.assertRaises(InvalidConfig) as raised:
                example.topic_prefix_guard.build(config, self.context)
            self.assertEqual(str(raised.exception), message)
            self.assertNotIn("\n", message)


class PackagedTests(SynchronousTestCase):
    """The example as a third party ships it: a wheel, installed into its own directory."""

    def setUp(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kgateway-example-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.wheel = build_wheel(EXAMPLE, self.workdir)

    def test_wheel_ships_the_module_without_init(self) -> None:
        """An __init__.py in kgateway/ or kgateway/plugins/ would hide it from discovery."""
        with zipfile.ZipFile(self.wheel) as wheel:
            shipped = [n for n in wheel.namelist() if ".dist-info/" not in n]
        self.assertEqual(shipped, ["kgateway/plugins/kgateway_example.py"])

    def test_discovered_next_to_the_builtins(self) -> None:
        """pip install --target, then a fresh Python with that directory on its path."""
        target = install_wheel(self.wheel, self.workdir / "site")
        self.assertFalse((target / "kgateway" / "__init__.py").exists())
        self.assertFalse((target / "kgateway" / "plugins" / "__init__.py").exists())
        probe = (
            "import json, sys, kgateway\n"
            "from kgateway.interceptors.registry import discover_plugins\n"
            "found = discover_plugins()\n"
            "example = sys.modules.get('kgateway.plugins.kgateway_example')\n"
            "print(json.dumps({'plugins': {n: p.description for n, p in found.items()},\n"
            "                  'example': getattr(example, '__file__', None),\n"
            "                  'kgateway': kgateway.__file__}))\n"
        )
        # The installed directory after the source tree, as a site-packages would be.
        path = os.pathsep.join([str(REPO_ROOT), str(target)])
        result = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "PYTHONPATH": path},
            cwd=str(self.workdir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        found = json.loads(result.stdout.splitlines()[-1])
        self.assertEqual(
            found["plugins"].get("topic-prefix-guard"), example.topic_prefix_guard.description
        )
        self.assertIn("client-id-required", found["plugins"])
        # Found in the installed directory, not in the source tree's copy.
        self.assertEqual(
            Path(found["example"]).resolve(),
            (target / "kgateway" / "plugins" / "kgateway_example.py").resolve(),
        )
        # kgateway itself still comes from the source tree: the wheel's namespace
        # directories do not shadow the real package.
        self.assertEqual(
            Path(found["kgateway"]).resolve(), (REPO_ROOT / "kgateway" / "__init__.py").resolve()
        )
