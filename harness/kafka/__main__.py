"""C{python -m harness.kafka}: a local Kafka cluster in the foreground until Ctrl-C.

C{--download-only} fills the jar cache and exits (what C{scripts/setup} runs).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from harness.kafka.cluster import KafkaCluster
from harness.kafka.maven import KAFKA_VERSION, KafkaDownloadError, ensure_kafka_libs
from harness.kafka.node import KafkaClusterError


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.kafka",
        description=f"Run a local Apache Kafka {KAFKA_VERSION} KRaft cluster until Ctrl-C.",
    )
    parser.add_argument("--size", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--base-dir", type=Path, help="keep configs, data and logs here")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--first-node-id", type=int, default=1)
    parser.add_argument("--heap", default="512m", help="JVM -Xmx per node (default 512m)")
    parser.add_argument("--racks", default="a,b,c", help="comma-separated rack names to cycle")
    parser.add_argument(
        "--download-only", action="store_true", help="fetch the broker jars into the cache and exit"
    )
    return parser.parse_args(argv)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    """Start a cluster in the foreground, print its bootstrap servers, stop on Ctrl-C/SIGTERM."""
    args = _parse_args(argv)
    if args.download_only:
        try:
            ensure_kafka_libs()
        except KafkaDownloadError as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    # SIGTERM takes the same orderly path as Ctrl-C instead of killing Python outright; SIGINT
    # is set explicitly because shells start background jobs with it ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    if args.size < 1:
        print(f"--size {args.size}: a cluster needs at least one node", file=sys.stderr)
        return 2
    cluster = KafkaCluster(
        size=args.size,
        base_dir=args.base_dir,
        racks=tuple(r for r in args.racks.split(",") if r) or ("a",),
        host=args.host,
        first_node_id=args.first_node_id,
        heap=args.heap,
    )
    try:
        began = time.monotonic()
        cluster.start()
        print(
            f"Kafka {KAFKA_VERSION} cluster {cluster.cluster_id} ready in "
            f"{time.monotonic() - began:.1f}s, files in {cluster.base_dir}",
            file=out,
        )
        for info in cluster.brokers:
            print(
                f"  node {info.node_id} {info.host}:{info.port} rack={info.rack} "
                f"pid={cluster.pid(info.node_id)}",
                file=out,
            )
        print(cluster.bootstrap_servers, file=out, flush=True)
        reported: set[int] = set()
        while True:
            time.sleep(1.0)
            all_ids = {info.node_id for info in cluster.brokers}
            for node_id in sorted(all_ids - cluster.running_node_ids() - reported):
                print(
                    f"node {node_id} exited; see {cluster.log_path(node_id)}", file=out, flush=True
                )
                reported.add(node_id)
    except KeyboardInterrupt:
        print("stopping", file=out, flush=True)
        return 0
    except (KafkaClusterError, KafkaDownloadError) as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        # stop() is bounded by its SIGKILL grace period; a second Ctrl-C must not cut it short
        # and leave the JVMs to the death signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
