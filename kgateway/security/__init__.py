"""TLS and SASL: key and trust stores, the client side's TLS (C{server_*}), the broker side's."""
