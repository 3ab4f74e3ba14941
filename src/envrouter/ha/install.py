"""Install the OCF agents into <ocf-root>/resource.d/envrouter/ (effects).

Each agent has one implementation, of one of two kinds (docs/ha.md, "Agent cost"):
- a shell agent (vip, uplink): its module's ``AGENT.script`` is the agent, written out whole;
  no action starts Python;
- a Python agent (vrouter, conntrackd, dns, ntp): a few lines of sh that exec the interpreter
  envrouter is installed in on ``envrouter.ha.ocf_<name>.main`` (dns and ntp:
  ``envrouter.ha.ocf_daemon.main(name)``), with ``-I -S`` (no site
  initialisation, no scan of site-packages and its .pth files, no environment variables) and
  the package's directories on ``sys.path`` spelled out. The monitor paths import only the
  standard library's os and sys (tests/unit/test_import_contract.py).

Every executable prints its meta-data itself (static, generated here: Pacemaker and ocf-tester
ask for it often, the latter as user nobody, who may not reach the interpreter of a virtualenv).
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import sysconfig
from pathlib import Path

from envrouter.files import write_if_changed

AGENTS = ("vrouter", "vip", "conntrackd", "dns", "ntp", "uplink")
DEFAULT_OCF_ROOT = "/usr/lib/ocf"


def _quote(text: str) -> str:
    """A Python string literal that needs no escaping inside sh single quotes."""
    if "'" in text or "\\" in text or '"' in text:
        raise ValueError(f"a path the agents cannot name: {text!r}")
    return f'"{text}"'


def python_path(interpreter: str | None = None) -> list[str]:
    """The directories a Python agent puts on sys.path under ``-S``: the one holding the
    envrouter package (an editable install's source tree) and the interpreter's
    site-packages (the dependencies the agents import when they parse a document).

    For another interpreter than this one (a package build names the installed one), its
    site-packages is where a virtualenv at that prefix keeps it, and envrouter is there."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if interpreter is not None and os.path.abspath(interpreter) != os.path.abspath(
            sys.executable):
        prefix = os.path.dirname(os.path.dirname(interpreter))
        return [os.path.join(prefix, "lib", version, "site-packages")]
    import envrouter

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(envrouter.__file__)))
    site = sysconfig.get_paths()["purelib"]
    return [package_parent] if package_parent == site else [package_parent, site]


def agent_of(name: str):  # -> ocf_base.Agent
    """Agent `name`'s table: ``envrouter.ha.ocf_<name>.AGENT``, or for an agent that only
    runs a daemon (dns, ntp) ``ocf_daemon.SERVICE_AGENTS[name]``."""
    from envrouter.ha.ocf_daemon import SERVICE_AGENTS

    if name in SERVICE_AGENTS:
        return SERVICE_AGENTS[name]
    return importlib.import_module(f"envrouter.ha.ocf_{name}").AGENT


def _entry(name: str) -> str:
    """The Python statement a Python agent's launcher runs."""
    from envrouter.ha.ocf_daemon import SERVICE_AGENTS

    if name in SERVICE_AGENTS:
        return f"from envrouter.ha.ocf_daemon import main; main({_quote(name)})"
    return f"from envrouter.ha.ocf_{name} import main; main()"


def agent_text(name: str, interpreter: str | None = None) -> str:
    """The executable for agent `name` (see the module's docstring)."""
    agent = agent_of(name)
    head = (
        "#!/bin/sh\n"
        f"# OCF resource agent ocf:envrouter:{name}, written by 'envrouter ha install' from\n"
        f"# {_entry(name).split(' import ')[0].removeprefix('from ')}.\n"
        'if [ "$1" = meta-data ]; then\n'
        "cat <<'END_OF_META_DATA'\n"
        f"{agent.meta_data()}"
        "END_OF_META_DATA\n"
        "exit 0\n"
        "fi\n"
    )
    if agent.script:
        return head + SHELL_DISPATCH.replace("@NAME@", name) + agent.script.lstrip("\n")
    argv = launcher_argv(name, interpreter)
    return (head + (verdict_check(agent, interpreter) if agent.monitor_inputs else "")
            + f"exec {' '.join(shlex.quote(a) for a in argv)} \"$@\"\n")


# The action dispatch every shell agent starts with (after meta-data): one usage, the OCF exit
# codes for a wrong call (2 no action, 3 an unknown one), `status` as `monitor`, and `probe`
# (a monitor with interval 0). The agent's SCRIPT then handles start, stop, monitor and
# validate-all.
SHELL_DISPATCH = r"""reason() { echo "ocf-exit-reason:$*" >&2; }
usage() { echo "usage: @NAME@ {meta-data|monitor|start|status|stop|usage|validate-all}"; }
[ $# -eq 1 ] || { usage >&2; exit 2; }
action=$1
case $action in
  usage|help) usage; exit 0 ;;
  status) action=monitor ;;
  start|stop|monitor|validate-all) ;;
  *) usage >&2; exit 3 ;;
esac
probe=0
if [ "$action" = monitor ]; then
  case ${OCF_RESKEY_CRM_meta_interval:-0} in 0) probe=1 ;; esac
fi
"""


# How a Python agent's launcher answers a recurring monitor without starting Python: the
# stamp of the monitor's inputs (the parameters, the identity of the document and of the
# package's files the agent names), then the verdict the last Python run recorded with that
# stamp (envrouter.ha.ocf_memo.Verdict), each of its facts checked again. Any difference: the
# interpreter runs and decides (and records the next verdict). The facts are words without
# blanks (the Verdict refuses others), so `read` splits them back exactly; no globbing. The one
# exception, `says N TEXT` (line N of the last `run`'s output is TEXT exactly), is read into
# `b` whole: `read` keeps the blanks inside the rest of a line, and the Verdict refuses a TEXT
# with a blank at either end or a newline.
VERDICT_CHECK = r"""verdict() {
  ran=0
  { read -r rc && read -r stamp; } || return 1
  case $rc in ''|*[!0-9]*) return 1 ;; esac
  [ "$stamp" = "$ENVROUTER_OCF_INPUTS" ] || return 1
  while read -r kind a b; do
    case $kind in
      pid) { read -r p; } 2>/dev/null <"$a" || return 1
        case $p in ''|*[!0-9]*) return 1 ;; esac
        { read -r s; } 2>/dev/null <"/proc/$p/stat" || return 1
        case $s in "$p ($b) "[!ZX]*) ;; *) return 1 ;; esac ;;
      path) [ -e "$a" ] || return 1 ;;
      absent) [ ! -e "$a" ] || return 1 ;;
      line) { while read -r l || [ -n "$l" ]; do [ "$l" = "$b" ] && break; l=; done; } \
          2>/dev/null <"$a"
        [ "$l" = "$b" ] || return 1 ;;
      run) case $a in ''|*[!0-9]*) return 1 ;; esac
        case $b in @COMMANDS@) ;; *) return 1 ;; esac
        set -f; out=$(timeout "$a" $b </dev/null 2>/dev/null) || { set +f; return 1; }; set +f
        ran=1 ;;
      says) case $a in ''|*[!0-9]*) return 1 ;; esac
        [ "$ran" = 1 ] || return 1
        n=0; l=
        while IFS= read -r l; do n=$((n + 1)); [ "$n" -lt "$a" ] || break; done <<END_OF_OUTPUT
$out
END_OF_OUTPUT
        [ "$n" = "$a" ] && [ "$l" = "$b" ] || return 1 ;;
      *) return 1 ;;
    esac
  done
}
if [ "$#" = 1 ] && [ "$1" = monitor ] && [ "${OCF_RESKEY_CRM_meta_interval:-0}" != 0 ] &&
   ENVROUTER_OCF_INPUTS="@PARAMS@|$(stat -L --printf '%i:%s:%.9Y:%.9Z;' -- @FILES@ 2>/dev/null)"
then
  export ENVROUTER_OCF_INPUTS
  if verdict 2>/dev/null <"@VERDICT@"; then exit "$rc"; fi
fi
"""
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:-+=,@%")


def _sh_word(text: str) -> str:
    """text as it can stand inside sh double quotes as is (parameter names, defaults, paths)."""
    if not set(text) <= _SAFE:
        raise ValueError(f"a value the agents' launcher cannot quote: {text!r}")
    return text


def verdict_check(agent, interpreter: str | None = None) -> str:  # agent: ocf_base.Agent
    """The launcher's verdict check for a Python agent with monitor_inputs (VERDICT_CHECK)."""
    from envrouter.ha.ocf_memo import VERDICT_COMMANDS, verdict_path

    param = {p.name: f"${{OCF_RESKEY_{_sh_word(p.name)}:-{_sh_word(p.default or '')}}}"
             for p in agent.params}
    package = os.path.join(python_path(interpreter)[0], "envrouter")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = ['"' + param["document"] + '"']
    for rel in agent.monitor_inputs:
        path = f'"{_sh_word(os.path.join(package, rel))}"'
        files.append(path)
        if os.path.isdir(os.path.join(here, rel)):
            files.append(path + "/*")
    return (VERDICT_CHECK
            .replace("@COMMANDS@", "|".join(f"'{_sh_word(c)} '*" for c in VERDICT_COMMANDS))
            .replace("@PARAMS@", ";".join(f"{k}={v}" for k, v in param.items()))
            .replace("@FILES@", " ".join(files))
            .replace("@VERDICT@", verdict_path(param["run_root"], agent.name)))


def launcher_argv(name: str, interpreter: str | None = None) -> list[str]:
    """The command a Python agent's executable runs (followed by the action): the cyclic
    garbage collector off (a monitor allocates little and lives milliseconds;
    `ocf_base.load_vrouter`, where the heavy paths begin, turns it on again), the directory
    of an editable install before the standard library, site-packages after it, where site
    puts it (a standard module is then found without listing site-packages)."""
    *first, site = python_path(interpreter)
    code = "import gc; gc.disable(); import sys; "
    if first:
        code += f"sys.path[:0] = [{', '.join(_quote(p) for p in first)}]; "
    code += f"sys.path.append({_quote(site)}); {_entry(name)}"
    return [interpreter or sys.executable, "-I", "-S", "-c", code]


def install_agents(ocf_root: str = DEFAULT_OCF_ROOT, interpreter: str | None = None) -> list[str]:
    """Write every agent; returns the paths that changed (empty when already installed)."""
    target = Path(ocf_root) / "resource.d" / "envrouter"
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o755)
    changed = []
    for name in AGENTS:
        path = target / name
        if write_if_changed(path, agent_text(name, interpreter), mode=0o755):
            changed.append(str(path))
        os.chmod(path, 0o755)
    return changed
