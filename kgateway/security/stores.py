"""
Key stores and trust stores read from files: PEM, PKCS12 and JKS.

A stand-in on the client-side branch for the broker side's module of the
same name (issue 13, B), with the two functions the server side calls and
the signatures agreed for them: L{load_key_store} and L{load_trust_store}.
Each error is one L{ConfigError} line naming the setting and the fix, and
never a password.  The broker side's module replaces this one at merge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from kgateway.setting import ConfigError

STORE_TYPES = ("pkcs12", "jks", "pem")

_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True)
class KeyMaterial:
    """A private key, its certificate, and the chain that goes with it (leaf excluded)."""

    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{setting}={path!r}: cannot read it ({e.strerror}); give the path of a readable file"
        ) from None


def _kind(data: bytes) -> str:
    """What a store file looks like: pem, jks, pkcs12 (DER), or unknown."""
    if b"-----BEGIN" in data[:4096]:
        return "pem"
    if data[:4] == b"\xfe\xed\xfe\xed":
        return "jks"
    if data[:1] == b"\x30":
        return "pkcs12"
    return "unknown"


def _wrong_type(setting: str, path: str, store_type: str, type_setting: str, data: bytes) -> str:
    kind = _kind(data)
    hint = (
        f"it looks like {kind.upper()}: set {type_setting}={kind}"
        if kind not in ("unknown", store_type)
        else f"check the file and {type_setting}"
    )
    return f"{setting}={path!r} is not a readable {store_type.upper()} store ({hint})"


def _password(text: str | None) -> bytes | None:
    return text.encode() if text else None


def load_key_store(
    setting: str,
    path: str,
    store_type: str,
    password: str | None,
    key_password: str | None = None,
    *,
    type_setting: str = "",
    password_setting: str = "",
) -> KeyMaterial:
    """
    The key and certificate chain in a key store.  PEM: one file holding the
    private key (encrypted with C{key_password}, or not) and the certificates,
    leaf first, as Kafka's PEM key stores are.  PKCS12 and JKS: the first key
    entry, opened with C{password} (JKS: the entry with C{key_password},
    defaulting to C{password}).
    """
    data = _read(setting, path)
    type_setting = type_setting or f"{setting}'s type"
    password_setting = password_setting or f"{setting}'s password"
    if store_type == "pem":
        return _pem_key_store(setting, path, data, key_password or password, type_setting)
    if store_type == "pkcs12":
        if _kind(data) != "pkcs12":
            raise ConfigError(_wrong_type(setting, path, store_type, type_setting, data))
        try:
            key, cert, chain = pkcs12.load_key_and_certificates(data, _password(password))
        except ValueError:
            raise ConfigError(
                f"{setting}={path!r}: cannot open the PKCS12 store: wrong password or a "
                f"damaged file; check {password_setting}"
            ) from None
        if key is None or cert is None:
            raise ConfigError(f"{setting}={path!r} holds no private key with its certificate")
        return KeyMaterial(key, cert, tuple(chain))
    return _jks_key_store(setting, path, data, password, key_password, type_setting)


def _pem_key_store(
    setting: str, path: str, data: bytes, password: str | None, type_setting: str
) -> KeyMaterial:
    if _kind(data) != "pem":
        raise ConfigError(_wrong_type(setting, path, "pem", type_setting, data))
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{setting}={path!r} holds no PEM certificate") from None
    found = _PEM_KEY.search(data)
    if found is None:
        raise ConfigError(
            f"{setting}={path!r} holds no PEM private key: put the key and its certificate "
            "in one file"
        )
    block = found.group(0)
    try:
        key = serialization.load_pem_private_key(block, _password(password))
    except TypeError:
        raise ConfigError(
            f"{setting}={path!r}: the private key is encrypted; set GATEWAY_SSL_KEY_PASSWORD"
        ) from None
    except ValueError:
        raise ConfigError(
            f"{setting}={path!r}: cannot read the private key: a wrong key password or a "
            "damaged key"
        ) from None
    return KeyMaterial(key, certificates[0], tuple(certificates[1:]))


def _jks(setting: str) -> Any:
    try:
        import jks
    except ImportError:
        raise ConfigError(
            f"{setting}: JKS stores need the pyjks package (pip install pyjks), or convert "
            "the store to PKCS12 with keytool -importkeystore"
        ) from None
    return jks


def _jks_key_store(
    setting: str,
    path: str,
    data: bytes,
    password: str | None,
    key_password: str | None,
    type_setting: str,
) -> KeyMaterial:
    if _kind(data) != "jks":
        raise ConfigError(_wrong_type(setting, path, "jks", type_setting, data))
    jks = _jks(setting)
    try:
        store = jks.KeyStore.loads(data, password or "")
        entry = next(iter(store.private_keys.values()))
        if not entry.is_decrypted():
            entry.decrypt(key_password or password or "")
    except StopIteration:
        raise ConfigError(f"{setting}={path!r} holds no private key entry") from None
    except Exception:
        raise ConfigError(
            f"{setting}={path!r}: cannot open the JKS store: wrong password or a damaged file"
        ) from None
    key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
    certs = [x509.load_der_x509_certificate(c[1]) for c in entry.cert_chain]
    return KeyMaterial(key, certs[0], tuple(certs[1:]))


def load_trust_store(
    setting: str,
    path: str,
    store_type: str,
    password: str | None,
    *,
    type_setting: str = "",
    password_setting: str = "",
) -> tuple[x509.Certificate, ...]:
    """The trusted certificates in a trust store (PEM: every certificate in the file)."""
    data = _read(setting, path)
    type_setting = type_setting or f"{setting}'s type"
    password_setting = password_setting or f"{setting}'s password"
    if _kind(data) != store_type:
        raise ConfigError(_wrong_type(setting, path, store_type, type_setting, data))
    certificates: list[x509.Certificate]
    if store_type == "pem":
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(f"{setting}={path!r} holds no PEM certificate") from None
    elif store_type == "pkcs12":
        try:
            loaded = pkcs12.load_pkcs12(data, _password(password))
        except ValueError:
            raise ConfigError(
                f"{setting}={path!r}: cannot open the PKCS12 store: wrong password or a "
                f"damaged file; check {password_setting}"
            ) from None
        certificates = [c.certificate for c in loaded.additional_certs]
        if loaded.cert is not None:
            certificates.insert(0, loaded.cert.certificate)
    else:
        jks = _jks(setting)
        try:
            store = jks.KeyStore.loads(data, password or "")
        except Exception:
            raise ConfigError(
                f"{setting}={path!r}: cannot open the JKS store: wrong password or a damaged file"
            ) from None
        certificates = [x509.load_der_x509_certificate(c.cert) for c in store.certs.values()]
    if not certificates:
        raise ConfigError(f"{setting}={path!r} holds no certificate to trust")
    return tuple(certificates)
