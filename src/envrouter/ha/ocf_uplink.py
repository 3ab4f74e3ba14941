"""OCF agent ocf:envrouter:uplink — the carrier of the public bridge's uplink, as a node
attribute that Pacemaker sees the moment it changes.

The ping resource (ocf:pacemaker:ping against the public gateway) notices a lost upstream only
after its monitor interval, its attempts and its dampening — seconds (measured: 5.4 and 7.7 s of
outage when the holder's public link went down). A lost carrier is a fact the kernel announces
at once over netlink. This agent's start writes the attribute (``envrouter_uplink``: 1 when at
least one uplink port of the public bridge has carrier, else 0) and starts a watcher: ``ip -o
monitor link`` feeding a small sh loop that, on every link event, reads the ports' carrier from
sysfs and updates the attribute without dampening (``attrd_updater -d 0``) when it changed. The
layout bans the VIPs from a node whose ``envrouter_uplink`` is 0. Only ``ip``'s exit and its
lines as triggers are used — the state is read from ``/sys/class/net/<port>/carrier``.

The uplink ports are the bridge's ports (``/sys/class/net/<bridge>/brif``, or ``ovs-vsctl
list-ports`` for Open vSwitch) except ``exclude`` (the vrouter namespace's own port on it).

monitor: the watcher runs -> re-assert the attribute from the carrier now (a missed event
cannot leave it wrong) and 0; else 7. stop: the watcher's process group ends and the attribute
is deleted (a node without the agent has no say, the ping resource still has). The recurring
monitor runs in /bin/sh (`envrouter.ha.install.UPLINK_FAST_PATH`) without starting Python.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from envrouter.errors import InfraError, ValidationError
from envrouter.ha.ocf_base import (
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    RUN_ROOT_PARAM,
    Action,
    Agent,
    Context,
    Param,
    main_for,
)

ATTRIBUTE = "envrouter_uplink"
WATCH_TAG = "envrouter-uplink-watch"
_NAME_RE = re.compile(r"^[A-Za-z0-9._@:-]{1,64}$")

# The watcher and the one-shot check, one script: `sh SCRIPT check|watch BRIDGE ATTR STATE
# EXCLUDE...`. Written into the run dir at start (the monitor's sh fast path runs its check).
WATCH_SCRIPT = r"""#!/bin/sh
# envrouter-uplink-watch: written by ocf:envrouter:uplink
mode=$1; bridge=$2; attr=$3; state=$4; shift 4; exclude=" $* "
ports() {
  if [ -d "/sys/class/net/$bridge/brif" ]; then ls "/sys/class/net/$bridge/brif"
  else ovs-vsctl --timeout=5 list-ports "$bridge" 2>/dev/null; fi
}
check() {
  up=0
  for p in $(ports); do
    case "$exclude" in *" $p "*) continue ;; esac
    [ "$(cat "/sys/class/net/$p/carrier" 2>/dev/null)" = 1 ] && up=1
  done
  if [ "$up" != "$(cat "$state" 2>/dev/null)" ]; then
    attrd_updater -n "$attr" -U "$up" -d 0 && echo "$up" > "$state"
  fi
}
check
[ "$mode" = watch ] || exit 0
ip -o monitor link | while read -r _; do check; done
"""


def _paths(ctx: Context) -> tuple[str, str, str, str]:
    """(directory, script, pid file, state file) under run_root."""
    d = os.path.join(ctx.params.get("run_root", "/run/envrouter"), "uplink")
    name = ctx.params.get("name", ATTRIBUTE)
    # the tag in the script's name is in the watcher's command line (pid reuse check)
    return d, os.path.join(d, f"{WATCH_TAG}.sh"), os.path.join(d, f"{name}.pid"), \
        os.path.join(d, f"{name}.state")


def _params(ctx: Context) -> tuple[str, str, list[str]]:
    obj = f"uplink {ctx.env.get('OCF_RESOURCE_INSTANCE', '')}".strip()
    bridge = ctx.params["bridge"]
    if not _NAME_RE.match(bridge):
        raise ValidationError(obj, "bridge", f"not an interface name: {bridge!r}")
    name = ctx.params.get("name", ATTRIBUTE)
    if not _NAME_RE.match(name):
        raise ValidationError(obj, "name", f"not an attribute name: {name!r}")
    exclude = (ctx.params.get("exclude") or "").split()
    for port in exclude:
        if not _NAME_RE.match(port):
            raise ValidationError(obj, "exclude", f"not an interface name: {port!r}")
    return bridge, name, exclude


def _watcher_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if WATCH_TAG.encode() in f.read():
                return pid
    except (OSError, ValueError):
        pass
    return None


def _argv(ctx: Context, mode: str) -> list[str]:
    bridge, name, exclude = _params(ctx)
    _, script, _, state = _paths(ctx)
    return ["sh", script, mode, bridge, name, state, *exclude]


def validate(ctx: Context) -> int:
    _params(ctx)
    return OCF_SUCCESS


def start(ctx: Context) -> int:
    d, script, pidfile, state = _paths(ctx)
    _params(ctx)
    if _watcher_pid(pidfile) is not None:
        return OCF_SUCCESS
    os.makedirs(d, exist_ok=True)
    with open(script, "w") as f:
        f.write(WATCH_SCRIPT)
    if os.path.exists(state):
        os.unlink(state)  # write the attribute again: attrd may have lost it
    proc = subprocess.Popen(_argv(ctx, "watch"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    with open(pidfile, "w") as f:
        f.write(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while not os.path.exists(state):  # the first check wrote the attribute
        if proc.poll() is not None or time.monotonic() > deadline:
            raise InfraError(f"the uplink watcher did not start (exit {proc.poll()})")
        time.sleep(0.05)
    return OCF_SUCCESS


def stop(ctx: Context) -> int:
    _, _, pidfile, state = _paths(ctx)
    _, name, _ = _params(ctx)
    pid = _watcher_pid(pidfile)
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGTERM)  # the sh loop and its `ip monitor`
        except ProcessLookupError:
            pass
    for path in (pidfile, state):
        if os.path.exists(path):
            os.unlink(path)
    subprocess.run(["attrd_updater", "-n", name, "-D"], capture_output=True, timeout=20,
                   check=False)
    return OCF_SUCCESS


def monitor(ctx: Context) -> int:
    _, _, pidfile, _ = _paths(ctx)
    _params(ctx)
    if _watcher_pid(pidfile) is None:
        return OCF_NOT_RUNNING
    if not ctx.is_probe:
        subprocess.run(_argv(ctx, "check"), capture_output=True, timeout=20, check=False)
    return OCF_SUCCESS


AGENT = Agent(
    name="uplink",
    shortdesc="Carrier of the public bridge's uplink as a node attribute",
    longdesc="Sets the node attribute (default envrouter_uplink) to 1 while at least one "
    "uplink port of the bridge has carrier, 0 otherwise, at once on every link change "
    "(netlink, ip monitor), so the VIPs leave a node whose public link is down without "
    "waiting for a ping monitor.",
    params=[
        Param("bridge", "bridge", "The public bridge whose uplink ports are watched.",
              required=True),
        Param("exclude", "excluded ports", "Space-separated ports of the bridge that are not "
              "uplinks (the vrouter namespace's own port).", default=""),
        Param("name", "attribute", "Name of the node attribute.", default=ATTRIBUTE),
        RUN_ROOT_PARAM,
    ],
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate},
    actions=[
        Action("start", timeout="20s"),
        Action("stop", timeout="20s"),
        Action("monitor", timeout="20s", interval="10s", depth="0"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ],
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
