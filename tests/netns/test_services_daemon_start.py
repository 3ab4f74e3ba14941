"""Daemon.start in a real namespace (root): a daemon that dies at start is reported at once,
and one that lives is seen as started. (The race this guards against — the child still named
python3 before its exec taken for a death — shows only under load; these runs do not reproduce
it reliably.)"""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest

from envrouter.errors import InfraError
from envrouter.services.process import Daemon, service_paths

pytestmark = pytest.mark.root


@pytest.fixture
def netns():
    name = f"ert{secrets.token_hex(3)}ds"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _daemon(tmp_path, ns: str, argv: list[str], comm: str) -> Daemon:
    paths = service_paths(ns, "t", run_root=str(tmp_path / "run"), log_root=str(tmp_path))
    return Daemon(paths=paths, comm=comm, argv=argv, start_timeout=20.0)


def test_a_daemon_that_dies_at_start_is_reported_at_once(tmp_path, netns) -> None:
    # The shell stands for a daemon that fails before it is up: it never carries the daemon's
    # name ("conntrackd"), so start() cannot take it for started in the few ms it lives (with
    # comm "sh" a poll landing in that window — likely under load — saw a running daemon).
    d = _daemon(tmp_path, netns, ["sh", "-c", "echo bad config >&2; exit 3"], "conntrackd")
    t0 = time.monotonic()
    with pytest.raises(InfraError, match="exited at start: bad config"):
        d.start()
    assert time.monotonic() - t0 < 10  # not the start timeout
    assert d.pid() is None


def test_starts_repeatedly_without_a_false_death(tmp_path, netns) -> None:
    for _ in range(20):
        d = _daemon(tmp_path, netns, ["sleep", "60"], "sleep")
        try:
            assert d.start() is True and d.running()
        finally:
            d.stop()
        assert not d.running()
