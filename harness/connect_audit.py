"""Proof, from C{strace}, that a client never opened a connection to a broker.

A gateway that forgets to rewrite one address still "works": the client quietly connects to the
real broker. Running the client under C{strace -f -e trace=connect} records every
C{connect(2)} of every process and thread it starts, whether or not the connection succeeded,
so a test can check the broker ports never appear.

The audit is deliberately conservative: failed and non-blocking (C{EINPROGRESS}) attempts
count, and so does a UDP C{connect} (glibc's C{getaddrinfo} makes one, sending nothing, to
sort several results), since strace's default output does not tell TCP from UDP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

STRACE = "/usr/bin/strace"
"""The strace binary used by L{audited_command}."""

# With -f and -o every line starts with the pid; without -f there is no prefix.
_PID_PREFIX = re.compile(r"^(?:\[pid\s+)?(?P<pid>\d+)\]?\s+(?P<rest>.*)$")
# The optional <...> after the fd is strace -yy's socket decoding (e.g. "3<TCP:[29521]>").
_CONNECT_ENTRY = re.compile(
    r"^connect\(\d+(?:<[^>]*>)?, \{sa_family=(?P<family>AF_\w+), (?P<addr>.*?)\}"
)
_FINISHED = re.compile(r"\)\s+=\s+(?P<result>.*)$")
_RESUMED = re.compile(r"^<\.\.\. connect resumed>.*?\)\s+=\s+(?P<result>.*)$")
_INET_ADDR = re.compile(r'sin_port=htons\((?P<port>\d+)\), sin_addr=inet_addr\("(?P<ip>[^"]+)"\)')
_INET6_ADDR = re.compile(r'sin6_port=htons\((?P<port>\d+)\).*?inet_pton\(AF_INET6, "(?P<ip>[^"]+)"')


@dataclass(frozen=True)
class ConnectCall:
    """One C{connect(2)} to an IPv4 or IPv6 address, as strace recorded it."""

    pid: int
    ip: str
    port: int
    result: str
    """strace's return text, e.g. C{0} or C{-1 EINPROGRESS (...)}; C{?} if never finished."""


def audited_command(cmd: list[str], trace_file: Path) -> list[str]:
    """Wrap C{cmd} so that every C{connect(2)} it and its children make goes to C{trace_file}."""
    # signal=none keeps SIGCHLD noise out of the file; -qq drops attach/exit chatter.
    return [
        STRACE,
        "-f",
        "-qq",
        "-e",
        "trace=connect",
        "-e",
        "signal=none",
        "-o",
        str(trace_file),
        "--",
        *cmd,
    ]


def _normalise_ip(ip: str) -> str:
    """Return C{ip} in canonical form; IPv4-mapped IPv6 (how Java connects) becomes IPv4."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _parse_address(family: str, text: str) -> tuple[str, int] | None:
    pattern = {"AF_INET": _INET_ADDR, "AF_INET6": _INET6_ADDR}.get(family)
    match = pattern.search(text) if pattern is not None else None
    if match is None:
        return None
    return _normalise_ip(match["ip"]), int(match["port"])


def parse_connect_calls(lines: Iterable[str]) -> list[ConnectCall]:
    """Parse strace output into the IPv4/IPv6 C{connect} calls, in the order they began.

    A call split by another thread into C{<unfinished ...>} and C{<... connect resumed>}
    lines is joined by pid; one that never resumed keeps the result C{?}.
    """
    calls: list[ConnectCall] = []
    pending: dict[int, int] = {}  # pid -> index in calls of its unfinished connect
    for raw_line in lines:
        line = raw_line.rstrip("\n")
        prefixed = _PID_PREFIX.match(line)
        pid, rest = (int(prefixed["pid"]), prefixed["rest"]) if prefixed else (0, line)
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            index = pending.pop(pid, None)
            if index is not None:
                calls[index] = replace(calls[index], result=resumed["result"].strip())
            continue
        entry = _CONNECT_ENTRY.match(rest)
        if entry is None:
            continue
        address = _parse_address(entry["family"], entry["addr"])
        if address is None:
            continue  # AF_UNIX, AF_UNSPEC, AF_NETLINK...: not a network connection
        if rest.endswith("<unfinished ...>"):
            pending[pid] = len(calls)
            result = "?"
        else:
            finished = _FINISHED.search(rest)
            result = finished["result"].strip() if finished else "?"
        calls.append(ConnectCall(pid=pid, ip=address[0], port=address[1], result=result))
    return calls


def connect_calls(trace_file: Path) -> list[ConnectCall]:
    """Read C{trace_file} (written by L{audited_command}) into its IPv4/IPv6 connects."""
    with open(trace_file, encoding="utf-8", errors="replace") as trace:
        return parse_connect_calls(trace)


def connected_addresses(trace_file: Path) -> list[tuple[str, int]]:
    """Every C{(ip, port)} the traced processes tried to connect to, failed attempts included."""
    return [(call.ip, call.port) for call in connect_calls(trace_file)]


def assert_never_connected(
    trace_file: Path, forbidden_ports: set[int], host: str | None = "127.0.0.1"
) -> list[ConnectCall]:
    """Fail unless the trace shows connects, none of them to C{host} on a forbidden port.

    C{host=None} forbids those ports on every address. A missing trace, or one without a
    single IPv4/IPv6 connect, fails too: a trace that saw nothing proves nothing. Returns the
    connects that were checked so callers can assert where the client did go.
    """
    if not Path(trace_file).is_file():
        raise AssertionError(f"no strace output at {trace_file}: was the client run under strace?")
    calls = connect_calls(trace_file)
    if not calls:
        raise AssertionError(
            f"{trace_file} records no IPv4/IPv6 connect() at all, so it cannot show that the "
            "client avoided the brokers"
        )
    wanted_host = _normalise_ip(host) if host is not None else None
    offending = [
        call
        for call in calls
        if call.port in forbidden_ports and (wanted_host is None or call.ip == wanted_host)
    ]
    if offending:
        listing = "\n".join(
            f"  pid {call.pid} connect({call.ip}:{call.port}) = {call.result}" for call in offending
        )
        raise AssertionError(
            f"{len(offending)} connect() call(s) in {trace_file} reached forbidden ports "
            f"{sorted(forbidden_ports)}:\n{listing}"
        )
    return calls
