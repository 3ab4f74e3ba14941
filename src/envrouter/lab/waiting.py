"""Polling with a bound (the lab waits on conditions, never on tuned sleeps)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from envrouter.errors import InfraError

T = TypeVar("T")


def tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return f"(no {os.path.basename(path)})"


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    proc: subprocess.Popen | None = None,
    log: str | None = None,
) -> T:
    """Call `probe` until it returns something truthy; fail with `what` (and the log's tail) if
    the bound passes or `proc` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            detail = f"\n{tail(log)}" if log else ""
            raise InfraError(f"{what}: the process exited ({proc.returncode}){detail}")
        if time.monotonic() > deadline:
            detail = f"\n{tail(log)}" if log else ""
            raise InfraError(f"{what}: not after {timeout:.0f} s{detail}")
        time.sleep(interval)
