"""Tests for the TLS benchmark's report (L{bench.tls.section}), with made-up runs."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from bench import peers, tls
from bench.targets import Direct, Target
from bench.workloads import RunResult, cases


def _target(key: str, title: str, proxy: bool = True) -> Target:
    target = Direct("127.0.0.1:1", {1}, key=key, title=title)
    target.is_proxy = proxy
    return target


class SectionTests(TestCase):
    def setUp(self) -> None:
        self.cases = [c for c in cases(1000, 1, 1) if c.key in tls.CASE_KEYS]
        self.targets = [
            _target("direct", "direct", proxy=False),
            _target("direct-tls", "direct, TLS", proxy=False),
            _target("kgateway-1", "kgateway ×1"),
            _target("kgateway-1-tls", "kgateway ×1, tls"),
            _target("kroxylicious-tls", "Kroxylicious, TLS"),
        ]
        speeds = {"direct": 100.0, "direct-tls": 50.0, "kgateway-1": 80.0}
        speeds.update({"kgateway-1-tls": 40.0, "kroxylicious-tls": 20.0})
        self.runs = [
            RunResult(
                case.key,
                key,
                repetition,
                1.0,
                mb_per_sec=speed + repetition,
                cpu_seconds=2.0,
                payload_bytes=1024**3,
            )
            for case in self.cases
            for key, speed in speeds.items()
            for repetition in range(3)
        ]
        self.runs.append(RunResult("java-consume", "kroxylicious-tls", 3, 1.0, error="boom"))

    def section(self) -> str:
        found = [peers.Peer("kafka-proxy", None, "not measured: no source tarball at x")]
        return tls.section(
            "python -m bench --tls", self.cases, self.targets, self.runs, [1.0, 2.0], found, 1000,
            ["kgateway ×1 with client TLS only was not measured: why"],
        )  # fmt: skip

    def test_ratios(self) -> None:
        """Medians, each TLS target over its own plaintext, kgateway TLS over the others."""
        text = self.section()
        self.assertIn("| Java produce acks=1 | 101.0 | 51.0 | 81.0 | 41.0 | 21.0 |", text)
        # TLS / plaintext: direct 51/101, kgateway 41/81; no Kroxylicious plaintext column.
        self.assertIn("| case | direct | kgateway |", text)
        self.assertIn("| Java produce acks=1 | 0.50× | 0.51× |", text)
        # kgateway TLS against direct TLS and Kroxylicious TLS.
        self.assertIn("| Java produce acks=1 | 0.80× | 1.95× |", text)
        # CPU: 2 s per GiB for every proxy, nothing for direct.
        self.assertIn("| Java produce acks=1 | 2.0 | 2.0 | 2.0 |", text)

    def test_proof_notes_and_failures(self) -> None:
        text = self.section()
        self.assertIn("Kroxylicious, TLS 12 of 13", text)
        self.assertIn("**kafka-proxy**: not measured", text)
        self.assertIn("- kgateway ×1 with client TLS only was not measured: why", text)
        self.assertIn("- java-consume via kroxylicious-tls: boom", text)
        self.assertTrue(text.startswith(tls.BEGIN) and text.rstrip().endswith(tls.END))

    def test_write_replaces_its_section(self) -> None:
        """Only the section between the markers is replaced; the rest of the file stays."""
        out = Path(self.mktemp())
        out.mkdir()
        (out / "RESULTS.md").write_text(f"# results\n\nkept\n\n{tls.BEGIN}\nold\n{tls.END}\ntail\n")
        tls.write(out, "cmd", self.cases, self.targets, self.runs, [1.0], [], 1000)
        text = (out / "RESULTS.md").read_text()
        self.assertNotIn("\nold\n", text)
        self.assertIn("kept", text)
        self.assertTrue(text.endswith("tail\n"))
        self.assertEqual(text.count(tls.BEGIN), 1)
        self.assertTrue((out / "tls.json").exists())
