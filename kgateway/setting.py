"""
One setting: its row, the parsers that check its text, and the values they give.

L{kgateway.config} declares the node's settings as L{Setting} rows (and
L{Family} rows for settings keyed by a name); this module holds what those
rows are made of.  Each parser is C{parse(name, text)}: C{name} is the
setting's environment variable, for the message of the L{ConfigError} it
raises on a bad value, one line naming the setting, the value and what
would be valid.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from kgateway.net import HostPort


class ConfigError(Exception):
    """A setting has a value the node cannot run with."""


@dataclass(frozen=True)
class AdminUser:
    """One user of the admin API; the password never appears in a repr or a log."""

    username: str
    password: str = field(repr=False)
    admin: bool = False


@dataclass(frozen=True)
class HttpTls:
    """The PEM files that turn the admin API into HTTPS."""

    key_path: str
    cert_path: str


LOG_FORMATS = ("text", "json")

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: where it is read from, what it fills, how it is checked, what it means."""

    env: str
    option: str
    #: The L{Settings} field it fills; None when L{Settings.load} combines it with others.
    field: str | None
    #: Checks the text and gives the value: C{parse(env, text)}, or a L{ConfigError}.
    parse: Callable[[str, str], T]
    #: The default as a user would write it; None when unset means something else.
    default: str | None
    #: What the setting means (the README's "meaning" column).
    about: str
    #: What an unset setting without a default means ("this machine's host name").
    unset: str | None = None
    #: The node cannot start without it (its L{Settings} field has no default either).
    required: bool = False
    #: Its parser's errors never repeat the value (passwords).
    secret: bool = False

    @property
    def help(self) -> str:
        """The option's help for C{twistd kgateway --help}: the meaning, and what unset means."""
        if self.required:
            return f"{self.about} (required)"
        if self.default is None and self.unset is not None:
            return f"{self.about} (default: {self.unset})"
        return self.about

    @property
    def shown_default(self) -> str:
        """The default as the README's table shows it."""
        if self.required:
            return "required"
        if self.default is not None:
            return f"`{self.default}`"
        return self.unset or "none"

    def initial(self) -> T:
        """The parsed default: what a L{Settings} field holds when the setting is not given."""
        if self.default is None:
            raise ValueError(f"{self.env} has no default")
        return self.parse(self.env, self.default)

    def text(self, environ: Mapping[str, str], options: Mapping[str, str | None]) -> str | None:
        """The text given for this setting (the option wins), or None when it is not given."""
        value = options.get(self.option)
        if value is None:
            value = environ.get(self.env)
        if value is None or (not value.strip() and self.default is None):
            # Blank is unset where unset has a meaning; elsewhere the parser refuses it.
            return None
        return value

    def read(self, environ: Mapping[str, str], options: Mapping[str, str | None]) -> T | None:
        """The checked value given for this setting, or None when it is not given."""
        text = self.text(environ, options)
        return None if text is None else self.parse(self.env, text)


@dataclass(frozen=True)
class Family:
    """Settings keyed by a name: every environment variable that starts with C{prefix}."""

    prefix: str
    field: str
    read: Callable[[Mapping[str, str]], Any]
    about: str


def _cell(text: str) -> str:
    # Markdown table cells: a pipe ends the cell, and <...> would read as HTML.
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def settings_table(rows: Sequence[Setting[Any]], families: Sequence[Family]) -> str:
    """The README's table of settings, in Markdown, one line per row (then the families)."""
    lines = [
        "| environment variable | option | default | meaning |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row.env}` | `--{row.option}` | {_cell(row.shown_default)} | {_cell(row.about)} |"
        )
    for family in families:
        lines.append(f"| `{family.prefix}*` | | | {_cell(family.about)} |")
    return "\n".join(lines) + "\n"


def parse_servers(name: str, value: str) -> tuple[HostPort, ...]:
    """Parse C{host:port[,host:port...]}."""
    servers = []
    for item in value.split(","):
        item = item.strip()
        hostname, sep, number = item.rpartition(":")
        hostname = hostname.strip("[]")
        if not sep or not hostname:
            raise ConfigError(f"{name}={value!r}: {item!r} is not host:port")
        servers.append(HostPort(hostname, port(name, number, whole=value)))
    return tuple(servers)


def _int(name: str, value: str, whole: str | None = None) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}={whole or value!r}: {value!r} is not a whole number") from None


def port(name: str, value: str, whole: str | None = None) -> int:
    """A TCP port, 1-65535 (C{whole}: the setting's whole value, when this is part of it)."""
    number = _int(name, value, whole)
    if not 1 <= number <= 65535:
        raise ConfigError(f"{name}={whole or value!r}: {number} is not a port number (1-65535)")
    return number


def positive_int(name: str, value: str) -> int:
    """A whole number, 1 or more."""
    number = _int(name, value)
    if number < 1:
        raise ConfigError(f"{name}={value!r}: must be 1 or more")
    return number


def non_negative_int(name: str, value: str) -> int:
    """A whole number, 0 or more."""
    number = _int(name, value)
    if number < 0:
        raise ConfigError(f"{name}={value!r}: must be 0 or more")
    return number


def milliseconds_as_seconds(name: str, value: str) -> float:
    """Milliseconds, 0 or more, as the seconds Twisted's clocks count in."""
    return non_negative_int(name, value) / 1000


def positive_milliseconds_as_seconds(name: str, value: str) -> float:
    """Milliseconds, 1 or more, as seconds."""
    return positive_int(name, value) / 1000


def host(name: str, value: str) -> str:
    """A host name or address (no spaces)."""
    text = value.strip()
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"{name}={value!r}: not a host name or address")
    return text


def kafka_name(name: str, value: str) -> str:
    """A Kafka-safe name: letters, digits, '.', '_' and '-'."""
    text = value.strip()
    if not text or any(not (c.isalnum() or c in "._-") for c in text):
        raise ConfigError(f"{name}={value!r}: use letters, digits, '.', '_' and '-' only")
    return text


def path(name: str, value: str) -> str:
    """A file's path, as given (whether it can be read is checked where it is used)."""
    return value


def boolean(name: str, value: str) -> bool:
    """true/false (or 1/0, yes/no, on/off)."""
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: valid: true or false")


def log_format(name: str, value: str) -> str:
    """One of L{LOG_FORMATS}."""
    text = value.strip().lower()
    if text not in LOG_FORMATS:
        raise ConfigError(f"{name}={value!r}: valid: {' or '.join(LOG_FORMATS)}")
    return text


def is_loopback(hostname: str) -> bool:
    """Whether C{hostname} is a loopback address (or C{localhost})."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


_USERS_SHAPE = '[{"username": "ops", "password": "...", "admin": true}]'


def parse_admin_users(name: str, value: str) -> tuple[AdminUser, ...]:
    """Read the admin API users; errors never repeat the value, which holds passwords."""
    try:
        raw = json.loads(value)
    except ValueError as e:
        raise ConfigError(f"{name} is not valid JSON ({e}); valid: {_USERS_SHAPE}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{name} must be a JSON list; valid: {_USERS_SHAPE}")
    users: list[AdminUser] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: entry {index} is not an object; valid: {_USERS_SHAPE}")
        username, password = entry.get("username"), entry.get("password")
        admin = entry.get("admin", False)
        if not isinstance(username, str) or not username or ":" in username:
            raise ConfigError(
                f"{name}: entry {index} needs a non-empty \"username\" string without ':'"
            )
        if not isinstance(password, str) or not password:
            raise ConfigError(f'{name}: user {username!r} needs a non-empty "password" string')
        if not isinstance(admin, bool):
            raise ConfigError(f'{name}: user {username!r}: "admin" must be true or false')
        unknown = sorted(set(entry) - {"username", "password", "admin"})
        if unknown:
            raise ConfigError(
                f"{name}: user {username!r} has unknown key(s) {', '.join(unknown)}; "
                "valid: username, password, admin"
            )
        if any(user.username == username for user in users):
            raise ConfigError(f"{name}: user {username!r} is listed twice")
        users.append(AdminUser(username, password, admin))
    return tuple(users)


def http_tls(key_name: str, key: str | None, cert_name: str, cert: str | None) -> HttpTls | None:
    """
    The admin API's HTTPS files, checked as a pair: both or neither, readable,
    and a PEM certificate with its private key.  C{*_name}: the settings' names.
    """
    if key is None and cert is None:
        return None
    if key is None or cert is None:
        given, missing = (cert_name, key_name) if key is None else (key_name, cert_name)
        raise ConfigError(f"{given} is set but {missing} is not: HTTPS needs both PEM files")
    contents = []
    for name, file in ((key_name, key), (cert_name, cert)):
        try:
            contents.append(Path(file).read_bytes())
        except OSError as e:
            raise ConfigError(f"{name}={file!r}: cannot read it ({e.strerror})") from None
    from twisted.internet.ssl import PrivateCertificate

    try:
        PrivateCertificate.loadPEM(contents[1] + b"\n" + contents[0])
    except Exception as e:
        raise ConfigError(
            f"{cert_name}={cert!r} with {key_name}={key!r}: not a PEM "
            f"certificate and its matching private key ({type(e).__name__}: {e})"
        ) from None
    return HttpTls(key, cert)
