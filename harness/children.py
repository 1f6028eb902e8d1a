"""Child processes (brokers, gateway nodes, HAProxy) that die when the test process dies."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable

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


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if it lingers past C{timeout}; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
