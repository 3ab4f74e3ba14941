"""Live cluster state for the API (and so the UI): from a command the operator configures.

The control plane does not run on the controllers, so it cannot ask Pacemaker directly. With
`envrouter serve --cluster-command "CMD ARGS..."` it runs CMD (argument list, no shell), which
must print `crm_mon -1 --output-as=xml` of the environment's cluster — e.g. `ssh ctl1 crm_mon -1
--output-as=xml`, or in the lab `python -m envrouter.lab.crm_mon STATE_DIR`. `{env_id}` in an
argument is replaced by the environment's id. Without a command, or when it fails, the state is
"unknown": never invented.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from typing import Any

from envrouter.errors import InfraError
from envrouter.ha.layout import VIPS
from envrouter.ops.model import ClusterState
from envrouter.ops.parse import ParseError, parse_crm_mon


def summarize(state: ClusterState, source: str) -> dict[str, Any]:
    """What the API shows of a parsed crm_mon (pure)."""
    holders = [r.node for r in state.resources
               if r.id == VIPS and r.active and r.node]
    return {
        "source": source,
        "quorate": state.quorate,
        "vip_holder": holders[0] if len(holders) == 1 else None,
        "vip_holders": holders,
        "dc": state.dc,
        "fencing": state.stonith_enabled,
        "nodes": [
            {"name": n.name, "online": n.online, "standby": n.standby, "dc": n.is_dc}
            for n in state.nodes
        ],
    }


class ClusterProbeError(InfraError):
    """A probe command (cluster, status) failed, timed out, or printed nothing usable: what it
    reports is unknown."""


class CachedCommand:
    """A probe command run at most once per `ttl` seconds per environment (the UI polls).

    No lock is held while the command runs: the lock guards only the cache and the table of
    commands in flight. Requests for an environment whose command is running wait for that
    run's result (one command per environment at a time); other environments never wait for
    it, so one slow cluster does not hold up every environment's requests. Subclasses say what
    the output means (`_produce`), raising a ClusterProbeError when it means "unknown"."""

    what = "cluster command"

    def __init__(self, command: str, *, ttl: float = 3.0, timeout: float = 15.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError(f"empty {self.what}")
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[float, Any]] = {}
        self._running: dict[int, _Run] = {}

    def __call__(self, env_id: int) -> Any:
        with self._lock:
            hit = self._cache.get(env_id)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            run = self._running.get(env_id)
            owner = run is None
            if run is None:
                run = self._running[env_id] = _Run()
        if not owner:
            return run.wait(self.timeout + 5)
        try:
            result = self._produce(env_id)
        except ClusterProbeError as exc:
            run.fail(exc)
            raise
        else:
            run.succeed(result)
            with self._lock:
                self._cache[env_id] = (time.monotonic() + self.ttl, result)
            return result
        finally:
            with self._lock:
                self._running.pop(env_id, None)

    def _produce(self, env_id: int) -> Any:
        raise NotImplementedError

    def _execute(self, env_id: int) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        """Run the command for `env_id` (argument list, no shell; `{env_id}` replaced)."""
        argv = [a.replace("{env_id}", str(env_id)) for a in self.argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterProbeError(f"{self.what} {argv[0]!r}: {exc}") from exc
        return argv, proc

    def _failed(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> ClusterProbeError:
        why = (proc.stderr or proc.stdout).strip()[-300:] or f"exit {proc.returncode}"
        return ClusterProbeError(f"{self.what} {argv[0]!r} failed: {why}")


class CommandClusterProbe(CachedCommand):
    """The cluster command: `crm_mon -1 --output-as=xml` of the environment's cluster."""

    def _produce(self, env_id: int) -> dict[str, Any]:
        argv, proc = self._execute(env_id)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise self._failed(argv, proc)
        try:
            state = parse_crm_mon(proc.stdout)
        except ParseError as exc:  # a ClusterProbeError, so that the waiting requests get it
            raise ClusterProbeError(f"{self.what} {argv[0]!r}: {exc}") from exc
        if not state.available:
            raise ClusterProbeError(state.error or "crm_mon: no cluster")
        return summarize(state, f"crm_mon via {argv[0]}")


class _Run:
    """One command in flight: the requests that arrive meanwhile share its outcome."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: Any = None
        self._error: ClusterProbeError | None = None

    def succeed(self, result: Any) -> None:
        self._result = result
        self._done.set()

    def fail(self, error: ClusterProbeError) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float) -> Any:
        if not self._done.wait(timeout):
            raise ClusterProbeError("the probe command is still running")
        if self._error is not None:
            raise type(self._error)(str(self._error))
        assert self._result is not None
        return self._result
