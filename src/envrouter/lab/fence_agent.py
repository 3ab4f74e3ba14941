"""fence_envrouter_lab: a fence agent for the lab's power switch (standard library only).

It follows the fence-agents conventions (Debian's `fence-agents`, `fencing.py`):

- options as ``name=value`` lines on stdin when called without arguments (how Pacemaker's
  fencer calls it), or as command-line options (``-o/--action``, ``-n/--plug``, ``--socket``,
  ``--method``), how an operator calls it; ``port`` is the old name of ``plug``, ``option``
  the old name of ``action``; ``nodename`` (passed by the fencer) is accepted and ignored;
- actions ``on``, ``off``, ``reboot``, ``status``, ``monitor``, ``list``, ``list-status``,
  ``metadata`` (also ``meta-data``) and ``validate-all``;
- exit status 0 on success; ``status``: 0 = on, 2 = off; 1 = the switch failed or is not
  reachable; 2 = bad arguments (EC_BAD_ARGS);
- ``reboot`` with ``method=onoff`` (default) is off, then on (a failed on after a good off is
  still a successful fencing, as in fencing.py); ``method=cycle`` asks the switch for one power
  cycle: it answers once the node is off and powers it on by itself.

What the fencer runs on a failover's path (reboot, off, on, status and monitor, options on
stdin) the executable Pacemaker finds (`wrapper_text`) does in sh, one request through `nc -U`
(`FAST_PATH`); this module is the reference and does the rest.

The switch is `envrouter.lab.power_switch`, a process in the machine's own namespaces (nothing
inside a node can reach the lab's power control itself); the agent, running inside a
controller, talks to it over a unix socket in the lab's state dir (a path, so it crosses the
network namespaces). One JSON request per connection: ``{"action": ..., "plug": ...}`` ->
``{"ok": bool, "status": "on"|"off", "plugs": {...}, "error": str}``.
"""

from __future__ import annotations

import getopt
import html
import json
import os
import socket
import sys
from typing import Any

NAME = "fence_envrouter_lab"
EC_OK, EC_GENERIC_ERROR, EC_BAD_ARGS = 0, 1, 2
EC_STATUS_OFF = 2
ACTIONS = ("on", "off", "reboot", "status", "monitor", "list", "list-status", "metadata",
           "validate-all")
METHODS = ("onoff", "cycle")
REQUEST_TIMEOUT = 60.0  # s: a power-off of a lab node takes well under a second

# name -> (short option, help, default); what metadata describes and both inputs accept
PARAMETERS: dict[str, tuple[str, str, str | None]] = {
    "action": ("o:", "Fencing action", "reboot"),
    "plug": ("n:", "The lab node to act on (its name, e.g. ctl2)", None),
    "socket": ("", "The lab power switch's unix socket (<state dir>/power.sock)", None),
    "method": ("m:", "Method to fence: onoff (off, then on) or cycle (one power cycle by the "
                     "switch, which answers once the node is off)", "onoff"),
    "timeout": ("", "Seconds to wait for the switch", str(int(REQUEST_TIMEOUT))),
}
ALIASES = {"port": "plug", "option": "action"}
IGNORED = ("nodename", "verbose", "debug")


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _attr(value: str) -> str:
    # not xml.sax.saxutils: it imports urllib and http (~0.1 s at every fencing)
    return '"' + html.escape(value, quote=True) + '"'


class SwitchFailed(Exception):
    """The power switch did not do what was asked (or could not be reached)."""


class BadArgs(Exception):
    pass


def request(socket_path: str, action: str, plug: str | None = None,
            timeout: float = REQUEST_TIMEOUT, by: str | None = None) -> dict[str, Any]:
    """One request to the power switch; its JSON answer (raises OSError/ValueError). `by`
    names who asks (the switch records power actions with it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path)
        s.sendall(json.dumps({"action": action, "plug": plug, "by": by}).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answer = json.loads(data.decode() or "null")
    if not isinstance(answer, dict):
        raise ValueError(f"the power switch answered {data[:200]!r}")
    return answer


def parse_stdin(text: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        name = ALIASES.get(name.strip().replace("-", "_"), name.strip().replace("-", "_"))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name in PARAMETERS:
            opts[name] = value
        elif name not in IGNORED and not name.startswith("pcmk_"):
            print(f"Parse error: Ignoring unknown option '{line}'", file=sys.stderr)
    return opts


def parse_argv(argv: list[str]) -> dict[str, str]:
    short = "".join(s for s, _, _ in PARAMETERS.values()) + "h"
    longs = [f"{n}=" for n in PARAMETERS] + ["port=", "help", "verbose", "debug-file="]
    try:
        pairs, rest = getopt.gnu_getopt(argv, short, longs)
    except getopt.GetoptError as exc:
        raise BadArgs(str(exc)) from exc
    if rest:
        raise BadArgs(f"unexpected arguments: {' '.join(rest)}")
    by_short = {f"-{s[0]}": n for n, (s, _, _) in PARAMETERS.items() if s}
    opts: dict[str, str] = {}
    for flag, value in pairs:
        if flag in ("-h", "--help"):
            opts["help"] = "1"
            continue
        if flag in ("--verbose", "--debug-file"):
            continue
        name = by_short.get(flag) or ALIASES.get(flag[2:], flag[2:])
        opts[name] = value
    return opts


def metadata() -> str:
    lines = [
        '<?xml version="1.0" ?>',
        f'<resource-agent name="{NAME}" shortdesc="Fence agent for the envrouter lab\'s '
        'power switch">',
        "<longdesc>Powers a node of the envrouter lab off and on through the lab's power "
        "switch (envrouter.lab.power_switch), which runs outside the nodes and does what "
        "a power-off does to a lab node: cables down, every process killed, the node's "
        "network namespace deleted; power-on recreates it and boots its services.</longdesc>",
        "<vendor-url>https://github.com/ClusterLabs/fence-agents</vendor-url>",
        "<parameters>",
    ]
    for name, (short, text, default) in PARAMETERS.items():
        required = "1" if name in ("plug", "socket") else "0"
        mixed = f"-{short[0]}, --{name}=[value]" if short else f"--{name}=[value]"
        dflt = f" default={_attr(default)}" if default is not None else ""
        lines += [
            f'\t<parameter name="{name}" unique="0" required="{required}">',
            f"\t\t<getopt mixed={_attr(mixed)} />",
            f'\t\t<content type="string"{dflt} />',
            f'\t\t<shortdesc lang="en">{_text(text)}</shortdesc>',
            "\t</parameter>",
        ]
    lines += ['\t<parameter name="port" unique="0" required="0" deprecated="1">',
              '\t\t<getopt mixed="-n, --plug=[id]" />', '\t\t<content type="string" />',
              '\t\t<shortdesc lang="en">The lab node to act on (old name of plug)</shortdesc>',
              "\t</parameter>", "</parameters>", "<actions>"]
    lines += [f'\t<action name="{a}" />' for a in ("on", "off", "reboot", "status", "list",
                                                   "list-status", "monitor", "metadata",
                                                   "validate-all")]
    lines += ["</actions>", "</resource-agent>"]
    return "\n".join(lines) + "\n"


def usage() -> str:
    out = [f"Usage: {NAME} [options]  (or name=value lines on stdin)", "Options:"]
    for name, (short, text, default) in PARAMETERS.items():
        flag = f"-{short[0]}, --{name}" if short else f"    --{name}"
        out.append(f"   {flag:<18} {text}" + (f" (default {default})" if default else ""))
    out.append(f"Actions: {', '.join(ACTIONS)}")
    return "\n".join(out)


def run(opts: dict[str, str]) -> int:
    action = opts.get("action", "reboot").lower()
    if action == "meta-data":
        action = "metadata"
    if action not in ACTIONS:
        raise BadArgs(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if action == "metadata":
        sys.stdout.write(metadata())
        return EC_OK
    method = opts.get("method", "onoff").lower()
    if method not in METHODS:
        raise BadArgs(f"method: {method!r} is not one of {', '.join(METHODS)}")
    path = opts.get("socket")
    if not path:
        raise BadArgs("socket: the power switch's socket is required")
    plug = opts.get("plug")
    if action not in ("list", "list-status", "monitor") and not plug:
        raise BadArgs(f"plug: required for {action}")
    try:
        timeout = float(opts.get("timeout", REQUEST_TIMEOUT))
    except ValueError as exc:
        raise BadArgs(f"timeout: {opts['timeout']!r} is not a number") from exc
    if action == "validate-all":
        return EC_OK

    # the node running the agent (inside a lab node, its UTS namespace's hostname); the
    # fencer's `nodename` is the target, as in the RHCS conventions
    by = f"{NAME}@{socket.gethostname()}"

    def ask(what: str) -> dict[str, Any]:
        try:
            answer = request(path, what, plug, timeout, by)
        except (OSError, ValueError) as exc:
            raise SwitchFailed(f"the lab power switch at {path}: {exc}") from exc
        if not answer.get("ok"):
            raise SwitchFailed(f"{what} {plug or ''}: {answer.get('error')}")
        return answer

    if action in ("list", "list-status", "monitor"):
        plugs = ask("list").get("plugs") or {}
        if action != "monitor":
            for name, status in sorted(plugs.items()):
                print(f"{name},{name}" + (f",{status.upper()}" if action == "list-status"
                                          else ""))
        return EC_OK
    if action == "status":
        status = ask("status")["status"]
        print(f"Status: {status.upper()}")
        return EC_OK if status == "on" else EC_STATUS_OFF
    if action in ("on", "off"):
        if ask("status")["status"] == action:
            print(f"Success: Already {action.upper()}")
            return EC_OK
        ask(action)
        print(f"Success: Powered {action.upper()}")
        return EC_OK
    # reboot
    if method == "cycle":
        ask("cycle")
    else:
        ask("off")
        try:
            ask("on")
        except SwitchFailed as exc:
            # the node is off: the fencing succeeded (fencing.py does the same)
            print(f"Failed: {exc}", file=sys.stderr)
            print("Timed out waiting to power ON", file=sys.stderr)
    print("Success: Rebooted")
    return EC_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        opts = parse_argv(args) if args else parse_stdin(sys.stdin.read())
        if "help" in opts:
            print(usage())
            return EC_OK
        return run(opts)
    except (BadArgs, SwitchFailed) as exc:
        print(f"Failed: {exc}", file=sys.stderr)
        return EC_BAD_ARGS if isinstance(exc, BadArgs) else EC_GENERIC_ERROR


# The fencer's path in sh (see `wrapper_text`): what it runs on every fencing (reboot, off,
# on, status) and every device start and monitor (monitor), from name=value lines on stdin.
# One request to the switch through `nc -U` (Debian netcat-openbsd, a lab tool): no
# interpreter start. Anything else (list, list-status, validate-all, command-line options, a
# value outside the plain forms below) goes to the Python module, the reference for the
# conventions; the answers and exit codes are the same.
FAST_PATH = r"""
action=reboot plug= sock= method=onoff timeout=60 other=
while IFS= read -r line; do
  case $line in
    action=*|option=*) action=${line#*=} ;;
    plug=*|port=*) plug=${line#*=} ;;
    socket=*) sock=${line#*=} ;;
    method=*) method=${line#*=} ;;
    timeout=*) timeout=${line#*=} ;;
    nodename=*|pcmk_*|'') ;;
    *) other=1 ;;
  esac
done <<END_OF_INPUT
$input
END_OF_INPUT
case $action in metadata|meta-data) meta; exit 0 ;; esac
fast=1
case $action in reboot|off|on|status|monitor) ;; *) fast= ;; esac
case $method in cycle|onoff) ;; *) fast= ;; esac
case $plug in *[!A-Za-z0-9_.-]*) fast= ;; '') [ "$action" = monitor ] || fast= ;; esac
case $sock in ''|*[!A-Za-z0-9_./-]*) fast= ;; esac
case $timeout in ''|*[!0-9]*) fast= ;; esac
[ -z "$other" ] && [ -n "$fast" ] && command -v nc >/dev/null 2>&1 || fast=
if [ -n "$fast" ]; then
  read -r host < /proc/sys/kernel/hostname || host=unknown
  ask() {
    # one JSON request, one answer; the switch closes the connection once it answered
    answer=$(printf '{"action": "%s", "plug": "%s", "by": "%s@%s"}\n' "$1" "$plug" \
             "$NAME" "$host" | nc -N -w "$timeout" -U "$sock" 2>/dev/null)
    case $answer in
      *'"ok": true'*) return 0 ;;
    esac
    echo "Failed: $1 $plug: the lab power switch at $sock answered: ${answer:-nothing}" >&2
    return 1
  }
  status_of() { case $answer in *'"status": "on"'*) echo on ;; *) echo off ;; esac; }
  case $action in
    monitor) ask list || exit 1 ;;
    status)
      ask status || exit 1
      st=$(status_of)
      if [ "$st" = on ]; then echo "Status: ON"; exit 0; fi
      echo "Status: OFF"; exit 2 ;;
    on|off)
      ask status || exit 1
      if [ "$(status_of)" = "$action" ]; then
        echo "Success: Already $(echo "$action" | tr a-z A-Z)"; exit 0
      fi
      ask "$action" || exit 1
      echo "Success: Powered $(echo "$action" | tr a-z A-Z)" ;;
    reboot)
      if [ "$method" = cycle ]; then
        ask cycle || exit 1
      else
        ask off || exit 1
        ask on || { echo "Timed out waiting to power ON" >&2; }
      fi
      echo "Success: Rebooted" ;;
  esac
  exit 0
fi
"""


def wrapper_text(interpreter: str) -> str:
    """The executable Pacemaker finds in /usr/sbin (inside the controllers): a sh script that
    prints the metadata itself (static, written here: Pacemaker's controller asks for it as
    user hacluster, who may not reach the interpreter of a virtualenv — each refusal cost a
    retry a second later inside the controller, on the failover's path), runs the fencer's
    actions itself (`FAST_PATH`: a Python start cost 0.1-0.5 s per fencing on the loaded lab,
    docs/ha.md "Open vSwitch") and otherwise execs this file with the interpreter envrouter is
    installed in."""
    def quote(word: str) -> str:
        return "'" + word.replace("'", "'\\''") + "'"

    # the module as a script, isolated and without site (-I -S): it needs only the standard
    # library, and the virtualenv's site (.pth files, the editable finder) cost a tenth of a
    # second at every fencing on a busy controller
    python, script = quote(interpreter), quote(os.path.abspath(__file__))
    return (
        "#!/bin/sh\n"
        f"# {NAME}: the envrouter lab's fence agent (envrouter.lab.fence_agent)\n"
        f"NAME={NAME}\n"
        "meta() {\ncat <<'END_OF_METADATA'\n" + metadata() + "END_OF_METADATA\n}\n"
        'if [ $# -gt 0 ]; then\n'
        '  case " $* " in *" -o metadata "*|*" -o meta-data "*|*" --action=metadata "*|'
        '*" --action metadata "*) meta; exit 0 ;; esac\n'
        f'  exec {python} -I -S {script} "$@"\n'
        "fi\n"
        "input=$(cat)\n"
        + FAST_PATH +
        f"printf '%s\\n' \"$input\" | exec {python} -I -S {script}\n"
    )


if __name__ == "__main__":
    sys.exit(main())
