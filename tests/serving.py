"""A real `envrouter serve` for the tiers that talk to one over HTTP (api, db, ui), and the
bounded wait they use (envrouter.waiting.poll, tolerating a server that is not up yet).

Shared like agent_documents.py: tests/ is on sys.path (pytest puts the rootdir of
tests/conftest.py there)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from envrouter.waiting import end_process, poll


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout: float = 30.0, interval: float = 0.1):
    """Poll `check` until it returns a truthy value (an exception counts as not yet); fail
    naming `what` after `timeout`."""
    last_exc: list[Exception] = []

    def ask():
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 - the server may not be up yet
            last_exc[:] = [exc]
            return None

    value = poll(ask, timeout, interval)
    if not value:
        why = repr(last_exc[0]) if last_exc else repr(value)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}: {why}")
    return value


def healthy(base_url: str) -> bool:
    return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200


@contextmanager
def serve_process(envrouter: list[str], log_dir, db_url: str, *extra: str) -> Iterator[str]:
    """A real `envrouter serve` on a free loopback port (log in log_dir/serve.log); yields its
    base URL once /healthz answers, and ends it afterwards, also when the test fails."""
    port = free_port()
    log_path = os.path.join(str(log_dir), "serve.log")
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [*envrouter, "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url",
         db_url, *extra],
        env={**os.environ, "ENVROUTER_DATABASE_URL": db_url}, stdout=log,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: proc.poll() is None and healthy(base), "envrouter serve /healthz",
                       timeout=60)
        except AssertionError:
            log.flush()
            with open(log_path) as f:
                raise AssertionError(f.read()[-3000:]) from None
        yield base
    finally:
        proc.terminate()
        end_process(proc, 15)
        log.close()
