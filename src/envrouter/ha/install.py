"""Install the OCF agents into <ocf-root>/resource.d/envrouter/ (effects)."""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

from envrouter.services.process import write_file_atomic

AGENTS = ("vrouter", "vip", "conntrackd", "dns", "ntp")
DEFAULT_OCF_ROOT = "/usr/lib/ocf"


def agent_text(name: str, interpreter: str | None = None) -> str:
    """The executable for agent `name`: a tiny sh script that prints the agent's meta-data
    itself (static, generated here: Pacemaker and ocf-tester ask for it often, the latter as
    user nobody, who may not reach the interpreter of a virtualenv) and otherwise execs the
    interpreter envrouter is installed in (sys.executable) on envrouter.ha.ocf_<name>.main."""
    module = importlib.import_module(f"envrouter.ha.ocf_{name}")
    meta = module.AGENT.meta_data()
    python = shlex.quote(interpreter or sys.executable)
    return (
        "#!/bin/sh\n"
        f"# OCF resource agent ocf:envrouter:{name}, written by 'envrouter ha install'.\n"
        'if [ "$1" = meta-data ]; then\n'
        "cat <<'END_OF_META_DATA'\n"
        f"{meta}"
        "END_OF_META_DATA\n"
        "exit 0\n"
        "fi\n"
        f"exec {python} -c 'from envrouter.ha.ocf_{name} import main; main()' \"$@\"\n"
    )


def install_agents(ocf_root: str = DEFAULT_OCF_ROOT, interpreter: str | None = None) -> list[str]:
    """Write every agent; returns the paths that changed (empty when already installed)."""
    target = Path(ocf_root) / "resource.d" / "envrouter"
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o755)
    changed = []
    for name in AGENTS:
        path = target / name
        if write_file_atomic(path, agent_text(name, interpreter), mode=0o755):
            changed.append(str(path))
        os.chmod(path, 0o755)
    return changed
