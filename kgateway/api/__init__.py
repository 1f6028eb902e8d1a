"""
The HTTP admin API every node serves: health, Prometheus metrics, views of
the cluster, the broker mapping and this node's connections, and the
cluster's interceptor configurations.

C{status} reads the node (through the L{kgateway.interfaces.INodeView} the
node provides), C{web} is the JSON shape of every answer, C{resources} and
C{interceptors} answer HTTP, C{auth} guards it, C{openapi} describes it,
C{server} listens, and C{cli} is the C{kgateway} command that talks to it.
"""
