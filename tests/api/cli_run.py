"""Running `envrouter` for the CLI tests: in this process through Click's runner (the same
dispatch as `envrouter.cli.main`, the same error handling, without paying a Python start and the
imports for each of a hundred calls), or as a real subprocess where the process matters."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from envrouter.cli.main import GROUPS


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


def envrouter(*args: str, env: dict[str, str] | None = None) -> Result:
    """`envrouter ARGS` in this process; ENVROUTER_* variables only as given in `env`; stdin is
    not a terminal. An exception that escaped the command (a would-be traceback) is kept."""
    module = importlib.import_module(GROUPS[args[0]][0])
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ENVROUTER_")}
    clean.update(env or {})
    r = CliRunner().invoke(module.app, list(args[1:]), env=clean, catch_exceptions=True)
    escaped = r.exception if not isinstance(r.exception, SystemExit) else None
    return Result(r.exit_code, r.stdout, r.stderr, escaped)


def envrouter_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
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


def assert_clean_error(r, *needles: str) -> None:  # noqa: ANN001
    assert getattr(r, "exception", None) is None, repr(r.exception)
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines, r.stdout
    last = lines[-1]
    assert last.startswith(("error: ", "failed: ")), r.stderr
    for needle in needles:
        assert needle in last, (needle, r.stderr)
