"""Tests for L{harness.children}: real (tiny) Python children, spawned, polled, stopped, killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from twisted.trial.unittest import TestCase

from harness import REPO_ROOT, children
from harness.children import ChildError, ChildProcess

# Python without site-packages: a child starts in a few tens of milliseconds.
PYTHON = [sys.executable, "-I", "-S", "-c"]


class PythonChild(ChildProcess):
    """A child running a snippet of Python; ready once it has printed C{ready}."""

    poll_interval = 0.02

    def __init__(
        self,
        log_path: Path,
        script: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("python child", log_path, cwd=cwd, env=env)
        self.script = textwrap.dedent(script)
        self.readiness_checks = 0

    def command(self) -> Sequence[str]:
        return [*PYTHON, self.script]

    def is_ready(self) -> bool:
        self.readiness_checks += 1
        return "ready" in self.log_since_start()


SERVE = """
    import sys, time
    time.sleep(0.2)
    print("ready", flush=True)
    time.sleep(60)
"""

IGNORE_SIGTERM = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(60)
"""


def gone(pid: int) -> bool:
    """True when C{pid} no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def kill_if_there(pid: int) -> None:
    """Cleanup for a test that failed half-way: SIGKILL C{pid} if it still runs."""
    if not gone(pid):
        os.kill(pid, signal.SIGKILL)


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until C{pid} is gone; whether it went in time."""
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class ChildProcessTests(TestCase):
    """L{ChildProcess} starts, waits for readiness, stops, kills and forgets its children."""

    def setUp(self) -> None:
        # A registry of this test's own, so nothing else's cleanup is touched.
        self.patch(children, "_at_exit", {})
        self.log = Path(self.mktemp()) / "child.log"

    def child(
        self, script: str = SERVE, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> PythonChild:
        """A child whose cleanup kills it, whatever the test did."""
        child = PythonChild(self.log, script, cwd=cwd, env=env)
        self.addCleanup(child.kill)
        return child

    def test_start_waits_for_ready(self) -> None:
        """start() returns only once the ready predicate holds, which took several looks."""
        child = self.child()
        child.start(timeout=10)
        self.assertTrue(child.running())
        self.assertIn("ready", child.log_since_start())
        self.assertGreater(child.readiness_checks, 1)
        self.assertEqual(children.live(), [child])
        self.assertIsNone(child.exit_code())

    def test_stop_terminates(self) -> None:
        """stop() sends SIGTERM, waits, returns the exit code and leaves the registry."""
        child = self.child()
        child.start(timeout=10)
        pid = child.pid
        self.assertEqual(child.stop(timeout=5), -signal.SIGTERM)
        self.assertIsNone(child.pid)
        assert pid is not None
        self.assertTrue(gone(pid))
        self.assertEqual(children.live(), [])
        self.assertIsNone(child.exit_code(), "a stopped child did not crash")

    def test_stop_kills_after_timeout(self) -> None:
        """A child that ignores SIGTERM gets SIGKILL once the timeout has passed."""
        child = self.child(IGNORE_SIGTERM)
        child.start(timeout=10)
        began = time.monotonic()
        self.assertEqual(child.stop(timeout=0.5), -signal.SIGKILL)
        self.assertGreaterEqual(time.monotonic() - began, 0.5)
        self.assertEqual(children.live(), [])

    def test_kill(self) -> None:
        """kill() is SIGKILL, waited for."""
        child = self.child()
        child.start(timeout=10)
        child.kill()
        assert child.process is not None
        self.assertEqual(child.process.returncode, -signal.SIGKILL)
        self.assertEqual(children.live(), [])

    def test_stop_before_start(self) -> None:
        """Stopping or killing a child that never ran does nothing."""
        child = self.child()
        self.assertIsNone(child.stop())
        child.kill()
        self.assertIsNone(child.pid)

    def test_exit_before_ready(self) -> None:
        """A child that exits before it is ready fails start() with its code and log."""
        child = self.child("import sys; print('cannot bind', flush=True); sys.exit(3)")
        error = self.assertRaises(ChildError, child.start, 10)
        self.assertIn("python child exited with 3", str(error))
        self.assertIn("cannot bind", str(error))
        self.assertEqual(child.exit_code(), 3)

    def test_never_ready(self) -> None:
        """A child not ready in time is killed, and start() says so with its log."""
        child = self.child("import time; print('starting', flush=True); time.sleep(60)")
        error = self.assertRaises(ChildError, child.start, 1.0)
        self.assertIn("was not ready in 1.0s", str(error))
        self.assertIn("starting", str(error))
        self.assertFalse(child.running())
        self.assertEqual(children.live(), [])

    def test_error_type(self) -> None:
        """A subclass's C{error} is what start() raises."""

        class Refused(ChildError):
            pass

        child = self.child("raise SystemExit(1)")
        child.error = Refused
        self.assertRaises(Refused, child.start, 10)

    def test_restart_reads_only_this_run(self) -> None:
        """A restarted child appends to its log; log_since_start() is the new run only."""
        child = self.child("print('run', __import__('os').getpid(), flush=True); print('ready')")
        child.spawn()
        assert child.process is not None
        first = child.process.pid
        child.process.wait()
        child.spawn()
        assert child.process is not None
        second = child.process.pid
        child.process.wait()
        self.assertEqual(child.log_since_start().split()[:2], ["run", str(second)])
        self.assertIn(f"run {first}", child.log_tail())
        self.assertIn(f"run {second}", child.log_tail())

    def test_spawn_twice(self) -> None:
        """A running child cannot be spawned again."""
        child = self.child()
        child.spawn()
        self.assertRaises(ChildError, child.spawn)

    def test_banner(self) -> None:
        """The banner goes into the log before the run, and not into log_since_start()."""

        class Announced(PythonChild):
            def banner(self) -> bytes:
                return b"=== run begins\n"

        child = Announced(self.log, "print('ready')")
        self.addCleanup(child.kill)
        child.spawn()
        assert child.process is not None
        child.process.wait()
        self.assertEqual(self.log.read_text(), "=== run begins\nready\n")
        self.assertEqual(child.log_since_start(), "ready\n")

    def test_environment_and_cwd(self) -> None:
        """The child gets the environment and the working folder it was given."""
        workdir = Path(self.mktemp())
        workdir.mkdir()
        child = self.child(
            "import os; print(os.getcwd(), os.environ.get('HARNESS_TEST'), flush=True)",
            env={"HARNESS_TEST": "yes"},
            cwd=workdir,
        )
        child.spawn()
        assert child.process is not None
        child.process.wait()
        self.assertEqual(child.log_since_start().split(), [str(workdir.resolve()), "yes"])

    def test_own_process_group(self) -> None:
        """With its own process group, stopping a child stops what it forked too."""
        script = """
            import subprocess, sys, time
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print("ready", sleeper.pid, flush=True)
            time.sleep(60)
        """
        child = self.child(script)
        child.own_process_group = True
        child.start(timeout=10)
        grandchild = int(child.log_since_start().split()[1])
        self.addCleanup(kill_if_there, grandchild)
        child.stop(timeout=5)
        self.assertTrue(wait_gone(grandchild), "the child's own child survived stop()")

    def test_context_manager(self) -> None:
        """C{with child:} starts it and stops it."""
        child = self.child()
        with child as running:
            self.assertIs(running, child)
            self.assertTrue(child.running())
        self.assertFalse(child.running())


class RegistryTests(TestCase):
    """What is still running at exit is stopped, newest first."""

    def setUp(self) -> None:
        self.patch(children, "_at_exit", {})

    def test_stop_all_kills_live_children(self) -> None:
        """stop_all() (the atexit hook) kills every child still running and empties the registry."""
        started = []
        for index in range(2):
            child = PythonChild(Path(self.mktemp()) / f"child-{index}.log", SERVE)
            self.addCleanup(child.kill)
            child.spawn()
            started.append(child)
        self.assertEqual(children.live(), started)
        children.stop_all()
        self.assertEqual(children.live(), [])
        for child in started:
            self.assertFalse(child.running())
            assert child.process is not None
            self.assertEqual(child.process.returncode, -signal.SIGKILL)

    def test_order_and_failures(self) -> None:
        """Owners are stopped newest first; one that fails does not spare the others."""
        stopped: list[str] = []

        def broken() -> None:
            stopped.append("broken")
            raise RuntimeError("cannot stop")

        children.stop_at_exit("cluster", lambda: stopped.append("cluster"))
        children.stop_at_exit("broken", broken)
        children.stop_at_exit("node", lambda: stopped.append("node"))
        children.stop_at_exit("forgotten", lambda: stopped.append("forgotten"))
        children.forget("forgotten")
        children.stop_all()
        self.assertEqual(stopped, ["node", "broken", "cluster"])
        self.assertEqual(children.live(), [])

    def test_dies_with_parent(self) -> None:
        """A child's child dies when its parent is killed before it could clean up."""
        script = """
            import os, signal, sys
            from pathlib import Path
            from harness.children import ChildProcess

            class Sleeper(ChildProcess):
                def command(self):
                    return [sys.executable, "-c", "import time; time.sleep(60)"]

            sleeper = Sleeper("sleeper", Path(sys.argv[1]))
            sleeper.spawn()
            print(sleeper.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
        log = Path(self.mktemp()).absolute() / "sleeper.log"
        parent = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), str(log)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        self.assertEqual(parent.returncode, -signal.SIGKILL, parent.stderr)
        orphan = int(parent.stdout.split()[0])
        self.addCleanup(kill_if_there, orphan)
        self.assertTrue(wait_gone(orphan), "the child outlived its killed parent")
