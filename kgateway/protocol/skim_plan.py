"""
A response's schema turned into a flat plan of skips, for the walkers that skim it.

L{kgateway.protocol.skim} (a frame that is all there) and
L{kgateway.protocol.resumable_skim} (a frame walked as its bytes arrive)
follow the same plan: the codec's own schema (kafka-python's field objects,
so no layout is written here), made once per (message, version) into steps
that say how to skip each value, with runs of fixed-width fields merged
into one addition because every Produce and Fetch response is walked.
"""

from __future__ import annotations

from typing import Any

from kgateway.protocol.codec import schema

_FIXED_WIDTH = {
    "int8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "bitfield": 4,
    "int64": 8,
    "float64": 8,
    "uuid": 16,
}

# The steps of a plan: (kind, argument).
FIXED = 0  # argument: width in bytes
COMPACT = 1  # compact string/bytes/records: uvarint length + 1
STRING = 2  # int16 length
BYTES = 3  # int32 length (bytes, records)
STRUCTS = 4  # array of structs; argument: the struct's plan
SIMPLES = 5  # array of simple values; argument: one-step plan of the element
STRUCT = 6  # argument: the struct's plan
NULLABLE_STRUCT = 7  # presence byte, then the struct; argument: its plan
TAGS = 8  # a tagged-field section

#: A walk: (kind, argument) steps.
Plan = tuple[tuple[int, Any], ...]


def _simple_step(type_str: str, compact: bool) -> tuple[int, Any]:
    width = _FIXED_WIDTH.get(type_str)
    if width is not None:
        return (FIXED, width)
    if compact:
        return (COMPACT, None)
    return (STRING, None) if type_str == "string" else (BYTES, None)


def struct_plan(struct: Any, version: int, compact: bool, tags: bool) -> Plan:
    """The plan of C{struct}'s untagged fields at C{version}, then its tags if C{tags}."""
    steps: list[tuple[int, Any]] = []
    for field in struct.untagged_fields(version):
        if field.is_struct_array():
            steps.append((STRUCTS, struct_plan(field.array_of, version, compact, compact)))
        elif field.is_array():
            steps.append((SIMPLES, _simple_step(field.array_of.type_str, compact)))
        elif field.is_struct():
            inner = struct_plan(field, version, compact, compact)
            nullable = field.nullable_for_version_q(version)
            steps.append((NULLABLE_STRUCT if nullable else STRUCT, inner))
        else:
            steps.append(_simple_step(field.type_str, compact))
    if tags:
        steps.append((TAGS, None))
    merged: list[tuple[int, Any]] = []
    for kind, argument in steps:
        if kind == FIXED and merged and merged[-1][0] == FIXED:
            merged[-1] = (FIXED, merged[-1][1] + argument)
        else:
            merged.append((kind, argument))
    return tuple(merged)


_PLANS: dict[tuple[int, int], Plan] = {}


def body_plan(cls: Any, version: int) -> Plan:
    """
    The plan of a flexible response body of C{cls} up to its top-level tags.

    Those tags are what the walkers look for, so they are not skipped.
    """
    key = (id(cls), version)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = struct_plan(schema(cls), version, True, False)
    return plan
