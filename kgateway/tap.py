"""The C{twistd kgateway} command line."""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from kgateway.config import FAMILIES, SETTINGS, ConfigError, Settings
from kgateway.interfaces import INodeReactor
from kgateway.node.service import GatewayNode
from kgateway.node.service import makeService as make_node


class Options(usage.Options):
    """Options for C{twistd kgateway}; each overrides its environment variable."""

    synopsis = "[options]"
    longdesc = (
        "Run one kgateway node: a Kafka protocol gateway with one port per broker. "
        "Every option can also be set by the environment variable shown; an option "
        "given here wins. Families of variables, keyed by a name, are read from the "
        "environment only: " + " ".join(f"{family.prefix}*: {family.about}." for family in FAMILIES)
    )
    optParameters = [
        [
            s.option,
            None,
            None,
            f"{s.help} [env {s.env}"
            + (f", default {s.default}]" if s.default is not None else "]"),
        ]
        for s in SETTINGS
    ]


def makeService(options: Options, reactor: INodeReactor | None = None) -> GatewayNode:
    """Check the settings and build the node; a bad setting exits with one line."""
    try:
        settings = Settings.load(os.environ, dict(options))
    except ConfigError as e:
        sys.stderr.write(f"kgateway: {e}\n")
        raise SystemExit(2) from None
    return make_node(settings, reactor)
