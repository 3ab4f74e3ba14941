"""envrouter.waiting.poll, the one polling loop, and what is built on it: the lab's wait_for,
the OCF monitors' client commands (envrouter.services.status.command_status)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from envrouter.errors import InfraError
from envrouter.lab.waiting import wait_for
from envrouter.services.status import command_status
from envrouter.waiting import end_process, poll, wait_until


def test_poll_returns_the_first_truthy_answer_or_the_last_one() -> None:
    answers = iter([0, "", None, "ready", "never asked"])
    assert poll(lambda: next(answers), timeout=30, interval=0) == "ready"
    calls: list[int] = []
    assert poll(lambda: calls.append(1), timeout=0, interval=0) is None
    assert calls == [1]  # asked once even with no time at all
    assert wait_until(lambda: True, 0) is True and wait_until(lambda: 0, 0) is False


def test_wait_for_names_what_it_waited_for(tmp_path) -> None:
    log = tmp_path / "x.log"
    log.write_text("line 1\nthe reason\n")
    with pytest.raises(InfraError, match=r"the thing: not after 0 s\nline 1\nthe reason"):
        wait_for("the thing", lambda: None, timeout=0, log=str(log))
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(InfraError, match=r"the daemon: the process exited \(3\)"):
        wait_for("the daemon", lambda: None, timeout=30, proc=proc)
    assert wait_for("a value", lambda: 7, timeout=0) == 7


def test_end_process_kills_what_does_not_exit_in_time_and_reaps_both() -> None:
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    end_process(done, 30)
    assert done.returncode == 4
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    end_process(stuck, 0.1)
    assert stuck.returncode == -9  # killed, and reaped (a returncode is set)


def test_poll_backs_off_from_interval_to_max_interval(monkeypatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    answers = iter([None] * 7 + ["done"])
    assert poll(lambda: next(answers), timeout=60, interval=0.001, max_interval=0.05) == "done"
    assert pauses == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05]
    pauses.clear()
    answers = iter([None] * 3 + ["done"])
    assert poll(lambda: next(answers), timeout=60, interval=0.01) == "done"
    assert pauses == [0.01, 0.01, 0.01]  # without max_interval: a fixed pause


def test_command_status_waits_through_poll_and_kills_at_the_bound(tmp_path) -> None:
    assert command_status(["true"], timeout=30) == 0
    assert command_status([sys.executable, "-c", "raise SystemExit(3)"], timeout=30) == 3
    out = tmp_path / "out"
    assert command_status(["echo", "stats"], timeout=30, output=str(out)) == 0
    assert out.read_text() == "stats\n"
    assert command_status(["/nonexistent/program"], timeout=30) is None
    started = time.monotonic()
    assert command_status(["sleep", "60"], timeout=0.2) is None  # killed, and reaped
    assert time.monotonic() - started < 30
