"""
What the benchmarks that own a section of C{bench/RESULTS.md} share: the medians they
report, how a missing figure reads, and how their section and JSON file are written.

C{python -m bench --tls} and C{--interceptors} each keep their figures between their own
markers in RESULTS.md, so that one benchmark's run leaves the others' sections as they are.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .workloads import RunResult


def median(
    runs: Sequence[RunResult],
    case: str,
    target: str,
    figure: Literal["mb_per_sec", "cpu_per_gib"] = "mb_per_sec",
) -> float | None:
    """The median of C{figure} over the runs of C{case} via C{target} that did not fail."""
    values: list[float] = [
        value
        for r in runs
        if r.case == case and r.target == target and not r.error
        for value in [getattr(r, figure)]
        if value is not None
    ]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    """A figure with C{digits} decimals, or a dash where there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


def write_section(
    out: Path, name: str, data: dict[str, Any], begin: str, end: str, section: str
) -> Path:
    """
    Write C{data} as C{<name>.json} in C{out}, and put C{section} between C{begin} and
    C{end} in C{out}/RESULTS.md: in place of what stood there, or appended.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    markdown = out / "RESULTS.md"
    text = markdown.read_text() if markdown.exists() else "# kgateway benchmark results\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    markdown.write_text(text)
    return markdown
