"""
The benchmark suite's smoke mode (C{python -m bench --smoke --peers kroxylicious}) against the
shared real Kafka cluster, so the suite cannot rot: it must finish, prove
every run went where it was charged, and write a results table with sane
numbers. Nothing here times the gateway: the targets are met (or not) in
C{bench/RESULTS.md}, never in a test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.integration.environment import shared

REPO_ROOT = Path(__file__).resolve().parents[2]
# Kroxylicious is fetched from Maven Central by the bench itself (bench/peers.py), like the
# brokers' jars, so the smoke run keeps the peer runner from rotting too.
TARGETS = {"direct", "kgateway-1", "kgateway-3", "kroxylicious"}


class BenchSmokeTests(TestCase):
    """C{python -m bench --smoke} runs end to end and writes a results table."""

    def setUp(self) -> None:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            self.fail("confluent-kafka is not installed: run scripts/setup (test extra)")
        self.env = shared()
        self.out = Path(tempfile.mkdtemp(prefix="kgateway-bench-smoke-"))
        self.addCleanup(shutil.rmtree, self.out, True)

    def test_smoke_run_writes_sane_results(self) -> None:
        env = self.env
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                "--smoke",
                "--peers",
                "kroxylicious",
                "--out",
                str(self.out),
                "--bootstrap-servers",
                env.cluster.bootstrap_servers,
                "--forbidden-ports",
                ",".join(map(str, sorted(env.cluster.controller_ports))),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        self.assertEqual(
            completed.returncode,
            0,
            f"python -m bench --smoke failed:\n{completed.stderr[-4000:]}",
        )
        results = json.loads((self.out / "results.json").read_text())
        runs = results["runs"]
        cases = {run["case"] for run in runs}
        self.assertEqual(len(cases), 8, f"cases run: {sorted(cases)}")
        for case in cases:
            for target in TARGETS:
                (run,) = [r for r in runs if r["case"] == case and r["target"] == target]
                where = f"{case} via {target}"
                self.assertIsNone(run["error"], where)
                self.assertIn("strace", run["proof"], where)
                rate = run["mb_per_sec"]
                self.assertTrue(
                    rate is not None and math.isfinite(rate) and 0 < rate < 10_000,
                    f"{where}: {rate} MiB/s",
                )
                if case.endswith("latency"):
                    self.assertTrue(0 < run["p99_ms"] < 60_000, f"{where}: p99 {run['p99_ms']}")
                if target != "direct":
                    self.assertIn("none to a broker/controller port", run["proof"], where)
                    self.assertRegex(run["proof"], r"counted [\d.]+ (MiB|client requests)", where)
                    self.assertIsNotNone(run["cpu_seconds"], where)
        scales = {scale["target"]: scale for scale in results["scale"]}
        self.assertEqual(set(scales), {"kgateway ×1", "Kroxylicious"})
        for scale in scales.values():
            self.assertIsNone(scale["error"], scale)
            self.assertEqual(scale["connections"], 200)
        scale = scales["kgateway ×1"]
        self.assertEqual(scale["connections"], 200)
        self.assertTrue(0 < scale["kib_per_connection"] < 1024, scale)
        self.assertGreaterEqual(scale["fds_after"] - scale["fds_before"], 2 * 200 * 0.9)

        table = (self.out / "RESULTS.md").read_text()
        self.assertIn("| case | direct MiB/s | kgateway ×1 MiB/s | kgateway ×1 / direct |", table)
        self.assertIn("## The issue's targets", table)
        self.assertIn("## Idle connections on one node", table)
        self.assertIn("| beside Kroxylicious | Java produce acks=1: kgateway ×1 = ", table)
        self.assertRegex(table, r"\| Java produce acks=1 \(3,000 × 1 KiB\) \| \d+\.\d")
