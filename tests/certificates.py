"""
The tests' certificates, made by the harness's CA (L{harness.certs}): a CA, a gateway's
server certificate (for localhost and 127.0.0.1), clients' certificates, and the key and
trust stores made of them (PEM, PKCS12), in the shape these tests ask for them.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from harness.certs import CertificateAuthority, Identity, host_sans

#: The organisation every test certificate names.
ORGANISATION = "kgateway tests"

#: A key and the certificate issued for it (C{subject}, C{key_pem}, C{certificate_pem}).
Issued = Identity


def _subject(common_name: str) -> str:
    return f"CN={common_name},O={ORGANISATION}"


class Authority:
    """A CA that issues the tests' certificates."""

    def __init__(self, common_name: str = "kgateway test CA") -> None:
        self.ca = CertificateAuthority(_subject(common_name))

    def pem(self) -> bytes:
        """The CA's certificate, PEM (a trust store)."""
        return self.ca.certificate_pem()

    def issue(
        self,
        common_name: str,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        valid_days: float = 30,
        starts_in_days: float = -1,
        server: bool = True,
    ) -> Issued:
        """A certificate for C{common_name}, valid for C{hosts}, from now + C{starts_in_days}."""
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=starts_in_days)
        return self.ca.issue(
            _subject(common_name),
            host_sans(hosts),
            server=server,
            valid_from=start,
            valid_until=start + datetime.timedelta(days=valid_days),
        )


def write_pem_key_store(
    path: Path, issued: Issued, authority: Authority, password: str | None = None
) -> Path:
    """A PEM key store: the key, then the certificate and the CA (Kafka's layout)."""
    path.write_bytes(issued.key_pem(password) + issued.certificate_pem() + authority.pem())
    return path


def write_pkcs12_key_store(
    path: Path, issued: Issued, authority: Authority, password: str | None
) -> Path:
    """A PKCS12 key store with one key entry and its chain (C{authority}, which issued it)."""
    path.write_bytes(issued.pkcs12_bytes(password or None, alias="gateway"))
    return path


def write_pkcs12_trust_store(path: Path, authority: Authority, password: str) -> Path:
    """A PKCS12 trust store holding the CA's certificate alone."""
    path.write_bytes(authority.ca.truststore_pkcs12_bytes(password, alias="ca"))
    return path
