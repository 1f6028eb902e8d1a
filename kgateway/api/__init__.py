"""
The HTTP admin API every node serves: health, Prometheus metrics, and views
of the cluster, the broker mapping and this node's connections.

C{status} reads the node, C{resources} answers HTTP with it, C{auth} guards
it, C{openapi} describes it, C{server} listens, and C{cli} is the
C{kgateway} command that talks to it.
"""
