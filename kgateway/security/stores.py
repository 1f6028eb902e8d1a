"""
Key stores and trust stores, read from the files Kafka's settings name.

A key store gives a private key and its certificate chain (the node's own
certificate, for mTLS); a trust store gives the CA certificates a peer's
certificate must chain to.  Three formats, as Kafka's clients read them:
C{PEM} (cryptography), C{PKCS12} (cryptography) and C{JKS} (pyjks; JCEKS too).
As Java does, a binary store is read as what it is (a C{JKS} setting on a
PKCS12 file works), and an unset type is found from the file's first bytes.

Every problem is a L{ConfigError} of one line that names the settings
involved (a L{StoreSettings}), the file, and the fix; never a password.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jks
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
    pkcs12,
)

from kgateway.setting import ConfigError

StoreType = Literal["PEM", "PKCS12", "JKS"]

#: The store types a C{*_TYPE} setting may name.
STORE_TYPES: tuple[StoreType, ...] = ("PEM", "PKCS12", "JKS")

_JKS_MAGIC = (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce")  # JKS, JCEKS
_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\r?\n.*?-----END (?P=label)-----", re.DOTALL
)
_PEM_KEY_LABELS = (
    b"PRIVATE KEY",
    b"ENCRYPTED PRIVATE KEY",
    b"RSA PRIVATE KEY",
    b"EC PRIVATE KEY",
    b"DSA PRIVATE KEY",
)


@dataclass(frozen=True)
class StoreSettings:
    """The names of the settings that give one store, for the messages about it."""

    #: e.g. C{KAFKA_SSL_KEYSTORE_LOCATION}
    location: str
    #: e.g. C{KAFKA_SSL_KEYSTORE_TYPE}
    type: str
    #: e.g. C{KAFKA_SSL_KEYSTORE_PASSWORD}
    password: str
    #: e.g. C{KAFKA_SSL_KEY_PASSWORD}; None for a trust store.
    key_password: str | None = None


@dataclass(frozen=True)
class KeyStore:
    """A private key and its certificate chain, the key's own certificate first."""

    private_key: PrivateKeyTypes
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate(self) -> x509.Certificate:
        """The key's own certificate."""
        return self.chain[0]

    def __repr__(self) -> str:
        # Never the key; the subject says which store it is.
        return f"<KeyStore {self.certificate.subject.rfc4514_string()}>"


def store_type(name: str, value: str) -> StoreType:
    """A C{*_TYPE} setting: C{PEM}, C{PKCS12} or C{JKS}, in any case."""
    text = value.strip().upper()
    for known in STORE_TYPES:
        if text == known:
            return known
    raise ConfigError(f"{name}={value!r}: not a store type; valid: {', '.join(STORE_TYPES)}")


def load_key_store(
    names: StoreSettings,
    location: str,
    declared: StoreType | None = None,
    password: str | None = None,
    key_password: str | None = None,
) -> KeyStore:
    """
    The private key and certificate chain in the key store at C{location}.

    PEM: the private key (PKCS#8, encrypted or not, or a traditional RSA/EC
    key) and its certificates; the key is decrypted with C{key_password},
    else C{password}.  PKCS12: opened with C{password} (else C{key_password}:
    PKCS12 has one password).  JKS: opened with C{password}, the key
    decrypted with C{key_password}, else C{password}.  The store must hold
    exactly one private key, and its certificate.
    """
    data = _read(names, location, "key store")
    kind = _kind(names, location, data, declared)
    if kind == "PEM":
        key, certificates = _pem_key_store(names, location, data, key_password, password)
    elif kind == "PKCS12":
        key, certificates = _pkcs12_key_store(names, location, data, password, key_password)
    else:
        key, certificates = _jks_key_store(names, location, data, password, key_password)
    return KeyStore(key, _chain(names, location, key, certificates))


def load_trust_store(
    names: StoreSettings,
    location: str,
    declared: StoreType | None = None,
    password: str | None = None,
) -> tuple[x509.Certificate, ...]:
    """
    The CA certificates in the trust store at C{location}.  PEM: every
    certificate in the file.  PKCS12 and JKS: every certificate entry; the
    password checks the store's integrity and may be left out for a store
    made without one (Java reads a JKS trust store without it too).
    """
    data = _read(names, location, "trust store")
    kind = _kind(names, location, data, declared)
    if kind == "PEM":
        certificates = _pem_certificates(names, location, data)
    elif kind == "PKCS12":
        opened = _open_pkcs12(names, location, data, [password] if password else [None, ""])
        certificates = [c.certificate for c in opened.additional_certs]
        if opened.cert is not None:
            certificates.insert(0, opened.cert.certificate)
    else:
        store = _open_jks(names, location, data, password)
        certificates = [
            _der_certificate(names, location, entry.cert) for entry in store.certs.values()
        ]
    if not certificates:
        raise ConfigError(
            f"{names.location}={location!r}: holds no certificate; a trust store holds the "
            "CA certificates that signed the peers' certificates"
        )
    return tuple(certificates)


def refuse_expired(
    names: StoreSettings, location: str, store: KeyStore, now: datetime.datetime
) -> None:
    """
    Refuse a key store whose own certificate has expired at C{now}: every
    peer that checks certificates would refuse it, with a TLS alert that
    names nothing, so the one line at start is the only clear account.
    """
    certificate = store.certificate
    ends = certificate.not_valid_after_utc
    if ends <= now:
        raise ConfigError(
            f"{names.location}={location!r}: its certificate "
            f"({certificate.subject.rfc4514_string()}) expired on {ends:%Y-%m-%d %H:%M} UTC; "
            "renew it"
        )


# Reading the file and telling what it is ---------------------------------------


def _read(names: StoreSettings, location: str, what: str) -> bytes:
    try:
        return Path(location).read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{names.location}={location!r}: cannot read it ({e.strerror}); "
            f"give the path of a readable {what}"
        ) from None


def _sniffed(data: bytes) -> StoreType | None:
    if data[:4] in _JKS_MAGIC:
        return "JKS"
    if data[:1] == b"\x30":  # a DER SEQUENCE: PKCS12
        return "PKCS12"
    if b"-----BEGIN " in data:
        return "PEM"
    return None


def _kind(
    names: StoreSettings, location: str, data: bytes, declared: StoreType | None
) -> StoreType:
    found = _sniffed(data)
    if found is None:
        raise ConfigError(
            f"{names.location}={location!r}: neither PEM, PKCS12 nor JKS; give a store "
            f"in one of those formats (and {names.type})"
        )
    if declared is None:
        return found
    if (declared == "PEM") != (found == "PEM"):
        raise ConfigError(
            f"{names.location}={location!r} is not a {declared} store (it reads as {found}); "
            f"set {names.type}={found}"
        )
    # Java reads a JKS file declared PKCS12 and the other way round (keystore.type.compat).
    return found


# PEM -------------------------------------------------------------------------


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    return [(match["label"], match.group(0)) for match in _PEM_BLOCK.finditer(data)]


def _pem_key_store(
    names: StoreSettings,
    location: str,
    data: bytes,
    key_password: str | None,
    password: str | None,
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    keys = [block for label, block in _pem_blocks(data) if label in _PEM_KEY_LABELS]
    if len(keys) != 1:
        raise ConfigError(
            f"{names.location}={location!r}: holds {len(keys)} private keys; a PEM key store "
            "is one private key followed by its certificate chain"
        )
    key = _pem_private_key(names, location, keys[0], [key_password, password])
    return key, _pem_certificates(names, location, data)


def _pem_private_key(
    names: StoreSettings, location: str, block: bytes, passwords: Sequence[str | None]
) -> PrivateKeyTypes:
    given = [p for p in passwords if p]
    key_password = names.key_password or names.password
    for candidate in [*given, None]:
        try:
            return load_pem_private_key(block, candidate.encode() if candidate else None)
        except TypeError:
            # Encrypted and no password, or a password for a key that is not
            # encrypted (then the next candidate, None, reads it).
            continue
        except ValueError:
            continue
    if not given:
        raise ConfigError(
            f"{names.location}={location!r}: its private key is encrypted (or unreadable); "
            f"set {key_password} to the key's password"
        )
    raise ConfigError(
        f"{key_password} does not decrypt the private key in {names.location}={location!r} "
        "(or the key is unreadable); set the key's password"
    )


def _pem_certificates(names: StoreSettings, location: str, data: bytes) -> list[x509.Certificate]:
    certificates = []
    for label, block in _pem_blocks(data):
        if label != b"CERTIFICATE":
            continue
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as e:
            raise ConfigError(
                f"{names.location}={location!r}: a certificate in it cannot be read ({e})"
            ) from None
    return certificates


# PKCS12 ------------------------------------------------------------------------


def _open_pkcs12(
    names: StoreSettings, location: str, data: bytes, passwords: Sequence[str | None]
) -> pkcs12.PKCS12KeyAndCertificates:
    for candidate in passwords:
        try:
            return pkcs12.load_pkcs12(data, None if candidate is None else candidate.encode())
        except (ValueError, TypeError):
            continue
    if not any(passwords):
        raise ConfigError(
            f"{names.location}={location!r} is a PKCS12 store that needs a password (or is "
            f"damaged); set {names.password}"
        )
    raise ConfigError(
        f"{names.password} does not open {names.location}={location!r} (a PKCS12 store: a "
        "wrong password, or a damaged file); set the store's password"
    )


def _pkcs12_key_store(
    names: StoreSettings,
    location: str,
    data: bytes,
    password: str | None,
    key_password: str | None,
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    given: list[str | None] = list(dict.fromkeys(p for p in (password, key_password) if p))
    candidates = given or [None, ""]
    opened = _open_pkcs12(names, location, data, candidates)
    if opened.key is None:
        raise ConfigError(
            f"{names.location}={location!r}: the PKCS12 store holds no private key; a key "
            "store holds the private key and its certificate"
        )
    certificates = [c.certificate for c in opened.additional_certs]
    if opened.cert is not None:
        certificates.insert(0, opened.cert.certificate)
    return opened.key, certificates


# JKS -------------------------------------------------------------------------


def _open_jks(
    names: StoreSettings, location: str, data: bytes, password: str | None
) -> jks.KeyStore:
    if data[:4] not in _JKS_MAGIC:
        # Declared JKS, but PKCS12 inside: handled by _kind; this is a safety net.
        raise ConfigError(f"{names.location}={location!r}: not a JKS store")
    try:
        return jks.KeyStore.loads(data, password or None, try_decrypt_keys=bool(password))
    except jks.util.KeystoreSignatureException:
        raise ConfigError(
            f"{names.password} does not open {names.location}={location!r} (a JKS store: the "
            "integrity check failed); set the store's password"
        ) from None
    except Exception as e:  # pyjks's format errors, struct errors
        raise ConfigError(
            f"{names.location}={location!r}: a damaged JKS store ({type(e).__name__})"
        ) from None


def _jks_key_store(
    names: StoreSettings,
    location: str,
    data: bytes,
    password: str | None,
    key_password: str | None,
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    if not password:
        raise ConfigError(
            f"{names.password} is not set: a JKS key store is opened with its password; set it"
        )
    store = _open_jks(names, location, data, password)
    entries = list(store.private_keys.values())
    if len(entries) != 1:
        aliases = ", ".join(sorted(store.private_keys)) or "none"
        raise ConfigError(
            f"{names.location}={location!r}: holds {len(entries)} private keys ({aliases}); "
            "kgateway uses a store with exactly one"
        )
    (entry,) = entries
    if not entry.is_decrypted():
        try:
            entry.decrypt(key_password or password)
        except Exception:
            which = names.key_password if key_password else f"{names.password} (as key password)"
            raise ConfigError(
                f"{which} does not decrypt the private key {entry.alias!r} in "
                f"{names.location}={location!r}; set {names.key_password or names.password} "
                "to the key's password"
            ) from None
    try:
        key = load_der_private_key(entry.pkey_pkcs8, None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{names.location}={location!r}: the private key {entry.alias!r} cannot be read ({e})"
        ) from None
    certificates = [_der_certificate(names, location, der) for _, der in entry.cert_chain]
    return key, certificates


def _der_certificate(names: StoreSettings, location: str, der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise ConfigError(
            f"{names.location}={location!r}: a certificate in it cannot be read ({e})"
        ) from None


# The key's own certificate first ---------------------------------------------------


def _public(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def _chain(
    names: StoreSettings,
    location: str,
    key: PrivateKeyTypes,
    certificates: list[x509.Certificate],
) -> tuple[x509.Certificate, ...]:
    if not certificates:
        raise ConfigError(
            f"{names.location}={location!r}: holds a private key but no certificate; add "
            "the key's certificate (and its chain) to the store"
        )
    mine = _public(key.public_key())
    for index, certificate in enumerate(certificates):
        if _public(certificate.public_key()) == mine:
            return (certificate, *certificates[:index], *certificates[index + 1 :])
    subject = certificates[0].subject.rfc4514_string()
    raise ConfigError(
        f"{names.location}={location!r}: the private key does not match its certificate "
        f"({subject}); put the key and its own certificate in the store"
    )
