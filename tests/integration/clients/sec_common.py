"""Security options shared by the client scripts of the security tests (``*_roundtrip.py``).

``add_security_args`` gives a parser the options ``harness.client_security.ClientSecurity``
writes (``--security-protocol``, ``--ssl-ca``, ``--ssl-cert``, ``--ssl-key``,
``--sasl-mechanism``, ``--sasl-username``, ``--sasl-password``); ``rdkafka_settings`` and
``kafka_python_settings`` turn them into each library's configuration.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from typing import Any


def add_security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--security-protocol", default="PLAINTEXT")
    p.add_argument("--ssl-ca", help="PEM CA file the server certificate is checked against")
    p.add_argument("--ssl-cert", help="PEM client certificate (mTLS)")
    p.add_argument("--ssl-key", help="PEM client key (mTLS)")
    p.add_argument("--sasl-mechanism")
    p.add_argument("--sasl-username", help="SASL user (OAUTHBEARER: the token's subject)")
    p.add_argument("--sasl-password")


def _tls(args: argparse.Namespace) -> bool:
    return args.security_protocol in ("SSL", "SASL_SSL")


def _sasl(args: argparse.Namespace) -> bool:
    return str(args.security_protocol).startswith("SASL_")


def unsecured_token(subject: str, lifetime: float = 3600.0) -> tuple[str, float]:
    """An unsigned JWS (``alg: none``) for Kafka's unsecured OAUTHBEARER validator, and
    its expiry (epoch seconds)."""

    def encode(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = time.time()
    claims = {"sub": subject, "iat": int(now), "exp": int(now + lifetime)}
    return f"{encode({'alg': 'none'})}.{encode(claims)}.", now + lifetime


def rdkafka_settings(args: argparse.Namespace) -> dict[str, Any]:
    """librdkafka's settings for these options (host names verified: librdkafka's default)."""
    settings: dict[str, Any] = {"security.protocol": args.security_protocol.lower()}
    if _tls(args):
        for name, value in (
            ("ssl.ca.location", args.ssl_ca),
            ("ssl.certificate.location", args.ssl_cert),
            ("ssl.key.location", args.ssl_key),
        ):
            if value:
                settings[name] = value
    if _sasl(args):
        settings["sasl.mechanisms"] = args.sasl_mechanism
        if args.sasl_mechanism == "OAUTHBEARER":
            settings["enable.sasl.oauthbearer.unsecure.jwt"] = True
            settings["sasl.oauthbearer.config"] = f"principal={args.sasl_username}"
        else:
            settings["sasl.username"] = args.sasl_username
            settings["sasl.password"] = args.sasl_password
    return settings


def _token_provider(subject: str) -> Any:
    """kafka-python's OAUTHBEARER token provider: an unsecured token for one subject."""
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class UnsecuredTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
        def token(self) -> str:
            return unsecured_token(subject)[0]

    return UnsecuredTokenProvider()


def kafka_python_settings(args: argparse.Namespace) -> dict[str, Any]:
    """kafka-python's settings for these options (``ssl_check_hostname`` on)."""
    settings: dict[str, Any] = {"security_protocol": args.security_protocol}
    if _tls(args):
        settings["ssl_check_hostname"] = True
        if args.ssl_ca:
            settings["ssl_cafile"] = args.ssl_ca
        if args.ssl_cert:
            settings["ssl_certfile"] = args.ssl_cert
        if args.ssl_key:
            settings["ssl_keyfile"] = args.ssl_key
    if _sasl(args):
        settings["sasl_mechanism"] = args.sasl_mechanism
        if args.sasl_mechanism == "OAUTHBEARER":
            settings["sasl_oauth_token_provider"] = _token_provider(args.sasl_username)
        else:
            settings["sasl_plain_username"] = args.sasl_username
            settings["sasl_plain_password"] = args.sasl_password
    return settings
