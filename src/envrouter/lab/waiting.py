"""Polling with a bound for the lab (`envrouter.waiting.poll`, failing with what was awaited
and a log's tail; the lab waits on conditions, never on tuned sleeps)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import TypeVar

from envrouter.errors import InfraError
from envrouter.waiting import poll

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
    detail = (lambda: f"\n{tail(log)}") if log else (lambda: "")

    def ask() -> T | None:
        result = probe()
        if not result and proc is not None and proc.poll() is not None:
            raise InfraError(f"{what}: the process exited ({proc.returncode}){detail()}")
        return result

    result = poll(ask, timeout, interval)
    if not result:
        raise InfraError(f"{what}: not after {timeout:.0f} s{detail()}")
    return result
