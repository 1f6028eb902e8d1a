"""
Interceptor configurations through the admin API on a real 2-node gateway
cluster in front of the shared Kafka cluster: a PUT on one node is listed and
enforced by the other within 2 s, an invalid one is refused with 400 and
writes nothing to the interceptors topic, a DELETE on one node stops the other
enforcing within 2 s, and a restarted node lists and enforces everything.
Every Kafka client runs under the connect audit, through a gateway node only.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.gateway_process import GatewayProcess

from .environment import Environment, shared
from .gateway_cluster import GatewayCluster, SharedByTests

#: The promise: every node applies a change within this many seconds.
PROPAGATION_SECONDS = 2.0
ALLOWED = "app-orders"
REFUSED = "intruder"
IDS = {"plugin": "client-id-required", "priority": 10, "config": {"pattern": "app-.*"}}


def http(node: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the node's admin API as its admin user: status code and JSON (None if empty)."""
    return node.api(method, path, body)


def names(node: GatewayProcess) -> list[str] | None:
    """The interceptors the node lists, in order; None while it cannot answer (503)."""
    code, listed = http(node, "GET", "/api/v1/interceptors")
    if code != 200:
        return None
    return [spec["name"] for spec in listed["interceptors"]]


class Watch:
    """A client-id watcher through one node, in a thread, started before a change is made."""

    def __init__(self, env: Environment, until: str, topic: str, name: str) -> None:
        self.ready = Path(env.workdir) / f"{name}-{time.monotonic_ns()}.ready"
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

        def watch() -> None:
            try:
                done = env.python_client(
                    "kp_client_id_watch.py",
                    "--topic", topic,
                    "--refused-id", REFUSED,
                    "--allowed-id", ALLOWED,
                    "--until", until,
                    "--ready-file", str(self.ready),
                    "--timeout", "60",
                )  # fmt: skip
                self.result = json.loads(done.stdout)
            except BaseException as e:
                self.error = e

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "the watcher never started"
            time.sleep(0.05)

    def seen_at(self) -> float:
        """When the watcher saw the change (wall clock)."""
        self.thread.join(90)
        if self.error is not None:
            raise self.error
        assert self.result is not None, "the watcher did not finish"
        return float(self.result["seen_at"])


def _two_nodes() -> GatewayCluster:
    return GatewayCluster.ready(
        shared(),
        ("a", "b"),
        lambda node: http(node, "GET", "/api/v1/interceptors")[0] == 200,
        "to read its interceptors topic",
    )


#: Two nodes of one gateway cluster for the tests of this module.
NODES = SharedByTests(_two_nodes, GatewayCluster.stop)


class InterceptorStoreTests(TestCase):
    """Node A and node B, racks a and b; the tests run in name order and share them."""

    def setUp(self) -> None:
        self.gc = NODES.acquire(self)
        self.a, self.b = self.gc.nodes[:2]
        self.env = shared()
        self.topic = f"_kgateway_{self.gc.name}_interceptors"
        self.data_topic = f"{self.gc.name}-orders"

    def via(self, node: GatewayProcess) -> Environment:
        """The environment's audited clients, bootstrapping through C{node}."""
        return dataclasses.replace(self.env, gateway=node)

    def produce(self, node: GatewayProcess, client_id: str, create: bool = False) -> Any:
        extra = ["--create"] if create else []
        done = self.via(node).python_client(
            "kp_client_id_produce.py",
            "--topic", self.data_topic,
            "--client-id", client_id,
            "--timeout", "8",
            *extra,
        )  # fmt: skip
        return json.loads(done.stdout)

    def end_offset(self) -> int:
        done = self.via(self.b).python_client(
            "kp_end_offset.py", "--topic", self.topic, "--client-id", ALLOWED + "-offsets"
        )
        return int(json.loads(done.stdout)["end_offset"])

    def test_1_invalid_is_400_and_writes_nothing(self) -> None:
        before = self.end_offset()
        cases = [
            (b"{not json", "the body is not JSON"),
            ({**IDS, "plugin": "no-such-plugin"}, "no interceptor plugin named 'no-such-plugin'"),
            ({**IDS, "config": {"pattern": "("}}, "pattern"),
            ({**IDS, "config": {"colour": "red"}}, "colour"),
        ]
        for body, reason in cases:
            code, answer = http(self.a, "PUT", "/api/v1/interceptors/ids", body)
            self.assertEqual(code, 400, answer)
            self.assertEqual(answer["title"], "Invalid interceptor")
            self.assertIn(reason, answer["message"])
            self.assertNotIn("\n", answer["message"])
        self.assertEqual(self.end_offset(), before)
        self.assertEqual(names(self.a), [])
        self.assertEqual(names(self.b), [])

    def test_2_put_on_a_runs_on_b_delete_on_b_stops_a_restart_reads_all(self) -> None:
        # Before: anyone may produce through B.
        self.assertTrue(self.produce(self.b, REFUSED, create=True)["ok"])

        watch = Watch(self.via(self.b), "enforced", self.data_topic, "put")
        started = time.time()
        code, stored = http(self.a, "PUT", "/api/v1/interceptors/ids", IDS)
        answered = time.time()
        self.assertEqual(code, 201, stored)
        self.assertEqual(stored, {**IDS, "name": "ids", "scope": "global"})
        self.assertEqual(names(self.a), ["ids"])  # read back before the answer
        seen = watch.seen_at()
        listed = self.gc.wait_for(lambda: names(self.b) == ["ids"], timeout=5, what="B to list")
        put_delay = seen - answered
        print(
            f"\nPUT on A answered in {answered - started:.3f}s; B enforced it "
            f"{put_delay:.3f}s after the answer ({seen - started:.3f}s after the request); "
            f"B listed it {listed:.3f}s after enforcement was seen"
        )
        self.assertLess(put_delay, PROPAGATION_SECONDS)

        # A real kafka-python producer through B: refused without a matching id, served with one.
        refused = self.produce(self.b, REFUSED)
        self.assertFalse(refused["ok"], refused)
        self.assertTrue(self.produce(self.b, ALLOWED)["ok"])

        watch = Watch(self.via(self.a), "open", self.data_topic, "delete")
        started = time.time()
        code, _ = http(self.b, "DELETE", "/api/v1/interceptors/ids")
        answered = time.time()
        self.assertEqual(code, 204)
        seen = watch.seen_at()
        delete_delay = seen - answered
        print(
            f"DELETE on B answered in {answered - started:.3f}s; A stopped enforcing "
            f"{delete_delay:.3f}s after the answer ({seen - started:.3f}s after the request)"
        )
        self.assertLess(delete_delay, PROPAGATION_SECONDS)
        self.assertEqual(http(self.b, "DELETE", "/api/v1/interceptors/ids")[0], 404)
        self.assertEqual(names(self.a), [])

        # Two configurations stored, then A restarts and must run both from the topic alone.
        self.assertEqual(http(self.b, "PUT", "/api/v1/interceptors/ids", IDS)[0], 201)
        other = {
            "plugin": "client-id-required",
            "priority": 5,
            "scope": {"clientId": "batch-.*"},
            "config": {"pattern": "batch-nightly"},
        }
        self.assertEqual(http(self.b, "PUT", "/api/v1/interceptors/batch-only", other)[0], 201)
        self.gc.wait_for(lambda: names(self.a) == ["batch-only", "ids"], timeout=5, what="A")
        self.a.stop()
        restarted = time.time()
        self.a.start(timeout=60)
        took = self.gc.wait_for(
            lambda: names(self.a) == ["batch-only", "ids"], timeout=60, what="restarted A to list"
        )
        watch = Watch(self.via(self.a), "enforced", self.data_topic, "restart")
        watch.seen_at()
        print(
            f"restarted A listed both interceptors {time.time() - restarted:.1f}s after the "
            f"restart began ({took:.3f}s of waiting for its API) and enforces them"
        )
        refused = self.produce(self.a, REFUSED)
        self.assertFalse(refused["ok"], refused)
        self.assertTrue(self.produce(self.a, ALLOWED)["ok"])
