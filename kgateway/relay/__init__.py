"""
The data path: one client connection and the broker connection made for it.

C{client_protocol} accepts the connection and asks the listener's router
where it goes; C{client_machine} is its lifecycle (its inputs in
C{client_inputs}, the state its behaviours share in C{client_core}, and
what it does with each read while relaying in C{data_path});
C{requests} and C{responses} are what happens to each frame either way,
passed on as it arrives where nothing needs it whole; C{inflight} keeps
the answers in request order; C{broker_leg} is the upstream connection;
C{transport} writes frames (C{_twisted_tcp} is the one reader of Twisted's
private TCP attributes).  The limits: C{budget} (the node's memory),
C{read_gate} (why a connection is not read), C{deadlines} (idle and
request time limits), C{pre_auth} (the frame limit before login),
C{guard_stats} (what they count).
"""
