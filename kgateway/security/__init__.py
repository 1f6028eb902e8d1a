"""
TLS and SASL: key and trust stores, the node's TLS and logins to the brokers,
and the listeners' TLS for clients.
"""
