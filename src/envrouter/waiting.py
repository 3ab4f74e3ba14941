"""Bounded polling, the one loop every wait goes through (the agent, the services, the upgrade,
the OCF monitors' client commands and the lab's `envrouter.lab.waiting.wait_for`): ask again
until the answer is truthy or the bound passes, never a tuned sleep. Also `end_process`: the
bounded wait for a process told to stop, then kill.

Imports `time` only (typing and subprocess when they are needed): an OCF monitor is a new
process every few seconds and polls through here (envrouter.services.status).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")


def poll(
    probe: Callable[[], T], timeout: float, interval: float = 0.02,
    *, max_interval: float | None = None,
) -> T:
    """Call `probe` until it returns something truthy or `timeout` seconds have passed (it is
    called at least once, and once more at the bound); its last answer. With `max_interval`
    the pause starts at `interval` and doubles after each answer up to `max_interval`: a quick
    answer is seen at once, a slow one costs few calls."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
        if max_interval is not None:
            interval = min(interval * 2, max_interval)


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02,
    *, max_interval: float | None = None,
) -> bool:
    """Whether `predicate` became true within `timeout` seconds."""
    return bool(poll(predicate, timeout, interval, max_interval=max_interval))


def end_process(proc: subprocess.Popen, timeout: float) -> None:
    """Give `proc` (already told to stop, or about to end) `timeout` seconds to exit, then kill
    it; it is reaped either way."""
    import subprocess

    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
