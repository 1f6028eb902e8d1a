"""
The C{kgateway} command: talks to any node's admin API.

    kgateway status                 is the node ready; the cluster's members and brokers
    kgateway mapping [--rack a] [--listener EXTERNAL]
                                    which gateway addresses each broker is handed out at
    kgateway connections            this node's client connections
    kgateway interceptors list      the cluster's interceptors (and those this node cannot run)
    kgateway interceptors get NAME  one interceptor's configuration, as JSON
    kgateway interceptors put NAME --file F   create or replace one (F: a JSON file, - for stdin)
    kgateway interceptors delete NAME
    kgateway plugins                the interceptor plugins installed on the node

C{--json} prints what the API answered instead of tables.  The node and the
credentials come from C{--url}, C{--user}, C{--password} or from
C{KGATEWAY_URL}, C{KGATEWAY_USER}, C{KGATEWAY_PASSWORD} (the environment
keeps the password off the command line).  Every failure is one line on
standard error and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred

#: Exit codes.
OK, FAILED, USAGE, NOT_READY = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8888"


class CliError(Exception):
    """A failure to report in one line."""


@dataclass
class AdminApi:
    """One node's admin API, through a treq-like client (treq itself, or a StubTreq)."""

    client: Any
    url: str
    auth: tuple[str, str] | None = None
    timeout: float = 10.0

    async def get(
        self,
        path: str,
        params: dict[str, str] | None = None,
        accept: Sequence[int] = (200,),
    ) -> tuple[int, Any]:
        """GET C{path}; its JSON, if its status is one of C{accept}; a L{CliError} otherwise."""
        return await self.call("GET", path, params=params, accept=accept)

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        accept: Sequence[int] = (200,),
    ) -> tuple[int, Any]:
        """Any method; the JSON answer (None for 204) if its status is one of C{accept}."""
        url = self.url.rstrip("/") + path
        try:
            if method == "GET":
                response = await self.client.get(
                    url, params=params or {}, auth=self.auth, timeout=self.timeout
                )
            else:
                response = await self.client.request(
                    method,
                    url,
                    data=data,
                    headers={b"content-type": [b"application/json"]} if data is not None else {},
                    auth=self.auth,
                    timeout=self.timeout,
                )
            body = await response.content()
        except CancelledError:
            raise CliError(f"cannot reach {self.url}: no answer in {self.timeout:g}s") from None
        except Exception as e:
            raise CliError(f"cannot reach {self.url}: {_reason(e)}") from None
        if response.code == 401:
            raise CliError(
                f"{self.url} refused the credentials (401): check --user and --password "
                "(or KGATEWAY_USER and KGATEWAY_PASSWORD)"
            )
        if response.code == 204 and response.code in accept:
            return response.code, None
        try:
            answer = json.loads(body)
        except ValueError:
            raise CliError(
                f"{url} answered HTTP {response.code} but not in JSON: is it a kgateway admin API?"
            ) from None
        if response.code not in accept:
            if isinstance(answer, dict) and "title" in answer:
                raise CliError(
                    f"{answer['title']}: {answer.get('message', '')} (HTTP {response.code})"
                )
            raise CliError(f"{url} answered HTTP {response.code}")
        return response.code, answer


def _reason(error: BaseException) -> str:
    """A readable reason for a failed request, digging into twisted.web's wrapped failures."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() for r in reasons)
    return str(error).strip() or type(error).__name__


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell."""
    cells = [list(headers)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


async def status(api: AdminApi, options: argparse.Namespace, out: IO[str]) -> int:
    """Readiness, versions, members and brokers."""
    ready_code, ready = await api.get("/health/ready", accept=(200, 503))
    _, cluster = await api.get("/api/v1/cluster")
    _, versions = await api.get("/versions")
    is_ready = ready_code == 200
    if options.json:
        json.dump(
            {"ready": is_ready, "readiness": ready, "cluster": cluster, "versions": versions},
            out,
            indent=1,
        )
        out.write("\n")
        return OK if is_ready else NOT_READY
    node = cluster["answered_by"]
    place = f" (rack {node['rack']})" if node.get("rack") else ""
    out.write(f"node      {node['id'] or '-'} on {node['host']}{place}\n")
    out.write(f"ready     {'yes' if is_ready else 'NO: ' + ready.get('message', '')}\n")
    out.write(f"version   kgateway {versions['kgateway']}\n")
    out.write(f"cluster   {cluster['cluster_id']} (Kafka group {cluster['group_id']})\n\n")
    out.write(f"members ({len(cluster['members'])})\n")
    members = [
        (
            m["id"],
            m["host"],
            f"{m['port_start']}-{m['port_start'] + m['port_count'] - 1}",
            m["min_broker_id"],
            m["rack"],
            m["joined_at"],
        )
        for m in cluster["members"]
    ]
    out.write(table(("ID", "HOST", "PORTS", "MIN BROKER", "RACK", "JOINED"), members) + "\n\n")
    out.write(f"brokers ({len(cluster['brokers'])})\n")
    brokers = [(b["id"], b["host"], b["port"], b["rack"]) for b in cluster["brokers"]]
    out.write(table(("ID", "HOST", "PORT", "RACK"), brokers) + "\n")
    return OK if is_ready else NOT_READY


async def mapping(api: AdminApi, options: argparse.Namespace, out: IO[str]) -> int:
    """For each broker, the gateway addresses it is handed out at."""
    params = {
        name: value
        for name, value in (("rack", options.rack), ("listener", options.listener))
        if value
    }
    _, data = await api.get("/api/v1/mapping", params=params or None)
    if options.json:
        json.dump(data, out, indent=1)
        out.write("\n")
        return OK
    rows = []
    for entry in data["brokers"]:
        broker = entry["broker"]
        nodes = ", ".join(
            f"{c['host']}:{c['port']}" + (f" ({c['node']})" if c["node"] else "")
            for c in entry["candidates"]
        )
        rows.append(
            (
                entry["broker_id"],
                broker["rack"],
                f"{broker['host']}:{broker['port']}",
                "yes" if entry["rack_local"] else "no",
                nodes or "none: no gateway node has a port for it",
            )
        )
    out.write(
        f"mode: {data['mode']}, listener {data['listener']}"
        + (f", rack {data['rack']}" if data["rack"] else "")
        + "\n"
    )
    out.write(table(("BROKER", "RACK", "ADDRESS", "SAME RACK", "HANDED OUT AT"), rows) + "\n")
    return OK


async def connections(api: AdminApi, options: argparse.Namespace, out: IO[str]) -> int:
    """This node's client connections."""
    _, data = await api.get("/api/v1/connections")
    if options.json:
        json.dump(data, out, indent=1)
        out.write("\n")
        return OK
    rows = [
        (
            c["peer"],
            f"{c['port']} -> {c['broker_id']}",
            c["broker"],
            c["client_id"],
            c["bytes_from_client"],
            c["bytes_to_client"],
            c["in_flight"],
            f"{c['age_seconds']:.1f}s",
        )
        for c in data["connections"]
    ]
    node = data["answered_by"]
    total = data.get("total", len(rows))
    shown = "" if total == len(rows) else f" (the oldest {len(rows)} shown)"
    out.write(f"{total} client connection(s) on {node['id'] or node['host']}{shown}\n")
    if rows:
        headers = ("PEER", "PORT -> BROKER", "BROKER", "CLIENT ID", "IN", "OUT", "IN FLIGHT", "AGE")
        out.write(table(headers, rows) + "\n")
    return OK


def _quoted(name: str) -> str:
    return "/api/v1/interceptors/" + urllib.parse.quote(name, safe="")


def _print_json(data: Any, out: IO[str]) -> None:
    json.dump(data, out, indent=1)
    out.write("\n")


async def interceptors(api: AdminApi, options: argparse.Namespace, out: IO[str]) -> int:
    """List, show, store or remove the cluster's interceptors."""
    action = options.action
    if action == "list":
        _, data = await api.get("/api/v1/interceptors")
        if options.json:
            _print_json(data, out)
            return OK
        failed = data["failed"]
        rows = [
            (
                spec["priority"],
                spec["name"],
                spec["plugin"],
                json.dumps(spec["scope"]) if spec["scope"] != "global" else "global",
                json.dumps(spec["config"], sort_keys=True),
                f"FAILED: {failed[spec['name']]}" if spec["name"] in failed else "running",
            )
            for spec in data["interceptors"]
        ]
        out.write(f"{len(rows)} interceptor(s)\n")
        if rows:
            headers = ("PRIORITY", "NAME", "PLUGIN", "SCOPE", "CONFIG", "ON THIS NODE")
            out.write(table(headers, rows) + "\n")
        return OK
    if action == "get":
        _, data = await api.get(_quoted(options.name))
        _print_json(data, out)
        return OK
    if action == "put":
        body = _read_config(options.file)
        code, data = await api.call("PUT", _quoted(options.name), data=body, accept=(200, 201))
        if options.json:
            _print_json(data, out)
        else:
            what = "created" if code == 201 else "replaced"
            out.write(f"interceptor {data['name']} {what} ({data['plugin']})\n")
        return OK
    await api.call("DELETE", _quoted(options.name), accept=(204,))
    if not options.json:
        out.write(f"interceptor {options.name} deleted\n")
    return OK


def _read_config(path: str) -> bytes:
    """The bytes of C{path} (C{-}: standard input), or a one-line L{CliError}."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as source:
            return source.read()
    except OSError as e:
        raise CliError(f"--file {path}: {e.strerror or e}") from None


async def plugins(api: AdminApi, options: argparse.Namespace, out: IO[str]) -> int:
    """The interceptor plugins installed on the node."""
    _, data = await api.get("/api/v1/plugins")
    if options.json:
        _print_json(data, out)
        return OK
    rows = [(p["name"], p["description"]) for p in data["plugins"]]
    out.write(table(("PLUGIN", "DESCRIPTION"), rows) + "\n")
    return OK


COMMANDS: dict[str, Callable[[AdminApi, argparse.Namespace, IO[str]], Awaitable[int]]] = {
    "status": status,
    "mapping": mapping,
    "connections": connections,
    "interceptors": interceptors,
    "plugins": plugins,
}


def parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    """The command line, with defaults from the environment."""
    top = argparse.ArgumentParser(
        prog="kgateway", description="Talk to a kgateway node's admin API."
    )
    top.add_argument(
        "--url",
        default=environ.get("KGATEWAY_URL", DEFAULT_URL),
        help=f"the node's admin API [env KGATEWAY_URL, default {DEFAULT_URL}]",
    )
    top.add_argument("--user", default=environ.get("KGATEWAY_USER"), help="[env KGATEWAY_USER]")
    top.add_argument(
        "--password",
        default=environ.get("KGATEWAY_PASSWORD"),
        help="[env KGATEWAY_PASSWORD, which keeps it out of the process list]",
    )
    top.add_argument(
        "--cacert",
        default=environ.get("KGATEWAY_CACERT"),
        help="PEM certificate to trust for an https:// URL [env KGATEWAY_CACERT]",
    )
    top.add_argument("--timeout", type=float, default=10.0, help="seconds [default 10]")
    top.add_argument("--json", action="store_true", help="print the API's JSON, not tables")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="readiness, members and brokers")
    by_rack = commands.add_parser("mapping", help="where each broker is handed out")
    by_rack.add_argument("--rack", help="only the brokers in this rack")
    by_rack.add_argument("--listener", help="the addresses of this listener (default: the first)")
    commands.add_parser("connections", help="this node's client connections")
    configured = commands.add_parser("interceptors", help="the cluster's interceptors")
    actions = configured.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every interceptor, in the order they run")
    actions.add_parser("get", help="one interceptor's configuration").add_argument("name")
    put = actions.add_parser("put", help="create or replace an interceptor (admin users)")
    put.add_argument("name")
    put.add_argument("--file", required=True, help="its JSON configuration; - reads standard input")
    actions.add_parser("delete", help="remove an interceptor (admin users)").add_argument("name")
    commands.add_parser("plugins", help="the interceptor plugins installed on the node")
    return top


def _client(reactor: Any, cacert: str | None) -> Any:
    import treq

    if cacert is None:
        return treq
    from twisted.internet.ssl import Certificate, optionsForClientTLS
    from twisted.web.client import Agent
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import implementer

    try:
        with open(cacert, "rb") as pem:
            authority = Certificate.loadPEM(pem.read())
    except (OSError, Exception) as e:
        raise CliError(f"--cacert {cacert}: not a readable PEM certificate ({e})") from None

    @implementer(IPolicyForHTTPS)
    class TrustCa:
        def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
            return optionsForClientTLS(hostname.decode(), trustRoot=authority)

    return treq.client.HTTPClient(Agent(reactor, contextFactory=TrustCa()))


async def run(
    argv: Sequence[str],
    client: Any = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    environ: dict[str, str] | None = None,
    reactor: Any = None,
) -> int:
    """Run one command; return the exit code (failures are one line on C{err})."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        options = parser(dict(os.environ if environ is None else environ)).parse_args(argv)
    except SystemExit as e:  # argparse printed the usage
        return int(e.code or 0)
    if (options.user is None) != (options.password is None):
        err.write("kgateway: give both --user and --password (or neither)\n")
        return USAGE
    auth = (options.user, options.password) if options.user is not None else None
    try:
        if client is None:
            client = _client(reactor, options.cacert)
        api = AdminApi(client, options.url, auth, options.timeout)
        return await COMMANDS[options.command](api, options, out)
    except CliError as e:
        err.write(f"kgateway: {e}\n")
        return FAILED


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    from twisted.internet.task import react

    arguments = list(sys.argv[1:] if argv is None else argv)

    def start(reactor: Any) -> Deferred[None]:
        async def go() -> None:
            code = await run(arguments, reactor=reactor)
            if code:
                raise SystemExit(code)

        return ensureDeferred(go())

    react(start)


if __name__ == "__main__":
    main()
