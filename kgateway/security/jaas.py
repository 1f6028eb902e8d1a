"""
C{sasl.jaas.config}: one JAAS login module entry, as Kafka's clients read it.

    org.apache.kafka.common.security.scram.ScramLoginModule required
        username="alice" password="secret";

A module class, a control flag, C{name=value} options (values quoted with
C{"} or C{'}, backslash escapes inside, or bare words) and a C{;}.  Kafka
allows one entry per property, and so does this reader.  The text holds
passwords: an error says where and what was expected, never what was there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kgateway.setting import ConfigError

#: The control flags JAAS knows.
FLAGS = ("required", "requisite", "sufficient", "optional")

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$-")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class JaasEntry:
    """One login module entry; its options' values never appear in a repr."""

    module: str
    flag: str
    options: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"<JaasEntry {self.module} {self.flag} ({', '.join(self.options)})>"


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "=", ";"
    text: str
    at: int


class _Unreadable(Exception):
    def __init__(self, at: int, expected: str) -> None:
        super().__init__(f"{expected} at character {at + 1}")


def _tokens(text: str) -> Iterator[_Token]:
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char.isspace():
            index += 1
        elif text.startswith("//", index):
            newline = text.find("\n", index)
            index = end if newline < 0 else newline + 1
        elif text.startswith("/*", index):
            close = text.find("*/", index + 2)
            if close < 0:
                raise _Unreadable(index, "a comment that is never closed")
            index = close + 2
        elif char in "=;":
            yield _Token(char, char, index)
            index += 1
        elif char in "\"'":
            start, index, value = index, index + 1, []
            while True:
                if index >= end:
                    raise _Unreadable(start, "a quoted value that is never closed")
                current = text[index]
                if current == char:
                    index += 1
                    break
                if current == "\\" and index + 1 < end:
                    index += 1
                    current = _ESCAPES.get(text[index], text[index])
                value.append(current)
                index += 1
            yield _Token("string", "".join(value), start)
        elif char in _WORD:
            start = index
            while index < end and text[index] in _WORD:
                index += 1
            yield _Token("word", text[start:index], start)
        else:
            raise _Unreadable(index, "a character JAAS does not allow there")


def _entries(text: str) -> list[JaasEntry]:
    tokens = list(_tokens(text))
    entries: list[JaasEntry] = []
    position = 0

    def take(kinds: tuple[str, ...], expected: str) -> _Token:
        nonlocal position
        if position >= len(tokens):
            raise _Unreadable(len(text), f"{expected}, but the text ends")
        token = tokens[position]
        if token.kind not in kinds:
            raise _Unreadable(token.at, expected)
        position += 1
        return token

    while position < len(tokens):
        module = take(("word",), "a login module class name")
        flag = take(("word",), "a control flag (required, requisite, sufficient or optional)")
        if flag.text.lower() not in FLAGS:
            raise _Unreadable(
                flag.at, "a control flag (required, requisite, sufficient or optional)"
            )
        options: dict[str, str] = {}
        while True:
            name = take(("word", ";"), "an option name or ';'")
            if name.kind == ";":
                break
            take(("=",), f"'=' after option {name.text}")
            value = take(("word", "string"), f"a value for option {name.text}")
            options[name.text] = value.text
        entries.append(JaasEntry(module.text, flag.text.lower(), options))
    return entries


def parse_jaas(name: str, text: str) -> JaasEntry:
    """The one login module entry of a C{sasl.jaas.config} value (C{name}: its setting)."""
    example = f'write it as {SCRAM_MODULE} required username="..." password="...";'
    try:
        entries = _entries(text)
    except _Unreadable as e:
        raise ConfigError(f"{name} cannot be read: expected {e}; {example}") from None
    if len(entries) != 1:
        raise ConfigError(
            f"{name} holds {len(entries)} login modules; Kafka's clients take exactly one: "
            f"{example}"
        )
    return entries[0]
