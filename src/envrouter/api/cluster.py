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

from envrouter.ops.model import ClusterState
from envrouter.ops.parse import parse_crm_mon

MANAGEMENT_VIP_RESOURCE = "vip__vrouter"


def summarize(state: ClusterState, source: str) -> dict[str, Any]:
    """What the API shows of a parsed crm_mon (pure)."""
    holders = [r.node for r in state.resources
               if r.id == MANAGEMENT_VIP_RESOURCE and r.active and r.node]
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


class CommandClusterProbe:
    """Runs the command at most once per `ttl` seconds per environment (the UI polls)."""

    def __init__(self, command: str, *, ttl: float = 3.0, timeout: float = 15.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("empty cluster command")
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[float, dict[str, Any]]] = {}

    def __call__(self, env_id: int) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(env_id)
            if hit and hit[0] > now:
                return hit[1]
            argv = [a.replace("{env_id}", str(env_id)) for a in self.argv]
            try:
                proc = subprocess.run(argv, capture_output=True, text=True,
                                      timeout=self.timeout, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"cluster command {argv[0]!r}: {exc}") from exc
            if proc.returncode != 0 or not proc.stdout.strip():
                why = (proc.stderr or proc.stdout).strip()[-300:] or f"exit {proc.returncode}"
                raise RuntimeError(f"cluster command {argv[0]!r} failed: {why}")
            state = parse_crm_mon(proc.stdout)
            if not state.available:
                raise RuntimeError(state.error or "crm_mon: no cluster")
            result = summarize(state, f"crm_mon via {argv[0]}")
            self._cache[env_id] = (time.monotonic() + self.ttl, result)
            return result
