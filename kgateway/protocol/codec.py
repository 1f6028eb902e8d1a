"""
kafka-python's message classes, used as the gateway's codec.

This is the one module that reads kafka-python's private attributes (its
registries and message schemas); everything else asks the functions here,
so a kafka-python release that moves them is mended in one place.

Three things are added to the codec.  Unknown tagged fields: the codec
decodes them into C{unknown_tags} but drops them on encode, and a gateway
that rewrites a response from a newer broker must hand them on, so the
structs of the messages we re-encode get a tagged-field encoder that writes
them back.  Framing helpers that decode and encode a whole frame (length
prefix and header included), and a decoder of a response's leading fields
only (L{decode_leading}): a rewriter changes the broker list at the front of a
Metadata answer and hands the topics after it on as the bytes they are.  And
questions about a message's schema: which fields it has at a version
(L{has_field}, L{fields_at}).
"""

from __future__ import annotations

import importlib
import io
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from struct import Struct
from typing import Any

import kafka.protocol
from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.schemas.fields.codecs import TaggedFields
from kafka.protocol.schemas.fields.codecs.types import UnsignedVarInt32

_UNKNOWN_PREFIX = "_"
_LENGTH = Struct(">i")


class PreservingTaggedFields(TaggedFields):  # type: ignore[misc]
    """
    A tagged-field section that also writes back the tags it did not know.

    A struct carried inside a tagged field (KIP-951's C{node_endpoints}, a
    partition's C{current_leader}) still has a tagged-field section of its
    own; the codec reads and writes it as empty (and fails on a non-empty
    one), so those structs are decoded and encoded with their section here.
    """

    def __init__(self, fields: Iterable[Any]) -> None:
        super().__init__(fields)
        self._has_structs = any(_is_struct(field) for field in self._fields)

    def encode_into(self, item: Any, out: Any, version: int | None = None) -> None:
        if not self._has_structs and not _unknown_tags(item):
            super().encode_into(item, out, version=version)
            return
        payload = self.encode(item, version=version)
        out.ensure(len(payload))
        out.buf[out.pos : out.pos + len(payload)] = payload
        out.pos += len(payload)

    def encode(self, item: Any, version: int | None = None) -> bytes:
        # Known and unknown tags merged in tag order, which the protocol requires.
        merged = sorted(self._known_encoded(item, version) + _unknown_tags(item))
        parts = [UnsignedVarInt32.encode(len(merged))]
        for tag, payload in merged:
            parts += [UnsignedVarInt32.encode(tag), UnsignedVarInt32.encode(len(payload)), payload]
        return b"".join(parts)

    def decode(self, data: Any, version: int | None = None) -> dict[str, Any]:
        decoded: dict[str, Any] = {}
        for _ in range(UnsignedVarInt32.decode(data)):
            tag = UnsignedVarInt32.decode(data)
            payload = data.read(UnsignedVarInt32.decode(data))
            field = self._tags.get(tag)
            if field is None:
                decoded[f"{_UNKNOWN_PREFIX}{tag}"] = payload
            else:
                decoded[field.name] = field.decode(
                    io.BytesIO(payload), version=version, compact=True, tagged=_nested_tags(field)
                )
        return decoded

    def _known_encoded(self, item: Any, version: int | None) -> list[tuple[int, bytes]]:
        pairs = []
        for name, field in self._names.items():
            value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
            if value == field.default:
                continue
            encoded = field.encode(value, version=version, compact=True, tagged=_nested_tags(field))
            pairs.append((field.tag, bytes(encoded)))
        return pairs


def _is_struct(field: Any) -> bool:
    return bool(field.is_struct() or field.is_struct_array())


def _nested_tags(field: Any) -> bool | None:
    # True: the struct's own tagged-field section, read and written in full;
    # None: the codec's "always empty" section, for fields that are not structs.
    return True if _is_struct(field) else None


def _unknown_tags(item: Any) -> list[tuple[int, bytes]]:
    tags = (
        item.get("unknown_tags") if isinstance(item, dict) else getattr(item, "unknown_tags", None)
    )
    if not tags:
        return []
    return [(int(name[len(_UNKNOWN_PREFIX) :]), bytes(value)) for name, value in tags.items()]


def _struct_fields(struct: Any) -> Iterator[Any]:
    yield struct
    for field in struct._fields:
        if field.is_struct():
            yield from _struct_fields(field)
        elif field.is_struct_array():
            yield from _struct_fields(field.array_of)


def preserve_unknown_tags(message_classes: Iterable[type[ApiMessage]]) -> None:
    """
    Make the given messages write back unknown tagged fields when re-encoded.

    Must run before the codec compiles an encoder for them (it captures the
    tagged-field encoder at compile time); the rewrite module calls it at import.
    """
    for cls in message_classes:
        low, high = cls._valid_versions
        for struct in _struct_fields(cls._struct):
            for version in range(low, high + 1):
                current = struct.tagged_fields(version)
                if not isinstance(current, PreservingTaggedFields):
                    struct._tagged_fields_cache[version] = PreservingTaggedFields(current._fields)
            struct._compiled_encoders.clear()


def _message_classes() -> Iterator[type[ApiMessage]]:
    # Every message class the codec defines (importing its modules registers them).
    for module in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
        importlib.import_module(module.name)
    seen: list[type[ApiMessage]] = [ApiMessage]
    while seen:
        cls = seen.pop()
        seen.extend(cls.__subclasses__())
        if getattr(cls, "_json", None) is not None and cls is cls[None]:
            yield cls


_REQUESTS: dict[int, type[ApiMessage]] = {}


def _requests() -> dict[int, type[ApiMessage]]:
    # Filled on first use: walking the codec imports every message module,
    # which also registers every response class.
    if not _REQUESTS:
        for cls in _message_classes():
            if cls.type == "request":
                _REQUESTS[cls.API_KEY] = cls
    return _REQUESTS


def request_class(api_key: int) -> type[ApiMessage]:
    """The codec's request class for an API key (KeyError if it has none)."""
    return _requests()[api_key]


def response_classes() -> Mapping[int, type[ApiMessage]]:
    """Every response class the codec describes, by API key."""
    _requests()
    registry: Mapping[int, type[ApiMessage]] = ResponseClassRegistry._response_class_registry
    return registry


def response_class(api_key: int) -> type[ApiMessage]:
    """The codec's response class for an API key (KeyError if it has none)."""
    return response_classes()[api_key]


def schema(message: Any) -> Any:
    """
    The codec's schema of a message class, message, or struct inside one.

    It is what L{kgateway.protocol.skim} walks: kafka-python's field objects,
    whose public methods (C{untagged_fields}, C{is_struct}, ...) say the layout.
    """
    return message._struct


def fields_at(message: Any, version: int) -> list[Any]:
    """The fields a message class, message or nested struct has at C{version}, in order."""
    return [field for field in schema(message)._fields if field.for_version_q(version)]


def field_paths(message: Any, version: int) -> Iterator[str]:
    """
    Every field a message class or message has at C{version}, nested ones
    too, as dotted paths in schema order (C{brokers}, C{brokers.node_id} ...).
    """

    def walk(struct: Any, prefix: str) -> Iterator[str]:
        for field in struct._fields:
            if not field.for_version_q(version):
                continue
            path = prefix + field.name
            yield path
            if field.is_struct():
                yield from walk(field, path + ".")
            elif field.is_struct_array():
                yield from walk(field.array_of, path + ".")

    return walk(schema(message), "")


def has_field(message: Any, name: str, version: int) -> bool:
    """Whether a message (class, or struct inside one) has the field C{name} at C{version}."""
    field = schema(message).fields.get(name)
    return field is not None and bool(field.for_version_q(version))


def decode_request(api_key: int, frame: bytes, version: int) -> ApiMessage:
    """Decode a framed request (length prefix and header included)."""
    return request_class(api_key).decode(memoryview(frame)[4:], version=version, header=True)


def encode_request(message: ApiMessage) -> bytes:
    """Encode a decoded request again, with the header it arrived with."""
    return bytes(message.encode(header=True, framed=True))


def decode_response(cls: type[ApiMessage], frame: bytes, version: int) -> ApiMessage:
    """Decode a framed response (length prefix and header included)."""
    return cls.decode(memoryview(frame)[4:], version=version, header=True)


def encode_response(message: ApiMessage, correlation_id: int, version: int) -> bytes:
    """Encode a response with its header and length prefix."""
    # Set the version before the header: the codec's version setter assumes a
    # request header and fails on a response's.
    message._header = None
    message.API_VERSION = version
    message.with_header(correlation_id=correlation_id)
    return bytes(message.encode(header=True, framed=True))


class _Reader:
    """
    A forward reader over a frame, the way the codec's field decoders read
    (they only call C{read}), without copying the frame into a stream first.
    """

    __slots__ = ("_data", "pos")

    def __init__(self, data: memoryview, pos: int) -> None:
        self._data = data
        self.pos = pos

    def read(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self._data):
            raise ValueError(f"truncated: {size} bytes wanted at {self.pos} of {len(self._data)}")
        chunk = bytes(self._data[self.pos : end])
        self.pos = end
        return chunk


def _carries_port(field: Any, version: int) -> bool:
    if field.name == "port":
        return True
    if field.is_struct() or field.is_struct_array():
        inner = field.array_of if field.is_struct_array() else field
        return any(_carries_port(f, version) for f in inner.untagged_fields(version)) or any(
            _carries_port(f, version) for f in inner.tagged_fields(version)._fields
        )
    return False


_LEADING: dict[tuple[int, int], tuple[Any, ...]] = {}


def address_fields(cls: type[ApiMessage], version: int) -> tuple[Any, ...]:
    """
    The leading untagged top-level fields of a response up to the last one
    that carries a broker address (a C{port}, at any depth): what a rewriter
    must decode.  Everything after them is handed on as bytes.
    """
    key = (id(cls), version)
    fields = _LEADING.get(key)
    if fields is None:
        untagged = list(schema(cls).untagged_fields(version))
        last = max((i for i, f in enumerate(untagged) if _carries_port(f, version)), default=-1)
        fields = _LEADING[key] = tuple(untagged[: last + 1])
    return fields


def tagged_address_fields(cls: type[ApiMessage], version: int) -> list[str]:
    """The top-level tagged fields of a response that carry a broker address (KIP-951)."""
    tagged = schema(cls).tagged_fields(version)._fields
    return [f.name for f in tagged if _carries_port(f, version)]


class LeadingFields:
    """
    A framed response's leading fields, decoded with the codec's own field
    decoders, and the untouched bytes around them.

    Attributes are the decoded fields (C{brokers}, C{host} ...); change them,
    then L{splice} gives the frame with those fields encoded again and the
    header and the rest of the body as they arrived.
    """

    def __init__(
        self,
        cls: type[ApiMessage],
        frame: bytes,
        version: int,
        fields: tuple[Any, ...],
    ) -> None:
        data = memoryview(frame)
        reader = _Reader(data, 4)
        cls.parse_header(reader, version=version)
        flexible = bool(cls.flexible_version_q(version))
        values = {}
        self._header_end = reader.pos
        for field in fields:
            values[field.name] = field.decode(
                reader, version=version, compact=flexible, tagged=flexible
            )
        object.__setattr__(self, "_values", values)
        self._frame = data
        self._end = reader.pos
        self._fields = fields
        self._version = version
        self._flexible = flexible

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_values", ()):
            self.__dict__["_values"][name] = value
        else:
            object.__setattr__(self, name, value)

    def splice(self) -> bytes:
        """The frame again: new length, the same header, these fields encoded, the same rest."""
        values, version, flexible = self.__dict__["_values"], self._version, self._flexible
        body = b"".join(
            bytes(
                field.encode(values[field.name], version=version, compact=flexible, tagged=flexible)
            )
            for field in self._fields
        )
        frame = self._frame
        rest = frame[self._end :]
        size = self._header_end - 4 + len(body) + len(rest)
        return b"".join((_LENGTH.pack(size), frame[4 : self._header_end], body, rest))


def decode_leading(cls: type[ApiMessage], frame: bytes, version: int) -> LeadingFields:
    """Decode a framed response only as far as its last field that carries an address."""
    return LeadingFields(cls, frame, version, address_fields(cls, version))


def decode_fields(cls: type[ApiMessage], frame: bytes, version: int, count: int) -> LeadingFields:
    """Decode a framed response's first C{count} untagged top-level fields."""
    return LeadingFields(cls, frame, version, tuple(schema(cls).untagged_fields(version)[:count]))
