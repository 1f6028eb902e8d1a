"""
Issue 13: a certificate renewed on disk is served to new connections without a restart, and
an open producer keeps its connections and keeps going.

The node reads its key store again every C{GATEWAY_SSL_UPDATE_INTERVAL_MS} (500 ms here). A
librdkafka producer keeps sending through the node while the key store file is replaced by
one with a new certificate; new TLS connections then get the new certificate, a new client
of every family works, and the producer ends with every record delivered and not one of its
broker connections dropped (librdkafka's own C{connects}/C{disconnects} counts). Every client
is under strace and fails if it touched a broker port.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from twisted.trial.unittest import TestCase

from harness.certs import LOOPBACK_SANS
from harness.kafka.secured import SSL
from harness.secured_gateway import BrokerSide, ClientSide
from tests.integration.secured_environment import (
    CLIENTS,
    FAMILIES,
    STORE_PASSWORD,
    parse_result,
    secured,
)
from tests.integration.test_security_ssl import served_certificate

UPDATE_INTERVAL_MS = 500


class CertificateRenewalTests(TestCase):
    def setUp(self) -> None:
        self.env = secured()
        self.key_store = self.env.workdir / "tls" / f"renewed-{uuid.uuid4().hex[:6]}.p12"
        self.first = self.env.cluster.ca.issue("CN=kgateway first,O=kgateway tests", LOOPBACK_SANS)
        self.first.write_pkcs12(self.key_store, STORE_PASSWORD)
        self.gateway = self.env.gateway(
            f"renewal-{self.key_store.stem}",
            {
                **BrokerSide(SSL).env(self.env.cluster),
                **ClientSide(
                    SSL,
                    self.key_store,
                    key_store_password=STORE_PASSWORD,
                    update_interval_ms=UPDATE_INTERVAL_MS,
                ).env(),
            },
        )

    def served_serial(self) -> int:
        return served_certificate(
            "127.0.0.1", self.gateway.port_start, self.env.cluster.ca_file
        ).serial_number

    def test_renewed_certificate_served_open_producer_keeps_going(self) -> None:
        env = self.env
        self.assertEqual(self.served_serial(), self.first.certificate.serial_number)
        route = env.through(self.gateway, env.tls())
        topic = env.create_topic("renewal")
        stop = env.workdir / f"stop-{uuid.uuid4().hex[:8]}"
        command = [
            sys.executable,
            str(CLIENTS / "ck_steady_producer.py"),
            "--bootstrap", route.bootstrap,
            "--topic", topic,
            "--rate", "50",
            "--stop-file", str(stop),
            "--timeout", "180",
            *route.security.script_args(),
        ]  # fmt: skip
        process, trace = env.start("ck-steady-renewal", command, route)
        try:
            assert process.stdout is not None
            self.assertEqual(process.stdout.readline().strip(), "ready")
            time.sleep(2)
            # The renewal, as cert-manager or a deploy script does it: a new file renamed
            # over the old one.
            second = env.cluster.ca.issue("CN=kgateway second,O=kgateway tests", LOOPBACK_SANS)
            staging = self.key_store.with_name(self.key_store.name + ".new")
            second.write_pkcs12(staging, STORE_PASSWORD)
            os.replace(staging, self.key_store)
            renewed_at = time.time()
            deadline = time.monotonic() + 10 * UPDATE_INTERVAL_MS / 1000 + 5
            while self.served_serial() != second.certificate.serial_number:
                if time.monotonic() > deadline:
                    self.fail(
                        "new connections still get the old certificate after "
                        f"{time.monotonic() - deadline + 10:.0f}s:\n{self.gateway.log_tail()}"
                    )
                time.sleep(0.2)
            # New clients of every family handshake with the renewed certificate.
            for family in FAMILIES:
                result = env.roundtrip(family, route, env.create_topic(f"renewed-{family}"))
                self.assertEqual(result["consumed"], 30, result)
            time.sleep(2)
        finally:
            stop.touch()
        report = parse_result(
            "ck_steady_producer", env.finish("ck-steady-renewal", process, trace, route, 90)
        )
        self.assertEqual(report["failures"], [])
        self.assertEqual(report["delivered"], report["sent"])
        after = sum(n for second, n in report["per_second"].items() if int(second) > renewed_at + 1)
        self.assertGreater(after, 0, f"nothing delivered after the renewal: {report}")
        self.assertTrue(report["brokers"], report)
        for node_id, counts in report["brokers"].items():
            # Connected once, never dropped: the renewal did not touch open connections.
            self.assertLessEqual(counts["connects"], 1, f"broker {node_id}: {counts}")
            self.assertEqual(counts["disconnects"], 0, f"broker {node_id}: {counts}")
