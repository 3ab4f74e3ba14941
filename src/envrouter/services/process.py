"""Daemons inside a network namespace: paths, start, stop, status (effects).

Every instance is keyed by (namespace, service) and keeps everything it writes under
``<run_root>/<namespace>/<service>/`` (config, pid file, lock, control socket) with its log in
``<log_root>/<namespace>-<service>.log``, so several instances (one per namespace, e.g. three
lab controllers on one machine) coexist.

Daemons run in the foreground under ``ip netns exec <ns> <daemon> ...`` (``ip netns exec``
execs, so the PID we record is the daemon's), detached by a double fork: the caller (an OCF
agent that exits at once, or a test) is never the parent, so no zombie is left behind. The PID
file written here is the one stop and status trust; a PID is only believed if /proc shows a
live process with the expected command name (a recycled PID is not our daemon).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envrouter.agent.namespaces import netns_exists
from envrouter.document import NamespaceName, parse_value
from envrouter.errors import InfraError
from envrouter.files import write_if_changed
from envrouter.services import status

# their home is the light .status (the OCF monitors import it); kept here for callers
from envrouter.services.status import (  # noqa: F401
    LOG_ROOT,
    RUN_ROOT,
    SOURCE_FILE,
    pid_alive,
    pid_running,
    read_pid,
)
from envrouter.waiting import wait_until


def check_namespace_name(namespace: str) -> str:
    """A namespace name becomes part of paths: the document's rule for namespace names (no
    '/', no '..', no blank) keeps it inside them."""
    return parse_value(NamespaceName, "vrouter", "namespace", namespace)


@dataclass(frozen=True)
class ServicePaths:
    """Where one daemon instance keeps its files. Pure: computing paths creates nothing."""

    namespace: str
    service: str
    run_dir: Path
    log_file: Path

    @property
    def pid_file(self) -> Path:
        """Written by us at spawn: the PID stop and status act on."""
        return self.run_dir / "daemon.pid"

    def file(self, name: str) -> Path:
        return self.run_dir / name


def service_paths(
    namespace: str,
    service: str,
    *,
    run_root: str | os.PathLike[str] = RUN_ROOT,
    log_root: str | os.PathLike[str] = LOG_ROOT,
) -> ServicePaths:
    check_namespace_name(namespace)
    return ServicePaths(
        namespace=namespace,
        service=service,
        run_dir=Path(run_root) / namespace / service,
        log_file=Path(log_root) / f"{namespace}-{service}.log",
    )


def pid_file_ready(own_pid: Path) -> Callable[[int], bool]:
    """A readiness check for a daemon that writes its own pid file once it serves: ready when
    that file holds the PID we started."""

    def ready(pid: int) -> bool:
        try:
            return own_pid.read_text().strip() == str(pid)
        except FileNotFoundError:
            return False

    return ready


def running_pid(paths: ServicePaths, comm: str) -> int | None:
    return status.running_pid(paths.pid_file, comm)


def spawn_detached(argv: Sequence[str], log_file: Path) -> int:
    """Start argv in a new session with stdout/stderr appended to log_file; return its PID.

    Double fork: the intermediate child exits at once, so the daemon is adopted by init and the
    caller never has to reap it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # intermediate child: only os-level calls, then _exit
        status = 1
        try:
            os.close(read_end)
            os.setsid()
            log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            null_fd = os.open(os.devnull, os.O_RDONLY)
            daemon = os.fork()
            if daemon == 0:
                try:
                    os.dup2(null_fd, 0)
                    os.dup2(log_fd, 1)
                    os.dup2(log_fd, 2)
                    os.execvp(argv[0], list(argv))
                finally:
                    os._exit(127)
            os.write(write_end, str(daemon).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(middle, 0)
    if not data:
        raise InfraError(f"could not spawn {argv[0]}")
    return int(data)


def log_tail(log_file: Path, lines: int = 5) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def source_digest(*parts: object) -> str:
    """A digest of the rendering's inputs (document section, paths, options)."""
    import hashlib

    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass
class Daemon:
    """One daemon instance in a namespace. `argv` is the daemon's own command (foreground)."""

    paths: ServicePaths
    comm: str
    argv: list[str]
    config: dict[str, str] = field(default_factory=dict)  # file name in run_dir -> content
    # Or rendered on demand: an OCF monitor every few seconds must not pay for rendering when
    # nothing changed. `source` is a digest of everything the rendering depends on; prepare()
    # records it beside the files, and config_drifted() renders only when it differs.
    render: Callable[[], dict[str, str]] | None = None
    source: str = ""
    ready: Callable[[int], bool] | None = None  # extra readiness check, given the PID
    stale_files: list[str] = field(default_factory=list)  # removed before a start
    run_dir_mode: int = 0o755
    run_dir_owner: str | None = None  # user that must own run_dir (chrony's socket dir)
    start_timeout: float = 10.0
    stop_timeout: float = 10.0

    @property
    def namespace(self) -> str:
        return self.paths.namespace

    def files(self) -> dict[str, str]:
        """The configuration files (rendering them now if they are rendered on demand; a bad
        value raises ValidationError naming its field)."""
        if not self.config and self.render is not None:
            self.config = self.render()
        return self.config

    def pid(self) -> int | None:
        return running_pid(self.paths, self.comm)

    def running(self) -> bool:
        return self.pid() is not None

    def prepare(self) -> None:
        """Create the run directory and write the configuration files (only if they differ)."""
        run_dir = self.paths.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, self.run_dir_mode)
        if self.run_dir_owner is not None:
            import pwd

            try:
                user = pwd.getpwnam(self.run_dir_owner)
            except KeyError as exc:
                raise InfraError(f"user {self.run_dir_owner!r} does not exist") from exc
            os.chown(run_dir, user.pw_uid, user.pw_gid)
        for name, text in self.files().items():
            write_if_changed(run_dir / name, text)
        if self.source:
            write_if_changed(run_dir / SOURCE_FILE, self.source + "\n")

    def source_unchanged(self) -> bool:
        """The files on disk were rendered from what the document renders now (cheap: no
        rendering, one small file read)."""
        return bool(self.source) and status.recorded_source(self.paths.run_dir) == self.source

    def config_drifted(self) -> bool:
        """The files on disk differ from what the document renders now (e.g. a new dns_list
        arrived with a new document): a running daemon still serves the old configuration."""
        if self.source and not self.config and self.source_unchanged():
            return False
        for name, text in self.files().items():
            try:
                if (self.paths.run_dir / name).read_text() != text:
                    return True
            except FileNotFoundError:
                return True
        return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def start(self) -> bool:
        """Start unless running; returns True if it started the daemon."""
        if self.running():
            return False
        if not netns_exists(self.namespace):
            raise InfraError(f"namespace {self.namespace!r} does not exist")
        self.prepare()
        # A daemon killed with -9 leaves its lock file and socket: they would stop the next one.
        for name in self.stale_files:
            try:
                (self.paths.run_dir / name).unlink()
            except FileNotFoundError:
                pass
        self.paths.pid_file.unlink(missing_ok=True)
        pid = spawn_detached(
            ["ip", "netns", "exec", self.namespace, *self.argv], self.paths.log_file
        )
        write_if_changed(self.paths.pid_file, f"{pid}\n")

        def up() -> bool:
            # Until the child has exec'd, its name is still the parent's (python3), then "ip",
            # then the daemon's: only a process that is gone has died.
            if not pid_alive(pid):
                raise _Died()
            return pid_running(pid, self.comm) and (self.ready is None or self.ready(pid))

        try:
            if wait_until(up, self.start_timeout):
                return True
        except _Died:
            self.paths.pid_file.unlink(missing_ok=True)
            raise InfraError(
                f"{self.comm} in {self.namespace} exited at start: {log_tail(self.paths.log_file)}"
            ) from None
        self._kill(pid)
        raise InfraError(
            f"{self.comm} in {self.namespace} not ready after {self.start_timeout}s: "
            f"{log_tail(self.paths.log_file)}"
        )

    def _kill(self, pid: int) -> None:
        for sig, timeout in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            if wait_until(lambda: not pid_running(pid, self.comm), timeout):
                return
        raise InfraError(f"{self.comm} (pid {pid}) in {self.namespace} does not die")

    def stop(self) -> bool:
        """Stop if running (by the PID file's PID); returns True if it stopped something."""
        pid = self.pid()
        if pid is not None:
            self._kill(pid)
        self.paths.pid_file.unlink(missing_ok=True)
        for name in self.stale_files:
            (self.paths.run_dir / name).unlink(missing_ok=True)
        return pid is not None


class _Died(Exception):
    pass
