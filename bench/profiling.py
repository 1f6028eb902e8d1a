"""
Where a gateway node's time goes: py-spy samples the node while a client
drives traffic through it, and the raw (collapsed) stacks are summed into
the functions that were on the CPU (self) and those that were on the stack
(total).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .workloads import cpu_seconds


@dataclass
class Profile:
    """The summed samples of one py-spy recording."""

    title: str
    samples: int = 0
    idle_samples: int = 0
    self_counts: Counter[str] = field(default_factory=Counter)
    total_counts: Counter[str] = field(default_factory=Counter)
    raw_path: Path | None = None
    error: str | None = None


def _short(frame: str) -> str:
    """C{"dataReceived (twisted/internet/tcp.py:250)"} with the site-packages prefix dropped."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


_IDLE = ("EPollReactor.doPoll", "Condition.wait", "select.epoll")


def summarise(raw: Path, title: str) -> Profile:
    """Read py-spy's raw output: one C{frame;frame;...;leaf count} line per distinct stack."""
    profile = Profile(title, raw_path=raw)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame]
        # py-spy puts the thread ("process 123:..."/"thread ...") first when asked to.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[0].startswith("Thread._bootstrap") or frames[-1].startswith(_IDLE):
            # The reactor thread only: the thread pool (name resolution) and the reactor's
            # wait in epoll are not where relaying spends its time.
            profile.idle_samples += count
            continue
        profile.samples += count
        profile.self_counts[frames[-1]] += count
        for frame in set(frames):
            profile.total_counts[frame] += count
    return profile


def record_during(
    pid: int,
    client: list[str],
    raw: Path,
    title: str,
    seconds: int = 10,
    clients_at_once: int = 2,
    wait_for_traffic: float = 90.0,
) -> Profile:
    """Keep C{client} running back to back (several at once) while py-spy samples C{pid}.

    One run of a client can be over before py-spy attaches, so the client is started again
    and again until the recording ends; samples taken while the node waits in epoll between
    runs are dropped by L{summarise}.
    """
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return Profile(title, error="py-spy is not installed (pip install py-spy)")
    stop = threading.Event()
    failures: list[str] = []

    def keep_running() -> None:
        while not stop.is_set():
            done = subprocess.run(
                client, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
            )
            if done.returncode != 0:
                failures.append(done.stderr.strip()[-500:])
                return

    loops = [threading.Thread(target=keep_running, daemon=True) for _ in range(clients_at_once)]
    for index, loop in enumerate(loops):
        loop.start()
        if index + 1 < len(loops):
            time.sleep(1.0)
    try:
        deadline = time.monotonic() + wait_for_traffic
        last = cpu_seconds([pid])
        while time.monotonic() < deadline and not failures:
            time.sleep(0.2)
            now = cpu_seconds([pid])
            if now - last >= 0.08:  # over 40 % of a core: traffic is flowing
                break
            last = now
        recorded = subprocess.run(
            [
                py_spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(seconds),
                "-f",
                "raw",
                "--function",
                "-o",
                str(raw),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        if recorded.returncode != 0 or not raw.exists():
            return Profile(title, error=f"py-spy failed: {recorded.stderr.strip()[-500:]}")
        profile = summarise(raw, title)
        if failures:
            profile.error = f"a client failed during the recording: {failures[0]}"
        return profile
    finally:
        stop.set()
        for loop in loops:
            loop.join(660)
