"""
A configured interceptor: C{{name, plugin, priority, config, scope}}.

This is the JSON the admin API takes and the interceptors topic stores.
Parsing checks the shape; the plugin's C{build} checks C{config} itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kgateway.interceptors.api import ClientInfo, InvalidConfig
from kgateway.interceptors.patterns import TextPattern, compile_pattern

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FIELDS = {"name", "plugin", "priority", "config", "scope"}


_SCOPES = {"clientId", "username", "principal"}


@dataclass(frozen=True)
class Scope:
    """
    Which connections an interceptor applies to: all, a client-id pattern, a
    SASL user, or a TLS client certificate's subject (the principal: itself,
    or a regular expression the whole subject matches).
    """

    client_id: str | None = None
    username: str | None = None
    principal: str | None = None
    _pattern: TextPattern | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, raw: Any) -> Scope:
        """From JSON: absent or "global", {"clientId": regex}, {"username": name} or
        {"principal": subject or regex}."""
        if raw is None or raw == "global":
            return cls()
        if not isinstance(raw, Mapping) or not raw or set(raw) - _SCOPES:
            raise InvalidConfig(
                'scope must be "global", {"clientId": "<regex>"}, {"username": "<name>"} '
                'or {"principal": "<subject or regex>"}'
            )
        if len(raw) != 1:
            raise InvalidConfig("scope names one of clientId, username or principal, not more")
        if "principal" in raw:
            subject = raw["principal"]
            if not isinstance(subject, str) or not subject:
                raise InvalidConfig(
                    'scope.principal must be a certificate subject ("CN=app-1,O=acme") or a '
                    "regular expression"
                )
            compiled: TextPattern | None
            try:
                compiled = compile_pattern(subject, "scope.principal")
            except InvalidConfig:
                compiled = None  # a subject that is no pattern RE2 runs: matched as itself
            return cls(principal=subject, _pattern=compiled)
        if "clientId" in raw:
            pattern = raw["clientId"]
            if not isinstance(pattern, str) or not pattern:
                raise InvalidConfig("scope.clientId must be a non-empty regular expression")
            return cls(client_id=pattern, _pattern=compile_pattern(pattern, "scope.clientId"))
        username = raw["username"]
        if not isinstance(username, str) or not username:
            raise InvalidConfig("scope.username must be a non-empty string")
        return cls(username=username)

    def to_json(self) -> Any:
        if self.principal is not None:
            return {"principal": self.principal}
        if self.client_id is not None:
            return {"clientId": self.client_id}
        if self.username is not None:
            return {"username": self.username}
        return "global"

    def applies_to(self, client: ClientInfo) -> bool:
        """Whether a connection is in scope (the whole client id must match the pattern)."""
        if self.principal is not None:
            subject = client.principal
            return subject is not None and (
                subject == self.principal
                or (self._pattern is not None and self._pattern.fullmatch(subject) is not None)
            )
        if self._pattern is not None:
            return (
                client.client_id is not None
                and self._pattern.fullmatch(client.client_id) is not None
            )
        if self.username is not None:
            return client.username == self.username
        return True


@dataclass(frozen=True)
class InterceptorSpec:
    """One named interceptor configuration."""

    name: str
    plugin: str
    priority: int = 100
    config: Mapping[str, Any] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)

    @classmethod
    def parse(cls, raw: Any, name: str | None = None) -> InterceptorSpec:
        """
        From the JSON object the API received or the topic holds.

        C{name}, when given (the URL's), must agree with the body's name if it has one.
        """
        if not isinstance(raw, Mapping):
            raise InvalidConfig("an interceptor is a JSON object")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise InvalidConfig(
                f"unknown field(s) {', '.join(sorted(unknown))}; "
                f"an interceptor has {', '.join(sorted(_FIELDS))}"
            )
        body_name = raw.get("name", name)
        if name is not None and body_name != name:
            raise InvalidConfig(f"the body names {body_name!r} but the URL names {name!r}")
        if not isinstance(body_name, str) or not _NAME.match(body_name):
            raise InvalidConfig(
                "name must be 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        plugin = raw.get("plugin")
        if not isinstance(plugin, str) or not plugin:
            raise InvalidConfig("plugin must name an interceptor plugin (GET /api/v1/plugins)")
        priority = raw.get("priority", 100)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidConfig("priority must be an integer (lower runs first)")
        config = raw.get("config", {})
        if not isinstance(config, Mapping):
            raise InvalidConfig("config must be a JSON object")
        return cls(body_name, plugin, priority, dict(config), Scope.parse(raw.get("scope")))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "priority": self.priority,
            "config": dict(self.config),
            "scope": self.scope.to_json(),
        }

    def encode(self) -> bytes:
        """The value stored in the interceptors topic."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes) -> InterceptorSpec:
        try:
            raw = json.loads(value)
        except (ValueError, RecursionError) as e:
            raise InvalidConfig(f"not JSON: {e}") from e
        return cls.parse(raw)
