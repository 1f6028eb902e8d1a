"""Free TCP ports for children that bind them later (brokers, gateway nodes, HAProxy)."""

from __future__ import annotations

import contextlib
import os
import socket

#: Ports already handed out by this process, so children made before any of them
#: listens still get ranges of their own.
_handed_out: set[int] = set()


class NoFreePorts(RuntimeError):
    """No range of free ports of the size asked for was found."""


def _ephemeral_low() -> int:
    """The first port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int, host: str = "127.0.0.1", start: int = 12000) -> int:
    """Find C{count} consecutive free ports, not handed out before, and return the first.

    Only ports below the kernel's ephemeral range are used: a port that is free now but
    ephemeral (what binding to port 0 gives) can be taken by any outgoing connection (a
    broker's, a client's) before the child binds it.
    """
    end = _ephemeral_low()
    span = max(end - start - count, 1)
    # Start where another process (a parallel trial worker) is unlikely to look.
    port = start + (os.getpid() * 37) % span
    for _ in range(2000):
        if port + count > end:
            port = start
        wanted = set(range(port, port + count))
        if wanted & _handed_out:
            port += count
            continue
        with contextlib.ExitStack() as stack:
            try:
                for offset in range(count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port + offset))
            except OSError:
                port += count
                continue
        _handed_out.update(wanted)
        return port
    raise NoFreePorts(f"no {count} consecutive free ports found on {host}")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """C{count} free ports on C{host} (one consecutive range), as a list."""
    first = free_port_range(count, host)
    return list(range(first, first + count))
