"""Running the real `envrouter` command in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys


def envrouter(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENVROUTER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "envrouter.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def assert_clean_error(r, *needles: str) -> None:
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines, r.stdout
    last = lines[-1]
    assert last.startswith(("error: ", "failed: ")), r.stderr
    for needle in needles:
        assert needle in last, (needle, r.stderr)
