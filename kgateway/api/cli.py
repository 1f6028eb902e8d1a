"""
The C{kgateway} command: talks to any node's admin API.

    kgateway status                 is the node ready; the cluster's members and brokers
    kgateway mapping [--rack a]     which gateway addresses each broker is handed out at
    kgateway connections            this node's client connections

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
        url = self.url.rstrip("/") + path
        try:
            response = await self.client.get(
                url, params=params or {}, auth=self.auth, timeout=self.timeout
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
        try:
            data = json.loads(body)
        except ValueError:
            raise CliError(
                f"{url} answered HTTP {response.code} but not in JSON: is it a kgateway admin API?"
            ) from None
        if response.code not in accept:
            if isinstance(data, dict) and "title" in data:
                raise CliError(f"{data['title']}: {data.get('message', '')} (HTTP {response.code})")
            raise CliError(f"{url} answered HTTP {response.code}")
        return response.code, data


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
    params = {"rack": options.rack} if options.rack else None
    _, data = await api.get("/api/v1/mapping", params=params)
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
    out.write(f"mode: {data['mode']}" + (f", rack {data['rack']}" if data["rack"] else "") + "\n")
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
    out.write(f"{len(rows)} client connection(s) on {node['id'] or node['host']}\n")
    if rows:
        headers = ("PEER", "PORT -> BROKER", "BROKER", "CLIENT ID", "IN", "OUT", "IN FLIGHT", "AGE")
        out.write(table(headers, rows) + "\n")
    return OK


COMMANDS: dict[str, Callable[[AdminApi, argparse.Namespace, IO[str]], Awaitable[int]]] = {
    "status": status,
    "mapping": mapping,
    "connections": connections,
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
    commands.add_parser("connections", help="this node's client connections")
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
