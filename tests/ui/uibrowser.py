"""Debian's chromium driven by Playwright (never a downloaded browser), and a uvicorn server
in a thread for apps built in the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright must never fetch a browser of its own.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout: float = 30.0, interval: float = 0.1):
    """Poll `check` until it returns a truthy value; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the server may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_exc!r}")


def healthy(base_url: str) -> bool:
    return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200


@contextmanager
def serve_app(app, *, health_path: str = "/ui/login") -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(base + health_path, timeout=2).status_code == 200,
                   "the test server")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
