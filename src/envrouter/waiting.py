"""Bounded polling, the one loop every wait goes through (the agent, the services, the upgrade
and the lab's `envrouter.lab.waiting.wait_for`): ask again until the answer is truthy or the
bound passes, never a tuned sleep. Also `end_process`: the bounded wait for a process told to
stop, then kill."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Call `probe` until it returns something truthy or `timeout` seconds have passed (it is
    called at least once, and once more at the bound); its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Whether `predicate` became true within `timeout` seconds."""
    return bool(poll(predicate, timeout, interval))


def end_process(proc: subprocess.Popen, timeout: float) -> None:
    """Give `proc` (already told to stop, or about to end) `timeout` seconds to exit, then kill
    it; it is reaped either way."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
