"""The test harness: real Kafka brokers, gateway nodes and HAProxy as child processes.

It lives in the source tree, not in the kgateway wheel: the tests, the benchmarks and the demo
(C{python -m harness.demo}) import it from the repository root.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source tree this harness belongs to; gateway processes run its C{kgateway}."""
