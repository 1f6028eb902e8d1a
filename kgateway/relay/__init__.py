"""
The data path: one client connection and the broker connection made for it.

C{client_protocol} accepts the connection and asks the listener's router
where it goes; C{client_machine} is its lifecycle; C{requests} and
C{responses} are what happens to each frame either way; C{inflight} keeps
the answers in request order; C{broker_leg} is the upstream connection;
C{transport} writes frames (C{_twisted_tcp} is the one reader of Twisted's
private TCP attributes).
"""
