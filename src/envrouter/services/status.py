"""The status of a daemon instance, read cheaply: its PID file, /proc, whether its
configuration was rendered from the current inputs, and the exit status of a client command.

Standard library `os` only, and `envrouter.waiting` (`time` only), no pathlib, subprocess or
typing: every OCF monitor is a new process that runs this every few seconds (docs/ha.md, "Agent
cost"); envrouter.services.process builds the daemon handling on these same functions.
"""

from __future__ import annotations

import os

from envrouter.waiting import wait_until

RUN_ROOT = "/run/envrouter"
LOG_ROOT = "/var/log/envrouter"
SOURCE_FILE = "rendered-from"  # the digest of what the configuration was rendered from


def read_pid(pid_file: str | os.PathLike[str]) -> int | None:
    try:
        with open(pid_file) as f:
            text = f.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _stat(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pid_running(pid: int, comm: str) -> bool:
    """A live (not zombie) process with command name `comm` (truncated as the kernel does)."""
    stat = _stat(pid)
    if stat is None:
        return False
    # /proc/PID/stat: "pid (comm) state ..."; comm may itself contain spaces or parentheses.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X") and name == comm[:15]


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie, whatever it runs now."""
    stat = _stat(pid)
    return stat is not None and stat[stat.rindex(")") + 2 :].split(" ", 1)[0] not in ("Z", "X")


def running_pid(pid_file: str | os.PathLike[str], comm: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid is not None and pid_running(pid, comm) else None


def recorded_source(run_dir: str | os.PathLike[str]) -> str | None:
    """The digest the configuration files in run_dir were rendered from (None: never)."""
    try:
        with open(os.path.join(run_dir, SOURCE_FILE)) as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def command_status(argv: list[str], timeout: float, output: str | None = None) -> int | None:
    """Run a client command with no input; its exit status, or None if it could not run or did
    not finish within `timeout` s (it is killed then). Its output is discarded, or written to
    the file `output` (replaced) when given."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        out = null if output is None else os.open(
            output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return None
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, null, 2)])
    except OSError:
        return None
    finally:
        os.close(null)
        if out != null:
            os.close(out)
    reaped: list[int] = []

    def exited() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            reaped.append(status)
        return bool(done)

    # from 1 ms, doubling up to 50 ms: a quick command is seen at once, a slow one costs little
    if wait_until(exited, timeout, 0.001, max_interval=0.05):
        return os.waitstatus_to_exitcode(reaped[0])
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None
