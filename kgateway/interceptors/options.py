"""
Read an interceptor's C{config} object with one-line errors.

Every built-in reads its settings through L{Options}, so a wrong type, a
value out of range or a misspelt key gets the same kind of answer:
C{"config.maxPartitions must be an integer >= 1, got 'ten'"}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kgateway.interceptors.api import InvalidConfig
from kgateway.interceptors.patterns import compile_pattern

_MISSING = object()


class Options:
    """The config of one interceptor, read key by key; L{done} rejects keys nobody read."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise InvalidConfig("config must be a JSON object")
        self._config = config
        self._read: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        value = self._config.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise InvalidConfig(f"config.{key} is required")
            return default
        return value

    def integer(
        self,
        key: str,
        default: Any = _MISSING,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        """An integer (None allowed as a default), within bounds."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidConfig(f"config.{key} must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise InvalidConfig(f"config.{key} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise InvalidConfig(f"config.{key} must be <= {maximum}, got {value}")
        return value

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> Any:
        """A number (int or float), within bounds."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidConfig(f"config.{key} must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise InvalidConfig(f"config.{key} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise InvalidConfig(f"config.{key} must be <= {maximum}, got {value}")
        return float(value)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise InvalidConfig(f"config.{key} must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise InvalidConfig(f"config.{key} must be a string, got {value!r}")
        if choices and value not in choices:
            raise InvalidConfig(f"config.{key} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def pattern(self, key: str, default: Any = _MISSING) -> Any:
        """
        A regular expression, compiled by RE2 so that it runs in linear time
        (L{kgateway.interceptors.patterns}); matched against whole names by the caller.
        """
        value = self.string(key, default)
        if value is default and default is not _MISSING:
            return value
        return compile_pattern(value, f"config.{key}")

    def strings(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> Any:
        """A list of strings."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfig(f"config.{key} must be a list of strings, got {value!r}")
        bad = [v for v in value if choices and v not in choices]
        if bad:
            raise InvalidConfig(
                f"config.{key} has {', '.join(map(repr, bad))}; valid: {', '.join(choices)}"
            )
        return value

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        """A JSON object of string to string."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise InvalidConfig(f"config.{key} must be an object of strings, got {value!r}")
        return dict(value)

    def integers(
        self, key: str, default: Any = _MISSING, minimum: int = 0, maximum: int = 2**31 - 1
    ) -> Any:
        """A list of integers, each within bounds."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= maximum
            for v in value
        ):
            raise InvalidConfig(
                f"config.{key} must be a list of integers from {minimum} to {maximum}, "
                f"got {value!r}"
            )
        return value

    def done(self) -> None:
        """Raise for keys the plugin does not know (a misspelt setting must not pass silently)."""
        unknown = sorted(set(self._config) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            raise InvalidConfig(f"unknown config key(s) {', '.join(unknown)}; known: {known}")
