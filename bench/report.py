"""Medians, ratios and targets, written as Markdown (RESULTS.md), JSON and a PNG chart."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .peers import Peer
from .profiling import Profile
from .scale import ScaleResult
from .workloads import Case, RunResult

TOP = 15


@dataclass
class Report:
    """Everything one invocation measured."""

    started: str
    command: str
    smoke: bool
    machine: dict[str, str]
    settings: dict[str, object]
    cases: list[Case]
    targets: list[tuple[str, str]]  # (key, title), direct first
    runs: list[RunResult] = field(default_factory=list)
    scale: list[ScaleResult] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def good(self, case: str, target: str) -> list[RunResult]:
        return [r for r in self.runs if r.case == case and r.target == target and r.error is None]

    def median(
        self, case: str, target: str, value: Callable[[RunResult], float | None]
    ) -> float | None:
        values = [v for v in map(value, self.good(case, target)) if v is not None]
        return statistics.median(values) if values else None

    def spread(
        self, case: str, target: str, value: Callable[[RunResult], float | None]
    ) -> tuple[float, float] | None:
        values = [v for v in map(value, self.good(case, target)) if v is not None]
        return (min(values), max(values)) if values else None


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _mbps(r: RunResult) -> float | None:
    return r.mb_per_sec


def _p50(r: RunResult) -> float | None:
    return r.p50_ms


def _p99(r: RunResult) -> float | None:
    return r.p99_ms


def _p999(r: RunResult) -> float | None:
    return r.extra.get("p999_ms")


def _cpu(r: RunResult) -> float | None:
    return r.cpu_per_gib


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def targets_section(report: Report) -> list[str]:
    """The issue's targets against what was measured."""
    rows: list[list[str]] = []
    throughput = [c for c in report.cases if c.kind in ("produce", "consume")]
    ratios = []
    for case in throughput:
        ratio = _ratio(
            report.median(case.key, "kgateway-1", _mbps), report.median(case.key, "direct", _mbps)
        )
        if ratio is not None:
            ratios.append((case.title, ratio))
    if ratios:
        worst = min(ratios, key=lambda item: item[1])
        rows.append(
            [
                "produce/consume throughput through one node ≥ 0.9× direct",
                "; ".join(f"{title}: {ratio:.2f}×" for title, ratio in ratios),
                "met" if worst[1] >= 0.9 else f"**not met** (worst: {worst[0]}, {worst[1]:.2f}×)",
            ]
        )
    for case in (c for c in report.cases if c.kind == "latency"):
        direct = report.median(case.key, "direct", _p99)
        gateway = report.median(case.key, "kgateway-1", _p99)
        spread = report.spread(case.key, "direct", _p99)
        if direct is None or gateway is None or spread is None:
            continue
        added = gateway - direct
        noise = spread[1] - spread[0]
        if noise > 1.0:
            # Direct runs alone differ by more than the target: a difference of medians
            # says nothing about 1 ms either way (the loopback relay figures do).
            verdict = f"not resolvable here: direct p99 alone ranged {noise:.0f} ms"
        else:
            verdict = "met" if added <= 1.0 else "**not met**"
        rows.append(
            [
                f"added p99 produce latency ≤ 1 ms at {case.rate}/s ({case.title.split()[0]})",
                f"{gateway:.2f} ms through one node vs {direct:.2f} ms direct "
                f"({spread[0]:.2f}–{spread[1]:.2f}): {added:+.2f} ms",
                verdict,
            ]
        )
    for scale in report.scale:
        if scale.target.startswith("kgateway") and scale.kib_per_connection is not None:
            rows.append(
                [
                    "≤ 20 KiB per idle client connection",
                    f"{scale.kib_per_connection:.1f} KiB per connection "
                    f"({scale.connections} connections)",
                    "met" if scale.kib_per_connection <= 20 else "**not met**",
                ]
            )
    peers_run = dict(report.targets)
    for peer in report.peers or [Peer("kafka-proxy", None, "peers not run")]:
        key = _peer_key(peer.name)
        comparisons = []
        for case in throughput:
            ours = report.median(case.key, "kgateway-1", _mbps)
            theirs = report.median(case.key, key, _mbps)
            if ours is not None and theirs is not None:
                comparisons.append((case.title, ours / theirs))
        # Only kafka-proxy is named by the targets; other peers are reported beside it.
        label = "ahead of kafka-proxy" if key == "kafka-proxy" else f"beside {peer.name}"
        if key not in peers_run or not comparisons:
            rows.append([label, peer.note, "not measured"])
            continue
        ahead = min(r for _, r in comparisons) >= 1
        rows.append(
            [
                label,
                "; ".join(f"{t}: kgateway ×1 = {r:.2f}× {peer.name}" for t, r in comparisons),
                ("met" if ahead else "**not met**")
                if key == "kafka-proxy"
                else ("ahead in every case" if ahead else "behind in some cases (no target)"),
            ]
        )
    return ["## The issue's targets", ""] + _table(["target", "measured", "verdict"], rows)


def _peer_key(name: str) -> str:
    """The target key a peer proxy's runs are filed under (bench/targets.py)."""
    return name.lower()


def throughput_section(report: Report) -> list[str]:
    header = ["case"]
    for key, title in report.targets:
        header.append(f"{title} MiB/s")
        if key != "direct":
            header.append(f"{title} / direct")
    rows = []
    for case in (c for c in report.cases if c.kind in ("produce", "consume")):
        direct = report.median(case.key, "direct", _mbps)
        row = [f"{case.title} ({case.records:,} × 1 KiB)"]
        for key, _ in report.targets:
            value = report.median(case.key, key, _mbps)
            spread = report.spread(case.key, key, _mbps)
            cell = _num(value)
            if spread and spread[0] != spread[1]:
                cell += f" ({spread[0]:.1f}–{spread[1]:.1f})"
            row.append(cell)
            if key != "direct":
                ratio = _ratio(value, direct)
                row.append("–" if ratio is None else f"{ratio:.2f}×")
        rows.append(row)
    return [
        "## Throughput",
        "",
        "Median MiB/s of record payload (min–max over the repetitions), as each client reports it:",
        "ProducerPerformance's MB/sec, ConsumerPerformance's fetch.MB.sec (group join excluded), "
        "and the librdkafka script's figure (first produce() to last delivery report; first to "
        "last record for consume, with fetch.queue.backoff.ms=10: at librdkafka's default of "
        "1 s, a Python consumer loop that fell behind stalled its fetches for whole seconds, "
        "direct runs most).",
        "",
        *_table(header, rows),
    ]


def latency_section(report: Report) -> list[str]:
    rows = []
    for case in (c for c in report.cases if c.kind == "latency"):
        direct = report.median(case.key, "direct", _p99)
        for key, title in report.targets:
            p99 = report.median(case.key, key, _p99)
            added = None if p99 is None or direct is None or key == "direct" else p99 - direct
            rows.append(
                [
                    case.title,
                    title,
                    _num(report.median(case.key, key, _p50), 2),
                    _num(p99, 2),
                    _num(report.median(case.key, key, _p999), 2),
                    "–" if added is None else f"{added:+.2f}",
                ]
            )
    return [
        "## Produce latency at a fixed rate",
        "",
        f"{report.settings.get('latency_records')} records of 1 KiB at "
        f"{report.settings.get('rate')} records/s, acks=1, linger.ms=0; medians over the "
        "repetitions of each run's percentiles. Java's ProducerPerformance reports whole "
        "milliseconds; librdkafka's figures are its per-message latency (produce() to delivery "
        "report) in microsecond resolution.",
        "",
        *_table(["case", "target", "p50 ms", "p99 ms", "p99.9 ms", "added p99 ms"], rows),
    ]


def cpu_section(report: Report) -> list[str]:
    proxies = [(k, t) for k, t in report.targets if k != "direct"]
    rows = []
    for case in (c for c in report.cases if c.kind in ("produce", "consume")):
        rows.append(
            [case.title] + [_num(report.median(case.key, key, _cpu), 1) for key, _ in proxies]
        )
    return [
        "## Proxy CPU per GiB forwarded",
        "",
        "CPU seconds (utime + stime from /proc/<pid>/stat, summed over the proxy's processes: "
        "three for kgateway ×3) spent while the client ran, per GiB of record payload. It "
        "includes the node's background work (metadata refresh, group heartbeats) during the "
        "client's start-up, which is small next to the data path.",
        "",
        *_table(["case"] + [f"{title} CPU s/GiB" for _, title in proxies], rows),
    ]


def scale_section(report: Report) -> list[str]:
    rows = []
    for s in report.scale:
        rows.append(
            [
                s.target,
                f"{s.connections:,}",
                _num(s.seconds, 2),
                _num(s.per_second, 0),
                _num(s.setup_p99_ms, 1),
                "–" if s.rss_before_kib is None else f"{s.rss_before_kib / 1024:.1f}",
                "–" if s.rss_after_kib is None else f"{s.rss_after_kib / 1024:.1f}",
                _num(s.kib_per_connection, 1),
                f"{s.fds_before} → {s.fds_after}",
                s.error or "",
            ]
        )
    return [
        "## Idle connections on one node",
        "",
        "A separate process opens the connections (at most 200 being set up at once), spread "
        "over the node's broker ports; each sends one ApiVersions request, waits for the answer, "
        "then stays idle. A kgateway node opens one broker connection per client connection, "
        "so each idle client costs it two sockets; the RSS delta covers both legs.",
        "",
        *_table(
            [
                "target",
                "connections",
                "seconds to accept and answer all",
                "connections/s",
                "p99 set-up ms",
                "RSS before MiB",
                "RSS after MiB",
                "KiB per connection",
                "descriptors",
                "error",
            ],
            rows,
        ),
    ]


def profile_section(report: Report) -> list[str]:
    lines = ["## Where the gateway's time goes (py-spy)", ""]
    for profile in report.profiles:
        lines.append(f"### {profile.title}")
        lines.append("")
        if profile.error:
            lines += [f"Not profiled: {profile.error}", ""]
            continue
        total = profile.samples or 1
        lines.append(
            f"{profile.samples} busy samples of the reactor thread at 100 Hz "
            f"(`py-spy record -d 10 -f raw --function`, the client restarted back to back, two "
            f"at a time; {profile.idle_samples} samples waiting in epoll or in the thread pool "
            "left out); self = on the CPU in that function, total = anywhere on the stack."
        )
        lines.append("")
        rows = [
            [f"{100 * count / total:.1f}%", f"`{frame}`"]
            for frame, count in profile.self_counts.most_common(TOP)
        ]
        lines += _table(["self", "function"], rows)
        lines.append("")
        rows = [
            [f"{100 * count / total:.1f}%", f"`{frame}`"]
            for frame, count in profile.total_counts.most_common(TOP + 10)
            if not frame.startswith(("<module>", "run (", "main (", "runApp", "mainLoop", "doPoll"))
        ][:TOP]
        lines += _table(["total", "function"], rows)
        lines.append("")
    return lines


def proof_section(report: Report) -> list[str]:
    lines = ["## Proof that each run went through the target", ""]
    lines.append(
        "Every client ran under `strace -f --seccomp-bpf -e trace=connect` "
        "(`harness.connect_audit`). A run through a proxy counts only if its client "
        "never called connect() on a broker or controller port, did reach the proxy's ports, "
        "and the proxy itself counted at least the records' bytes in the run's direction "
        "(kgateway: the per-connection byte counts each node logs; kafka-proxy: its Prometheus "
        "byte counters), or, for Kroxylicious, which counts messages but not bytes, at least one "
        "client request during the run. A direct run counts only if its client reached the "
        "brokers."
    )
    lines.append("")
    rows = []
    for key, title in report.targets:
        runs = [r for r in report.runs if r.target == key]
        good = [r for r in runs if r.error is None]
        example = good[0].proof if good else "–"
        rows.append([title, f"{len(good)} of {len(runs)}", example])
    lines += _table(["target", "runs proven", "example evidence"], rows)
    failed = [r for r in report.runs if r.error is not None]
    if failed:
        lines += ["", "Runs left out of the medians:", ""]
        lines += [
            f"- {r.case} via {r.target}, repetition {r.repetition}: {r.error[:400]}"
            for r in report.runs
            if r.error is not None
        ]
    return lines


def render(report: Report, chart_name: str | None) -> str:
    loads = report.loads or [0.0]
    lines = [
        "# kgateway benchmark results" + (" (smoke run)" if report.smoke else ""),
        "",
        f"Measured {report.started} with `{report.command}`: a real 3-broker Apache Kafka "
        "cluster (KRaft, on this machine), every case run direct, through one kgateway node "
        "and through three nodes of one gateway cluster (racks a/b/c, so each node relays one "
        "broker)"
        + (", and through each peer proxy measured" if len(report.targets) > 3 else "")
        + ", the targets alternating within each repetition (the starting one rotating), "
        f"{report.settings.get('repetitions')} repetition(s); figures are medians.",
        "",
    ]
    if chart_name:
        lines += [f"![throughput, latency and CPU chart]({chart_name})", ""]
    lines += ["## Machine and versions", ""]
    lines += _table(["", ""], [[k, v] for k, v in report.machine.items()])
    lines += [
        "",
        f"Load: the 1-minute load average was {loads[0]:.2f} at the start and "
        f"{loads[-1]:.2f} at the end; across the runs it had median "
        f"{statistics.median(r.load for r in report.runs) if report.runs else 0:.2f} "
        f"(range {min((r.load for r in report.runs), default=0):.2f}–"
        f"{max((r.load for r in report.runs), default=0):.2f}) on "
        f"{report.machine.get('CPU', '?').split('(')[-1].split()[0]} CPUs, most of it the "
        "benchmark's own: three brokers, the client, the proxy under test and the idle ones "
        "all share the two CPUs, so absolute figures are noisy and a proxy's CPU is taken "
        "from the brokers and the client; the alternating repetitions and the ratios are what "
        "to read.",
        "",
    ]
    lines += targets_section(report) + [""]
    lines += throughput_section(report) + [""]
    lines += latency_section(report) + [""]
    lines += cpu_section(report) + [""]
    if report.scale:
        lines += scale_section(report) + [""]
    if report.profiles:
        lines += profile_section(report)
    lines += ["## Peer proxies", ""]
    lines += [f"- **{p.name}**: {p.note}" for p in report.peers] or ["- not run (`--no-peers`)"]
    if any(p.name == "Kroxylicious" and p.binary is not None for p in report.peers):
        lines += [
            "",
            "Kroxylicious runs as its runtime library (`kroxylicious-runtime` and dependencies "
            "from Maven Central, started by `bench/kroxylicious/Launcher.java`: its packaged "
            "distribution is not on Maven Central), with one virtual cluster, a port per broker "
            "(`portIdentifiesNode`), no filters and its default Netty event loops, on the same "
            "JVM as the Java clients.",
        ]
    lines.append("")
    lines += proof_section(report) + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    lines.append("Every run's figures are in `results.json` beside this file.")
    return "\n".join(lines) + "\n"


def chart(report: Report, path: Path) -> str | None:
    """Draw throughput ratios, p99 latency and CPU/GiB; return why not if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]'): no chart drawn"
    throughput = [c for c in report.cases if c.kind in ("produce", "consume")]
    latency = [c for c in report.cases if c.kind == "latency"]
    proxies = [(k, t) for k, t in report.targets if k != "direct"]
    figure, axes = plt.subplots(1, 3, figsize=(17, 5.5), gridspec_kw={"width_ratios": [3, 1.3, 2]})
    width = 0.8 / max(1, len(report.targets))
    ax = axes[0]
    for index, (key, title) in enumerate(report.targets):
        values, low, high = [], [], []
        for case in throughput:
            value = report.median(case.key, key, _mbps) or 0.0
            spread = report.spread(case.key, key, _mbps) or (value, value)
            values.append(value)
            low.append(value - spread[0])
            high.append(spread[1] - value)
        positions = [
            i + (index - (len(report.targets) - 1) / 2) * width for i in range(len(throughput))
        ]
        ax.bar(positions, values, width, yerr=[low, high], capsize=2, label=title)
    ax.set_xticks(range(len(throughput)))
    ax.set_xticklabels([c.title.replace(" ", "\n", 1) for c in throughput], fontsize=8)
    ax.set_ylabel("MiB/s (median, min–max)")
    ax.set_title("Throughput, 1 KiB records")
    ax.legend(fontsize=8)
    ax = axes[1]
    for index, (key, title) in enumerate(report.targets):
        values = [report.median(c.key, key, _p99) or 0.0 for c in latency]
        positions = [
            i + (index - (len(report.targets) - 1) / 2) * width for i in range(len(latency))
        ]
        ax.bar(positions, values, width, label=title)
    ax.set_xticks(range(len(latency)))
    ax.set_xticklabels([c.title.split()[0] for c in latency], fontsize=8)
    ax.set_ylabel("p99 ms (median)")
    ax.set_title(f"Produce p99 at {report.settings.get('rate')}/s, acks=1")
    ax = axes[2]
    pwidth = 0.8 / max(1, len(proxies))
    for index, (key, title) in enumerate(proxies):
        values = [report.median(c.key, key, _cpu) or 0.0 for c in throughput]
        positions = [i + (index - (len(proxies) - 1) / 2) * pwidth for i in range(len(throughput))]
        ax.bar(positions, values, pwidth, label=title, color=f"C{index + 1}")
    ax.set_xticks(range(len(throughput)))
    ax.set_xticklabels([c.title.replace(" ", "\n") for c in throughput], fontsize=7)
    ax.set_ylabel("proxy CPU seconds per GiB")
    ax.set_title("Proxy CPU per GiB forwarded")
    ax.legend(fontsize=8)
    load = statistics.median(r.load for r in report.runs) if report.runs else 0.0
    figure.suptitle(
        f"kgateway vs direct Kafka — {report.machine.get('CPU', '')}, load ≈ {load:.1f}"
        + (" — SMOKE" if report.smoke else ""),
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


_SECTION = re.compile(r"<!-- (\w+):begin.*?<!-- \1:end -->", re.S)


def write(report: Report, out: Path) -> Path:
    """Write RESULTS.md, results.json and results.png into C{out}; return the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    why_not = chart(report, out / "results.png")
    if why_not:
        report.notes.append(why_not)
    markdown = out / "RESULTS.md"
    # Sections other benchmarks own (python -m bench --interceptors, the
    # loopback relay figures) stay: this run did not measure them.
    old = markdown.read_text() if markdown.exists() else ""
    kept = [match.group(0) for match in _SECTION.finditer(old)]
    text = render(report, None if why_not else "results.png").rstrip("\n")
    markdown.write_text("\n\n".join([text, *kept]) + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "started": report.started,
                "command": report.command,
                "machine": report.machine,
                "settings": report.settings,
                "runs": [r.as_dict() for r in report.runs],
                "scale": [
                    {**s.__dict__, "kib_per_connection": s.kib_per_connection} for s in report.scale
                ],
                "profiles": [
                    {
                        "title": p.title,
                        "samples": p.samples,
                        "idle_samples": p.idle_samples,
                        "error": p.error,
                        "self": p.self_counts.most_common(40),
                        "total": p.total_counts.most_common(40),
                    }
                    for p in report.profiles
                ],
                "peers": [{"name": p.name, "note": p.note} for p in report.peers],
            },
            indent=1,
            default=str,
        )
    )
    return markdown
