"""
Issue 16: a port whose broker is down still bootstraps.

One broker of the shared 3-broker cluster is killed (SIGKILL, as a crash).
Until Kafka fences it (C{broker.session.timeout.ms}, 9 s) the metadata
still lists it, so the node still routes its port to it; the connection is
refused, and the node relays the client to another live broker instead. A
kafka-python client whose only bootstrap address is the dead broker's
gateway port gets metadata at once, produces and consumes, and (the connect
audit of L{Environment.run}) never reaches a broker directly.
"""

from __future__ import annotations

import json
import sys
import time

from twisted.trial.unittest import TestCase

from harness.connect_audit import connected_addresses
from tests.integration.environment import CLIENTS, shared
from tests.integration.test_java_clients import (
    create_topic,
    eventually,
    fully_replicated,
    unique,
)

DEAD_BROKER = 1
COUNT = 50


class DeadBrokerPortTests(TestCase):
    def setUp(self) -> None:
        self.env = shared()
        self.addCleanup(self.env.all_brokers_running)

    def test_dead_brokers_port_bootstraps(self) -> None:
        env, topic = self.env, unique("deadport")
        create_topic(env, topic, partitions=3, replication=3, configs={"min.insync.replicas": "2"})
        eventually(lambda: fully_replicated(env, topic, 3), 30, f"{topic} fully replicated")
        dead = next(b for b in env.cluster.brokers if b.node_id == DEAD_BROKER)
        port = env.gateway.port_for(DEAD_BROKER)
        bootstrap = f"{env.gateway.advertised_host}:{port}"
        log_mark = len(env.gateway.log_text())

        env.cluster.kill_broker(DEAD_BROKER)
        killed = time.monotonic()
        self.assertNotIn(DEAD_BROKER, env.cluster.running_node_ids())

        first = env.run(
            "kp-first-metadata-dead-port",
            [
                sys.executable,
                str(CLIENTS / "kp_first_metadata.py"),
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--timeout",
                "30",
            ],
            timeout=60,
        )
        answered = time.monotonic() - killed
        metadata = json.loads(first.stdout)
        self.assertTrue(metadata["has_topic"], metadata)
        # Every broker the client was given is a gateway address.
        self.assertTrue(
            all(p in env.gateway.ports for _, _, p in metadata["brokers"]), metadata["brokers"]
        )

        # The node tried the dead broker for that port, and said where it went instead.
        log = env.gateway.log_text()[log_mark:]
        fallbacks = [
            line
            for line in log.splitlines()
            if f"on the port of broker {DEAD_BROKER}: cannot connect to broker at "
            f"{dead.host}:{dead.port}"
            in line
            and "instead" in line
        ]
        self.assertTrue(fallbacks, f"no fallback line for broker {DEAD_BROKER}:\n{log[-4000:]}")
        # The audit (env.run) found no connect to a broker; the first one the
        # client made was to the dead broker's port, its only bootstrap address.
        [trace] = env.workdir.glob("*-kp-first-metadata-dead-port.strace")
        self.assertEqual(connected_addresses(trace)[0], ("127.0.0.1", port))
        roundtrip = env.run(
            "kp-roundtrip-dead-port",
            [
                sys.executable,
                str(CLIENTS / "kp_roundtrip.py"),
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--count",
                str(COUNT),
                "--timeout",
                "90",
            ],
            timeout=150,
        )
        result = json.loads(roundtrip.stdout)
        self.assertEqual((result["produced"], result["consumed"]), (COUNT, COUNT), result)
        self.assertEqual(result["duplicates"], [], result)
        print(
            f"\ndead broker {DEAD_BROKER}'s port: first metadata {metadata['seconds']:.2f} s "
            f"after the client started ({answered:.2f} s after the kill); "
            f"{len(fallbacks)} fallback line(s)"
        )
