# ruff: noqa: E501  (the strace lines below are verbatim captures; wrapping them would change them)
"""Tests for L{harness.connect_audit}.

The strace lines below were captured from real runs of
C{strace -f -qq -e trace=connect -o FILE} (strace 6.1) on this project's machine: CPython
sockets, threads whose connects interleave, and Java, which connects through IPv4-mapped IPv6.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from harness.connect_audit import (
    STRACE,
    ConnectCall,
    assert_never_connected,
    audited_command,
    connect_calls,
    connected_addresses,
    parse_connect_calls,
)

# CPython: blocking success, refusal, non-blocking EINPROGRESS, IPv6, a second thread, AF_UNIX,
# and the SIGCHLD lines strace writes when signal=none is not given.
PYTHON_TRACE = """\
3979  --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=3980, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
3979  connect(4, {sa_family=AF_INET, sin_port=htons(57025), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
3979  connect(4, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
3979  connect(4, {sa_family=AF_INET, sin_port=htons(57025), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
3979  connect(4, {sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ECONNREFUSED (Connection refused)
4020  connect(4, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
3979  connect(4, {sa_family=AF_UNIX, sun_path="/nonexistent/sock"}, 20) = -1 ENOENT (No such file or directory)
"""

# A blocking connect in thread 4076 interrupted in the trace by thread 4060's connect.
INTERLEAVED_TRACE = """\
4060  connect(6, {sa_family=AF_INET, sin_port=htons(43735), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
4076  connect(7, {sa_family=AF_INET, sin_port=htons(43735), sin_addr=inet_addr("127.0.0.1")}, 16 <unfinished ...>
4060  connect(8, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
4076  <... connect resumed>)            = -1 EINPROGRESS (Operation now in progress)
"""

# Java's java.net.Socket and a non-blocking SocketChannel.
JAVA_TRACE = """\
4097  connect(4, {sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ECONNREFUSED (Connection refused)
4097  connect(4, {sa_family=AF_INET6, sin6_port=htons(2), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = -1 EINPROGRESS (Operation now in progress)
"""

# Without -f there is no pid column; with -yy the fd names its socket type.
NO_PID_TRACE = """\
connect(3, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
"""
DECODED_FD_TRACE = """\
17433 connect(3<UDP:[29520]>, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
17433 connect(4<TCP:[29521]>, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
"""

# Name resolution only: glibc tries nscd over a Unix socket, no network connect at all.
UNIX_ONLY_TRACE = """\
17414 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)
17414 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)
"""


class ParseTests(TestCase):
    """L{parse_connect_calls} and L{connected_addresses} read every network connect."""

    def test_python_formats(self) -> None:
        """Successful, refused, in-progress and IPv6 connects count; Unix sockets do not."""
        self.assertEqual(
            parse_connect_calls(PYTHON_TRACE.splitlines()),
            [
                ConnectCall(3979, "127.0.0.1", 57025, "0"),
                ConnectCall(3979, "127.0.0.1", 1, "-1 ECONNREFUSED (Connection refused)"),
                ConnectCall(3979, "127.0.0.1", 57025, "-1 EINPROGRESS (Operation now in progress)"),
                ConnectCall(3979, "::1", 1, "-1 ECONNREFUSED (Connection refused)"),
                ConnectCall(4020, "127.0.0.1", 1, "-1 ECONNREFUSED (Connection refused)"),
            ],
        )

    def test_unfinished_and_resumed(self) -> None:
        """An interrupted call keeps its address and takes the result of its resumed line."""
        calls = parse_connect_calls(INTERLEAVED_TRACE.splitlines())
        self.assertEqual(
            [(call.pid, call.port, call.result) for call in calls],
            [
                (4060, 43735, "-1 EINPROGRESS (Operation now in progress)"),
                (4076, 43735, "-1 EINPROGRESS (Operation now in progress)"),
                (4060, 1, "-1 ECONNREFUSED (Connection refused)"),
            ],
        )

    def test_unfinished_never_resumed(self) -> None:
        """A call whose process died mid-connect is still reported, with result C{?}."""
        lines = INTERLEAVED_TRACE.splitlines()[:2]
        self.assertEqual(parse_connect_calls(lines)[-1], ConnectCall(4076, "127.0.0.1", 43735, "?"))

    def test_java_ipv4_mapped(self) -> None:
        """Java's IPv4-mapped IPv6 addresses are reported as the IPv4 address they carry."""
        self.assertEqual(
            [(c.ip, c.port) for c in parse_connect_calls(JAVA_TRACE.splitlines())],
            [("127.0.0.1", 1), ("127.0.0.1", 2)],
        )

    def test_without_pid_and_with_decoded_fds(self) -> None:
        """Traces without C{-f} and with C{-yy} parse too."""
        self.assertEqual(
            parse_connect_calls(NO_PID_TRACE.splitlines()),
            [ConnectCall(0, "127.0.0.1", 9, "-1 ECONNREFUSED (Connection refused)")],
        )
        self.assertEqual(
            [(c.ip, c.port) for c in parse_connect_calls(DECODED_FD_TRACE.splitlines())],
            [("127.0.0.1", 53), ("127.0.0.1", 9)],
        )

    def test_connected_addresses_reads_file(self) -> None:
        """L{connected_addresses} gives (ip, port) pairs from a trace file, in order."""
        trace = Path(self.mktemp())
        trace.write_text(INTERLEAVED_TRACE)
        self.assertEqual(
            connected_addresses(trace),
            [("127.0.0.1", 43735), ("127.0.0.1", 43735), ("127.0.0.1", 1)],
        )


class AssertNeverConnectedTests(TestCase):
    """L{assert_never_connected} fails on forbidden ports and on traces that prove nothing."""

    def write(self, text: str) -> Path:
        trace = Path(self.mktemp())
        trace.write_text(text)
        return trace

    def test_clean(self) -> None:
        """No forbidden port reached: the checked calls are returned."""
        calls = assert_never_connected(self.write(PYTHON_TRACE), {9092, 9093})
        self.assertEqual(len(calls), 5)

    def test_forbidden_port(self) -> None:
        """A connect to a forbidden port fails, naming the pid, address and result."""
        error = self.assertRaises(
            AssertionError, assert_never_connected, self.write(PYTHON_TRACE), {57025}
        )
        message = str(error)
        self.assertIn("2 connect() call(s)", message)
        self.assertIn("pid 3979 connect(127.0.0.1:57025) = 0", message)
        self.assertIn("EINPROGRESS", message)

    def test_failed_attempt_counts(self) -> None:
        """A refused connect to a forbidden port is still a failure."""
        self.assertRaises(AssertionError, assert_never_connected, self.write(PYTHON_TRACE), {1})

    def test_unfinished_counts(self) -> None:
        """A connect that never finished is still a failure."""
        trace = self.write("".join(INTERLEAVED_TRACE.splitlines(True)[1:2]))
        self.assertRaises(AssertionError, assert_never_connected, trace, {43735})

    def test_java_mapped_address_matches_host(self) -> None:
        """Java's C{::ffff:127.0.0.1} is caught by C{host="127.0.0.1"}."""
        self.assertRaises(AssertionError, assert_never_connected, self.write(JAVA_TRACE), {2})

    def test_other_host_allowed(self) -> None:
        """The same port on another address is allowed unless C{host=None}."""
        trace = self.write(PYTHON_TRACE)
        assert_never_connected(trace, {1}, host="10.0.0.1")
        self.assertRaises(AssertionError, assert_never_connected, trace, {1}, host=None)

    def test_ipv6_host(self) -> None:
        """IPv6 hosts are compared in canonical form."""
        trace = self.write(PYTHON_TRACE)
        self.assertRaises(
            AssertionError, assert_never_connected, trace, {1}, host="0:0:0:0:0:0:0:1"
        )

    def test_missing_file(self) -> None:
        """No trace file at all fails."""
        error = self.assertRaises(
            AssertionError, assert_never_connected, Path(self.mktemp()), {9092}
        )
        self.assertIn("no strace output", str(error))

    def test_empty_file(self) -> None:
        """An empty trace fails: it proves nothing."""
        error = self.assertRaises(AssertionError, assert_never_connected, self.write(""), {9092})
        self.assertIn("no IPv4/IPv6 connect()", str(error))

    def test_only_unix_sockets(self) -> None:
        """A trace with only Unix-socket connects proves nothing either."""
        self.assertRaises(
            AssertionError, assert_never_connected, self.write(UNIX_ONLY_TRACE), {9092}
        )


class AuditedCommandTests(TestCase):
    """L{audited_command} wraps a command in strace."""

    def test_shape(self) -> None:
        """strace follows children, traces only connect, and writes to the given file."""
        self.assertEqual(
            audited_command(["java", "-version"], Path("/tmp/t.strace")),
            [
                STRACE, "-f", "-qq", "-e", "trace=connect", "-e", "signal=none",
                "-o", "/tmp/t.strace", "--", "java", "-version",
            ],
        )  # fmt: skip

    def test_real_strace(self) -> None:
        """Under real strace, a loopback connect from a child thread shows up in the trace."""
        if not os.access(STRACE, os.X_OK) or shutil.which(STRACE) is None:
            raise SkipTest(f"{STRACE} is not installed")
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            trace = Path(self.mktemp())
            script = (
                "import socket, threading\n"
                f"t = threading.Thread(target=socket.create_connection, args=(('127.0.0.1', {port}),))\n"
                "t.start(); t.join()\n"
            )
            result = subprocess.run(
                audited_command([sys.executable, "-c", script], trace),
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        if result.returncode != 0 and "ptrace" in result.stderr:
            raise SkipTest(f"strace cannot trace here: {result.stderr.strip()}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(("127.0.0.1", port), connected_addresses(trace))
        self.assertEqual([call.result for call in connect_calls(trace) if call.port == port], ["0"])
        self.assertRaises(AssertionError, assert_never_connected, trace, {port})
