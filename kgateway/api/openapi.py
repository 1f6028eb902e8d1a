"""
The admin API's OpenAPI 3 document, served at C{/openapi.json}.

Written by hand next to the resources it describes; a unit test validates it
and checks the resources' answers against it, and an integration test runs
schemathesis against a real node.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error")
_UNAUTHORIZED = {
    "description": "Missing or wrong credentials (no detail is given)",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
_SECURED: list[dict[str, list[str]]] = [{"basicAuth": []}]


def _get(
    summary: str,
    ok: dict[str, Any],
    secured: bool = True,
    more: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, **(more or {})}
    if secured:
        responses["401"] = _UNAUTHORIZED
    operation: dict[str, Any] = {
        "summary": summary,
        "security": _SECURED if secured else [],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


_FORBIDDEN = _json(_ref("Error"), "The user is not an admin (admin: true)")
_NOT_READY = _json(_ref("Error"), "The node has not started reading its interceptors topic yet")
_NAME_PARAMETER = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the interceptor's name",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
}


def _write(
    summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": _SECURED,
        "responses": {**responses, "401": _UNAUTHORIZED, "403": _FORBIDDEN, "503": _NOT_READY},
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["title", "message"],
        "properties": {"title": {"type": "string"}, "message": {"type": "string"}},
    },
    "NotReady": {
        "type": "object",
        "required": ["title", "message", "reasons"],
        "properties": {
            "title": {"type": "string"},
            "message": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "roster": _ref("Roster"),
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["live", "ready"]},
            "roster": {**_ref("Roster"), "description": "readiness: the roster in use"},
        },
    },
    "Roster": {
        "description": "Which roster the node hands out, and how its direct peer checks answer",
        "type": ["object", "null"],
        "required": ["source", "since", "peers"],
        "properties": {
            "source": {
                "type": "string",
                "enum": ["group", "last-known", "alone"],
                "description": "group: the group's; last-known: the last the group handed "
                "out, kept while the node rejoins; alone: only this node",
            },
            "since": {
                **_STR_OR_NULL,
                "format": "date-time",
                "description": "when the node lost contact with its group (null: in contact)",
            },
            "peers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "host", "port", "up", "misses", "reason"],
                    "properties": {
                        "id": {"type": "string", "description": "the peer's node name"},
                        "host": {"type": "string"},
                        "port": {"type": "integer", "description": "where it is checked now"},
                        "up": {"type": "boolean", "description": "false: left out of mappings"},
                        "misses": {"type": "integer", "description": "failed checks in a row"},
                        "reason": _STR_OR_NULL,
                        "round_trip_ms": {"type": ["number", "null"]},
                        "changed_at": {**_STR_OR_NULL, "format": "date-time"},
                    },
                },
            },
        },
    },
    "Versions": {
        "type": "object",
        "required": ["kgateway", "python", "dependencies"],
        "properties": {
            "kgateway": {"type": "string"},
            "python": {"type": "string"},
            "dependencies": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Node": {
        "description": "The node that answered",
        "type": "object",
        "required": ["id", "host", "port_start", "rack"],
        "properties": {
            "id": {**_STR_OR_NULL, "description": "null until the node has its port plan"},
            "host": {"type": "string"},
            "port_start": _INT_OR_NULL,
            "rack": _STR_OR_NULL,
        },
    },
    "Member": {
        "type": "object",
        "required": [
            "id",
            "member_id",
            "host",
            "port_start",
            "port_count",
            "min_broker_id",
            "rack",
            "joined_at",
            "listeners",
        ],
        "properties": {
            "id": {"type": "string", "description": "the node's name"},
            "member_id": {**_STR_OR_NULL, "description": "its id in the Kafka group"},
            "host": {"type": "string", "description": "advertised host (its first listener's)"},
            "port_start": {"type": "integer", "description": "its first listener's"},
            "port_count": {"type": "integer", "description": "its first listener's"},
            "min_broker_id": {"type": "integer"},
            "rack": _STR_OR_NULL,
            "joined_at": {"type": "string", "format": "date-time"},
            "listeners": {
                "description": "every listener (a node of an older kgateway: one, DEFAULT)",
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "host", "port_start", "port_count"],
                    "properties": {
                        "name": {"type": "string"},
                        "host": {"type": "string", "description": "advertised host"},
                        "port_start": {"type": "integer"},
                        "port_count": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Broker": {
        "type": "object",
        "required": ["id", "host", "port", "rack"],
        "properties": {
            "id": {"type": "integer"},
            "host": {"type": "string"},
            "port": {"type": "integer"},
            "rack": _STR_OR_NULL,
        },
    },
    "Cluster": {
        "type": "object",
        "required": ["cluster_id", "group_id", "answered_by", "roster", "members", "brokers"],
        "properties": {
            "cluster_id": {"type": "string"},
            "group_id": {"type": "string"},
            "answered_by": _ref("Node"),
            "roster": _ref("Roster"),
            "members": {"type": "array", "items": _ref("Member")},
            "brokers": {"type": "array", "items": _ref("Broker")},
        },
    },
    "Mapping": {
        "type": "object",
        "required": ["mode", "listener", "rack", "brokers"],
        "properties": {
            "mode": {
                "type": "string",
                "enum": ["rack-aware", "load-balancer"],
                "description": "rack-aware: internal load balancing; load-balancer: every "
                "broker at the listener's advertised host",
            },
            "listener": {"type": "string", "description": "whose addresses these are"},
            "rack": _STR_OR_NULL,
            "brokers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["broker_id", "broker", "rack_local", "candidates"],
                    "properties": {
                        "broker_id": {"type": "integer"},
                        "broker": {
                            "type": "object",
                            "required": ["host", "port", "rack"],
                            "properties": {
                                "host": {"type": "string"},
                                "port": {"type": "integer"},
                                "rack": _STR_OR_NULL,
                            },
                        },
                        "rack_local": {"type": "boolean"},
                        "candidates": {
                            "description": "the addresses a metadata response picks from, "
                            "spread over clients (each client, by its host and client id, is "
                            "given the same one); empty when no node has a port for the broker",
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["node", "host", "port", "rack"],
                                "properties": {
                                    "node": {
                                        **_STR_OR_NULL,
                                        "description": "null for a load balancer",
                                    },
                                    "host": {"type": "string"},
                                    "port": {"type": "integer"},
                                    "rack": _STR_OR_NULL,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "Connections": {
        "type": "object",
        "required": ["answered_by", "connections", "total"],
        "properties": {
            "answered_by": _ref("Node"),
            "total": {
                "type": "integer",
                "minimum": 0,
                "description": "connections on the node; the list has the oldest `limit` of them",
            },
            "connections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "peer",
                        "port",
                        "broker_id",
                        "broker",
                        "client_id",
                        "bytes_from_client",
                        "bytes_to_client",
                        "in_flight",
                        "age_seconds",
                        "listener",
                        "principal",
                    ],
                    "properties": {
                        "peer": {"type": "string", "description": "client host:port"},
                        "port": {**_INT_OR_NULL, "description": "the gateway port"},
                        "broker_id": {"type": "integer"},
                        "broker": {"type": "string", "description": "the broker's host:port"},
                        "client_id": {
                            **_STR_OR_NULL,
                            "description": "from the connection's first request",
                        },
                        "bytes_from_client": {"type": "integer", "minimum": 0},
                        "bytes_to_client": {"type": "integer", "minimum": 0},
                        "in_flight": {"type": "integer", "minimum": 0},
                        "age_seconds": {"type": "number", "minimum": 0},
                        "listener": {"type": "string", "description": "where it arrived"},
                        "principal": {
                            **_STR_OR_NULL,
                            "description": "the subject of its TLS client certificate "
                            '(mTLS), e.g. "CN=app-1,O=acme"; null without one',
                        },
                    },
                },
            },
        },
    },
    "Scope": {
        "description": 'which connections it applies to: "global" (the default), a client-id '
        "regular expression (the whole id must match), a SASL user, or a TLS client "
        "certificate's subject (the principal: itself, or a regular expression the whole "
        "subject matches)",
        "oneOf": [
            {"type": "string", "enum": ["global"]},
            {
                "type": "object",
                "required": ["clientId"],
                "properties": {"clientId": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["username"],
                "properties": {"username": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["principal"],
                "properties": {"principal": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
        ],
    },
    "InterceptorInput": {
        "description": "An interceptor configuration; the name defaults to the URL's",
        "type": "object",
        "required": ["plugin"],
        "properties": {
            "name": {"type": "string", "description": "must equal the URL's name if given"},
            "plugin": {"type": "string", "minLength": 1, "description": "see /api/v1/plugins"},
            "priority": {"type": "integer", "description": "lower runs first; default 100"},
            "config": {"type": "object", "description": "the plugin's settings"},
            "scope": _ref("Scope"),
        },
        "additionalProperties": False,
    },
    "Interceptor": {
        "type": "object",
        "required": ["name", "plugin", "priority", "config", "scope"],
        "properties": {
            "name": {"type": "string"},
            "plugin": {"type": "string"},
            "priority": {"type": "integer"},
            "config": {"type": "object"},
            "scope": _ref("Scope"),
        },
    },
    "Interceptors": {
        "type": "object",
        "required": ["interceptors", "failed"],
        "properties": {
            "interceptors": {
                "description": "every configuration, in the order they see a request",
                "type": "array",
                "items": _ref("Interceptor"),
            },
            "failed": {
                "description": "configurations this node cannot run, with the reason, by name",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "Plugins": {
        "type": "object",
        "required": ["plugins"],
        "properties": {
            "plugins": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "description"],
                    "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                },
            }
        },
    },
    "Index": {
        "type": "object",
        "required": ["title", "paths"],
        "properties": {
            "title": {"type": "string"},
            "paths": {"type": "array", "items": {"type": "string"}},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "kgateway admin API",
        "version": "1",
        "description": "Served by every gateway node on GATEWAY_HTTP_PORT. Cluster-wide "
        "views (members, brokers, mapping) are the same from any node. Everything except "
        "/health/* needs HTTP Basic credentials of a GATEWAY_ADMIN_API_USERS user; "
        "/metrics too unless GATEWAY_SECURED_METRICS=false.",
    },
    "paths": {
        "/": _get("What this API serves", _json(_ref("Index"), "The paths")),
        "/health/live": _get(
            "200 while the process runs", _json(_ref("Status"), "Live"), secured=False
        ),
        "/health/ready": _get(
            "Ready for clients: connected to Kafka, listening, a member of its gateway cluster",
            _json(_ref("Status"), "Ready"),
            secured=False,
            more={"503": _json(_ref("NotReady"), "Not ready, and why")},
        ),
        "/versions": _get("kgateway and dependency versions", _json(_ref("Versions"), "Versions")),
        "/metrics": _get(
            "Prometheus metrics (prefix kgateway_)",
            {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        ),
        "/openapi.json": _get("This document", _json({"type": "object"}, "The OpenAPI 3 document")),
        "/api/v1/cluster": _get(
            "The gateway cluster's members, the Kafka brokers, and which node answered",
            _json(_ref("Cluster"), "The cluster"),
        ),
        "/api/v1/mapping": _get(
            "For each broker, the gateway addresses a metadata request may hand out now",
            _json(_ref("Mapping"), "The mapping"),
            more={
                "400": _ERROR,
                "404": _json(_ref("Error"), "No broker in that rack, or no such listener"),
                "503": _json(_ref("Error"), "The node has not seen the brokers yet"),
            },
            parameters=[
                {
                    "name": "rack",
                    "in": "query",
                    "required": False,
                    "description": "only the brokers in this rack",
                    "schema": {"type": "string", "minLength": 1},
                },
                {
                    "name": "listener",
                    "in": "query",
                    "required": False,
                    "description": "the addresses of this listener (default: the node's first)",
                    "schema": {"type": "string", "minLength": 1},
                },
            ],
        ),
        "/api/v1/connections": _get(
            "This node's client connections, oldest first",
            _json(_ref("Connections"), "The connections"),
            more={"400": _ERROR},
            parameters=[
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "at most this many connections (default 1000): a listing "
                    "is built on the node's event loop, so its size is bounded",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                }
            ],
        ),
        "/api/v1/interceptors": _get(
            "The cluster's interceptors, and those this node cannot run",
            _json(_ref("Interceptors"), "The interceptors"),
            more={"503": _NOT_READY},
        ),
        "/api/v1/interceptors/{name}": {
            **_get(
                "One interceptor",
                _json(_ref("Interceptor"), "The interceptor"),
                more={"404": _json(_ref("Error"), "No such interceptor"), "503": _NOT_READY},
            ),
            "put": _write(
                "Create or replace an interceptor (admin users); every node runs it within 2 s",
                {
                    "200": _json(_ref("Interceptor"), "Replaced"),
                    "201": _json(_ref("Interceptor"), "Created"),
                    "400": _json(
                        _ref("Error"),
                        "Not JSON, nested deeper than 64 levels, a bad shape, an unknown "
                        "plugin, a pattern RE2 cannot run in linear time, or a config the "
                        "plugin rejects; nothing was stored",
                    ),
                    "413": _json(_ref("Error"), "The body is larger than 1 MiB"),
                },
                {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("InterceptorInput")}},
                },
            ),
            "delete": _write(
                "Remove an interceptor (admin users)",
                {
                    "204": {"description": "Removed"},
                    "404": _json(_ref("Error"), "No such interceptor"),
                },
            ),
            "parameters": [_NAME_PARAMETER],
        },
        "/api/v1/plugins": _get(
            "The interceptor plugins installed on this node",
            _json(_ref("Plugins"), "The plugins"),
            more={"503": _NOT_READY},
        ),
    },
    "components": {
        "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        "schemas": _SCHEMAS,
    },
}
