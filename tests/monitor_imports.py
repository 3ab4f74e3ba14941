"""What an OCF agent's monitor imports, as `python -X importtime` reports it (the import
contract of tests/unit/test_import_contract.py, and the live monitors of tests/netns)."""

from __future__ import annotations

import subprocess

# Pacemaker runs a monitor every 2-10 s, each a new process: whatever it imports is paid for
# at every run (docs/ha.md, "Agent cost"). Third-party libraries of the web, the database,
# rendering and netlink, and the standard library's modules that cost milliseconds each here.
MONITOR_HEAVY = frozenset({
    "pyroute2", "jinja2", "pydantic", "pydantic_core", "fastapi", "starlette", "uvicorn",
    "sqlalchemy", "alembic", "typer", "click", "rich", "httpx", "yaml",
    "typing", "dataclasses", "pathlib", "subprocess", "threading", "json", "re", "inspect",
    "logging", "tempfile", "shutil", "asyncio", "email", "importlib.metadata", "ipaddress",
    "ctypes", "binascii", "zlib", "hashlib",
})


def imported_modules(stderr: str) -> set[str]:
    """The modules `python -X importtime` reported loading."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names - {"package"}  # the header line


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in MONITOR_HEAVY))


def run_monitor(name: str, env: dict[str, str], *, importtime: bool) -> tuple[int, set[str]]:
    """The agent's monitor, started exactly as the installed executable starts it."""
    from envrouter.ha.install import launcher_argv

    argv = launcher_argv(name)
    if importtime:
        argv[1:1] = ["-X", "importtime"]
    proc = subprocess.run([*argv, "monitor"], env=env, capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, imported_modules(proc.stderr)


