"""Hangs: naming the scenario that was running when the watchdog fired."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager

from tests.harness.scenario import Scenario


class HangReporter:
    """Names the scenario still running after ``seconds`` of real time, on stderr.

    A scenario that hangs in a shielded wait cannot be stopped from inside Trio; the
    suite's faulthandler watchdog ends the run later, and this says which scenario it was.
    """

    def __init__(self, seconds: float = 20) -> None:
        self.seconds = seconds
        self._current: tuple[str, float] | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, scenario: Scenario) -> Generator[None, None, None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self._current = (repr(scenario), time.monotonic() + self.seconds)
        try:
            yield
        finally:
            self._current = None

    def _poll(self) -> None:
        reported = None
        while True:
            time.sleep(1)
            current = self._current
            if current is not None and current is not reported and time.monotonic() > current[1]:
                print(f"\nstill running after {self.seconds} s: {current[0]}", file=sys.__stderr__)
                reported = current
