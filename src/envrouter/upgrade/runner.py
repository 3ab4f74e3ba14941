"""Node runners (effects): how the upgrade runs a command on a node. Always an argv list.

- `LabRunner`: inside a lab node (`Lab.exec_in`), the agent writing under the node's root dir.
- `SshRunner`: `ssh [options] TARGET -- <argv quoted with shlex.join>` (ssh hands the remote
  side one command line; quoting each argument is what keeps it an argv).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from envrouter.errors import InfraError


class NodeRunner(Protocol):
    def run(self, node: str, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run argv on the node; never raises for a non-zero exit (InfraError if the node
        cannot be reached at all)."""
        ...

    def envrouter(self) -> list[str]:
        """argv prefix of the envrouter command on a node."""
        ...

    def agent_options(self, node: str) -> list[str]:
        """Extra options of `envrouter agent ...` on this node (e.g. --root)."""
        ...


class LabRunner:
    def __init__(self, lab) -> None:  # noqa: ANN001 (envrouter.lab.nodes.Lab)
        self.lab = lab

    def run(self, node: str, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        try:
            return self.lab.exec_in(node, list(argv), check=False, timeout=timeout, input=input,
                                    env=dict(env or {}))
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(list(argv), 124, "",
                                               f"timed out after {exc.timeout} s")

    def envrouter(self) -> list[str]:
        # the lab's own choice: the installed package (`lab up --installed`) or this one
        return list(self.lab.state.get("envrouter") or [sys.executable, "-m",
                                                        "envrouter.cli.main"])

    def agent_options(self, node: str) -> list[str]:
        return ["--root", f"{self.lab.plan.node_dir(node)}/root"]


class SshRunner:
    def __init__(self, targets: Mapping[str, str], *, user: str | None = None,
                 options: Sequence[str] = (), envrouter: Sequence[str] = ("envrouter",),
                 config: str | None = None, agent_root: str | None = None) -> None:
        self.targets = dict(targets)
        self.user = user
        self.options = list(options)
        self._envrouter = list(envrouter)
        self.config = config  # ssh -F FILE (else ssh's own ~/.ssh/config and /etc/ssh)
        self.agent_root = agent_root  # the agent's --root on a node, {node} replaced

    def argv(self, node: str, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> list[str]:
        host = self.targets.get(node, node)
        target = f"{self.user}@{host}" if self.user else host
        opts: list[str] = ["-F", self.config] if self.config else []
        opts += ["-o", "BatchMode=yes"]
        for o in self.options:
            opts += ["-o", o]
        remote = list(argv)
        if env:
            remote = ["env", *[f"{k}={v}" for k, v in sorted(env.items())], *remote]
        return ["ssh", *opts, target, "--", shlex.join(remote)]

    def run(self, node: str, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        full = self.argv(node, argv, env)
        try:
            proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                                  input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(full, 124, "", f"timed out after {exc.timeout} s")
        except OSError as exc:
            raise InfraError(f"ssh to {node}: {exc}") from exc
        if proc.returncode == 255:
            raise InfraError(f"ssh to {node}: {proc.stderr.strip()[-300:]}")
        return proc

    def envrouter(self) -> list[str]:
        return list(self._envrouter)

    def agent_options(self, node: str) -> list[str]:
        return ["--root", self.agent_root.format(node=node)] if self.agent_root else []
