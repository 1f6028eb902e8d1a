"""
Regular expressions from users (scopes, the built-ins' C{pattern},
C{topics}, C{namePattern}), compiled by RE2.

Python's C{re} backtracks: C{(a+)+$} against a 28-character client id took
the event loop 12.7 s, once per request.  RE2 matches in time linear in the
text, whatever the pattern, and refuses what it cannot do in linear time
(backreferences, lookahead and lookbehind), so such a pattern is refused
when it is configured, with a reason, instead of freezing the node when a
client arrives.  Matching is unchanged: the whole name must match
(C{fullmatch}).  One difference from C{re}: RE2's C{\\d}, C{\\w} and C{\\s}
are ASCII classes.
"""

from __future__ import annotations

from typing import Protocol

import re2

from kgateway.interceptors.api import InvalidConfig

#: The longest pattern accepted, in characters: a pattern is a name's shape, not a list.
MAX_PATTERN_LENGTH = 4096

# RE2 limits the memory a compiled pattern may take (8 MiB by default) and
# refuses a larger one; its error lines go to the answer, not to stderr.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

_UNSUPPORTED_HINT = (
    "patterns run on RE2, in time linear in the name: backreferences (\\1), "
    "lookahead and lookbehind ((?=, (?!, (?<=, (?<!) are not supported"
)


class TextPattern(Protocol):
    """A compiled pattern: what the interceptors ask of one."""

    @property
    def pattern(self) -> str:
        """The pattern as configured."""

    def fullmatch(self, text: str) -> object | None:
        """A match object when the whole of C{text} matches, else None."""


def compile_pattern(value: str, setting: str) -> TextPattern:
    """
    Compile a user's pattern with RE2, or raise L{InvalidConfig} naming
    C{setting} (C{scope.clientId}, C{config.topics} ...) and the reason.
    """
    if len(value) > MAX_PATTERN_LENGTH:
        raise InvalidConfig(
            f"{setting} is {len(value)} characters long; at most {MAX_PATTERN_LENGTH} are allowed"
        )
    try:
        compiled: TextPattern = re2.compile(value, options=_OPTIONS)
    except re2.error as e:
        reason = _reason(e)
        hint = f" ({_UNSUPPORTED_HINT})" if _is_unsupported(value, reason) else ""
        raise InvalidConfig(
            f"{setting} {value!r} is not a regular expression the gateway can run: {reason}{hint}"
        ) from None
    return compiled


def _reason(error: Exception) -> str:
    raw = error.args[0] if error.args else str(error)
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _is_unsupported(value: str, reason: str) -> bool:
    # What Python's re would take but RE2 will not: say why, or the user is left guessing.
    lookaround = any(token in value for token in ("(?=", "(?!", "(?<=", "(?<!"))
    backreference = "invalid escape sequence: \\" in reason and any(
        f"\\{digit}" in value for digit in "123456789"
    )
    return lookaround or backreference or "invalid perl operator" in reason
