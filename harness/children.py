"""Child processes (brokers, gateway nodes, HAProxy) that never outlive the test that made them.

L{ChildProcess} is the one skeleton every harness process shares: spawn with its output in a
log file and the kernel's death signal armed, poll a readiness predicate, stop with SIGTERM and
then SIGKILL, quote the log's tail when something goes wrong. Whatever is still running when the
interpreter exits is stopped by the registry here (L{stop_at_exit}, L{stop_all}).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A C{preexec_fn} that has the kernel SIGKILL the child when this process dies.

    The signal fires when the I{thread} that started the child exits, so start
    children from a thread that lives as long as they should.
    """
    # Load libc and read our pid before forking: preexec_fn runs between fork and
    # exec, where importing or allocating is unsafe.
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # If the parent died before prctl took effect, no signal would ever come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# -- what is stopped at exit -------------------------------------------------------------

# Owner -> how to stop it, in registration order. A last resort: tests and the demo stop what
# they start, but an error on the way out must not leave a JVM or a twistd behind.
_at_exit: dict[object, Callable[[], object]] = {}


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """For a child started without L{ChildProcess}: SIGTERM, SIGKILL after C{timeout}."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def stop_at_exit(owner: object, stop: Callable[[], object]) -> None:
    """Call C{stop()} at interpreter exit unless L{forget} is called for C{owner} first."""
    _at_exit[owner] = stop


def forget(owner: object) -> None:
    """C{owner} stopped on its own: nothing left to do for it at exit."""
    _at_exit.pop(owner, None)


def live() -> list[object]:
    """Everything still to be stopped at exit, oldest first."""
    return list(_at_exit)


@atexit.register
def stop_all() -> None:
    """Stop everything registered, newest first; one failure does not spare the others."""
    for owner in reversed(list(_at_exit)):
        stop = _at_exit.pop(owner, None)
        if stop is None:
            continue
        try:
            stop()
        except Exception as error:  # at exit there is no one left to raise to
            print(f"harness: stopping {owner!r} at exit failed: {error}", file=sys.stderr)


# -- one child ------------------------------------------------------------------------------


class ChildError(RuntimeError):
    """A child process did not start or stop as asked; the message quotes its log."""


class ChildProcess:
    """One child process with its output in C{log_path}.

    Subclasses say what to run (L{command}), when it is ready (L{is_ready}) and, if they
    like, what to do before each start (L{prepare}) and which error to raise (C{error}).
    The process is killed by the kernel if this one dies (L{die_with_parent}) and at
    interpreter exit if it is still running. A restart appends to the same log;
    L{log_since_start} reads only the current run.
    """

    error: type[ChildError] = ChildError
    """The exception L{start} raises."""

    poll_interval = 0.1
    """Seconds between two looks at L{is_ready}."""

    own_process_group = False
    """Run in a process group of its own, and signal the whole group: a terminal's Ctrl-C then
    reaches only this Python, which stops its children in order instead of racing them, and
    what the child forks is stopped with it."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """A child called C{name} in messages (not started yet); C{env} is its whole environment
        (default: this process's), C{cwd} its working folder (default: the log's folder)."""
        self.name = name
        self.log_path = log_path
        self.cwd = cwd if cwd is not None else log_path.parent
        self.environment: dict[str, str] = dict(env if env is not None else os.environ)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        # Whether this run was asked to end (terminate/kill), so an exit is not a crash.
        self._ending = False

    # -- what subclasses say ------------------------------------------------------------

    def command(self) -> Sequence[str]:
        """The argv to run."""
        raise NotImplementedError(f"{type(self).__name__} does not say what to run")

    def is_ready(self) -> bool:
        """Whether the started child serves; by default as soon as it runs."""
        return True

    def prepare(self) -> None:
        """Called by L{start} before each spawn (write a config, check it, make folders)."""

    def banner(self) -> bytes:
        """Written to the log before each run, so a restarted child's runs can be told apart."""
        return b""

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.process.pid if self.running() and self.process is not None else None

    def running(self) -> bool:
        """Whether the process has been spawned and not yet exited."""
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The exit code of a run that ended without L{terminate}, L{stop} or L{kill}: a
        crash or a failed start. None while running, after a stop, or before any spawn."""
        if self._ending or self.process is None:
            return None
        return self.process.poll()

    def start(self, timeout: float = 30.0) -> None:
        """L{prepare}, L{spawn} and wait until L{is_ready} (L{wait_until_ready})."""
        self.prepare()
        self.spawn()
        self.wait_until_ready(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        if self.running():
            raise self.error(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(self.banner())
            log.flush()
            self._log_offset = log.tell()
            self._ending = False
            self.process = subprocess.Popen(
                list(self.command()),
                env=self.environment,
                cwd=str(self.cwd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0 if self.own_process_group else None,
                preexec_fn=die_with_parent(),
            )
        stop_at_exit(self, self.kill)

    def wait_until_ready(self, timeout: float) -> None:
        """Poll L{is_ready}; raise C{error} with the log's tail if the child exits or
        C{timeout} passes (it is killed then)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process is not None else None
                raise self.error(f"{self.name} exited with {code}:\n{self.log_tail()}")
            if self.is_ready():
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise self.error(f"{self.name} was not ready in {timeout}s:\n{self.log_tail()}")
            time.sleep(self.poll_interval)

    def send_signal(self, signum: int) -> None:
        """Signal the running child (its whole group with L{own_process_group})."""
        if not self.running() or self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.own_process_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM without waiting: several children's shutdowns then overlap (L{reap})."""
        self._ending = True
        self.send_signal(signal.SIGTERM)

    def reap(self, timeout: float) -> int | None:
        """Wait up to C{timeout} seconds for the exit, SIGKILL after that; the exit code."""
        if self.process is None:
            return None
        try:
            self.process.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.process.wait()
        forget(self)
        return self.process.returncode

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers past C{timeout}; the exit code (None if never
        started)."""
        self.terminate()
        return self.reap(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would, and wait for the exit."""
        self._ending = True
        self.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        forget(self)

    # -- the log ------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything in the log file so far ("" when there is none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_since_start(self, limit: int = 1024 * 1024) -> str:
        """What the current (or last) run wrote, at most its last C{limit} bytes."""
        try:
            with open(self.log_path, "rb") as log:
                end = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, end - limit))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, for error messages."""
        if not self.log_path.exists():
            return f"(no log at {self.log_path})"
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid}>"
