#!/usr/bin/env python3
"""
Hand the node its rack: write this pod's zone where the entrypoint reads settings.

The Helm chart runs this as an init container (C{rack.mode: nodeLabel}), in
the kgateway image, so no other image is pulled.  The downward API gives a
pod its own fields but not its node's labels, so this asks the Kubernetes API
for the node the pod was scheduled on (C{spec.nodeName}, given as
C{NODE_NAME}) with the pod's service-account token, which the chart's
ClusterRole allows to C{get} nodes, and writes the node's
C{topology.kubernetes.io/zone} label to C{<env dir>/GATEWAY_RACK_ID}.  The
entrypoint exports it before it starts the node.

A node without the label is not an error: nothing is written and the gateway
node runs without a rack (a candidate for every broker).  An API that cannot
be asked (RBAC, network) is: one line and exit 1, so the pod's start fails
where an operator sees it and the kubelet retries.

Only the standard library: the image's Python runs it before any setting is
known.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
ZONE_LABEL = "topology.kubernetes.io/zone"


class ZoneError(Exception):
    """The node's labels could not be read; the message says why in one line."""


def default_api() -> str:
    """The API server as every pod sees it, from the variables the kubelet sets."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def node_labels(api: str, node: str, token: str, ca_file: Path | None) -> dict[str, str]:
    """The labels of C{node}, read with C{token}."""
    url = f"{api.rstrip('/')}/api/v1/nodes/{urllib.parse.quote(node, safe='')}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        hint = (
            " (does the ServiceAccount's ClusterRole allow get on nodes?)" if e.code == 403 else ""
        )
        raise ZoneError(f"GET {url}: HTTP {e.code} {e.reason}{hint}") from None
    except (OSError, ValueError) as e:
        raise ZoneError(f"GET {url}: {e}") from None
    labels = body.get("metadata", {}).get("labels") or {}
    if not isinstance(labels, dict):
        raise ZoneError(f"GET {url}: metadata.labels is not an object")
    return {str(k): str(v) for k, v in labels.items()}


def write_setting(env_dir: Path, setting: str, value: str) -> Path:
    """Write C{value} as the file the entrypoint reads C{setting} from, atomically."""
    env_dir.mkdir(parents=True, exist_ok=True)
    target = env_dir / setting
    partial = env_dir / f".{setting}.partial"
    partial.write_text(value)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Read the node's zone label and write it as a setting; 0 unless the API failed."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--node", default=os.environ.get("NODE_NAME"), help="default $NODE_NAME")
    parser.add_argument("--label", default=ZONE_LABEL, help=f"default {ZONE_LABEL}")
    parser.add_argument("--setting", default="GATEWAY_RACK_ID", help="default GATEWAY_RACK_ID")
    parser.add_argument("--env-dir", type=Path, default=Path("/run/kgateway/env"))
    parser.add_argument("--api", default=None, help="default https://$KUBERNETES_SERVICE_HOST")
    parser.add_argument("--token-file", type=Path, default=SERVICE_ACCOUNT / "token")
    parser.add_argument("--ca-file", type=Path, default=SERVICE_ACCOUNT / "ca.crt")
    args = parser.parse_args(argv)
    if not args.node:
        print("kgateway-node-zone: no node name: set NODE_NAME (spec.nodeName)", file=sys.stderr)
        return 1
    try:
        token = args.token_file.read_text().strip()
    except OSError as e:
        print(f"kgateway-node-zone: {args.token_file}: {e.strerror}", file=sys.stderr)
        return 1
    ca_file = args.ca_file if args.ca_file.exists() else None
    try:
        labels = node_labels(args.api or default_api(), args.node, token, ca_file)
    except ZoneError as e:
        print(f"kgateway-node-zone: {e}", file=sys.stderr)
        return 1
    zone = labels.get(args.label, "").strip()
    if not zone:
        print(f"kgateway-node-zone: node {args.node} has no {args.label} label: no rack")
        return 0
    written = write_setting(args.env_dir, args.setting, zone)
    print(f"kgateway-node-zone: node {args.node} is in {zone}: {args.setting} in {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
