"""Tests for L{kgateway.node.free_memory}."""

from __future__ import annotations

import threading

from twisted.trial.unittest import SynchronousTestCase

from kgateway.node.free_memory import FreeMemory


class FreeMemoryTests(SynchronousTestCase):
    def test_trims_in_a_thread_one_at_a_time(self) -> None:
        entered, release = threading.Event(), threading.Event()
        calls: list[int] = []

        def trim(pad: int) -> int:
            calls.append(pad)
            entered.set()
            release.wait(5)
            return 1

        free = FreeMemory(trim)
        free()
        self.assertTrue(entered.wait(5))
        free()  # one is running: not another
        release.set()
        for thread in threading.enumerate():
            if thread.name == "malloc_trim":
                thread.join(5)
        self.assertEqual(calls, [0])
        self.assertEqual(free.trims, 1)

    def test_the_real_one_runs(self) -> None:
        free = FreeMemory()
        free()
        for thread in threading.enumerate():
            if thread.name == "malloc_trim":
                thread.join(10)
