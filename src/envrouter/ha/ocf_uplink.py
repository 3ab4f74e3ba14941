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
monitor runs every 10 s on every controller.

One implementation, in /bin/sh (`SCRIPT`, the agent; `WATCH_SCRIPT`, the watcher and the one-shot
check it writes into its run directory): no action pays for a Python start. Python only
describes the agent (`AGENT`: meta-data) and installs it (`envrouter.ha.install`).
"""

from __future__ import annotations

from envrouter.ha.ocf_base import RUN_ROOT_PARAM, Action, Agent, Param

ATTRIBUTE = "envrouter_uplink"
WATCH_TAG = "envrouter-uplink-watch"

# The watcher and the one-shot check, one script: `sh SCRIPT check|watch BRIDGE ATTR STATE
# EXCLUDE...`. Written into the run dir at start; the recurring monitor runs its check.
WATCH_SCRIPT = r"""#!/bin/sh
# @TAG@: written by ocf:envrouter:uplink
mode=$1; bridge=$2; attr=$3; state=$4; shift 4; exclude=" $* "
# shell builtins only while nothing changed (it runs at every link event and every monitor)
check() {
  set +f; up=0
  if [ -d "/sys/class/net/$bridge/brif" ]; then
    set -- "/sys/class/net/$bridge/brif/"*
  else
    set -- $(ovs-vsctl --timeout=5 list-ports "$bridge" 2>/dev/null)
  fi
  for p; do
    p=${p##*/}
    case "$exclude" in *" $p "*) continue ;; esac
    carrier=; read -r carrier < "/sys/class/net/$p/carrier" 2>/dev/null
    [ "$carrier" = 1 ] && up=1
  done
  was=; [ -e "$state" ] && read -r was < "$state"
  if [ "$up" != "$was" ]; then
    attrd_updater -n "$attr" -U "$up" -d 0 && echo "$up" > "$state"
  fi
}
check
[ "$mode" = watch ] || exit 0
ip -o monitor link | while read -r _; do check; done
""".replace("@TAG@", WATCH_TAG)

SCRIPT = r"""
bridge=$OCF_RESKEY_bridge; exclude=$OCF_RESKEY_exclude; name=${OCF_RESKEY_name:-@ATTR@}
dir=${OCF_RESKEY_run_root:-/run/envrouter}/uplink
obj="uplink${OCF_RESOURCE_INSTANCE:+ $OCF_RESOURCE_INSTANCE}"
if [ -z "$bridge" ]; then
  reason "missing required parameter(s): bridge"
  [ $probe = 1 ] && exit 7
  exit 6
fi
bad() {  # bad FIELD WHY: a wrong parameter; what that means depends on the action
  why=$(printf '%s' "$2" | tr -c '[:print:]' '?')  # one line, whatever the value holds
  if [ "$action" = stop ]; then reason "$obj: $1: $why (stop: nothing to do)"; exit 0; fi
  [ $probe = 1 ] && exit 7
  reason "$obj: $1: $why"; exit 6
}
is_name() { case $1 in ''|-*|*[!A-Za-z0-9._@:-]*) return 1 ;; esac; [ ${#1} -le 64 ]; }
is_name "$bridge" || bad bridge "not an interface name: '$bridge'"
is_name "$name" || bad name "not an attribute name: '$name'"
set -f
for p in $exclude; do is_name "$p" || bad exclude "not an interface name: '$p'"; done
case $dir in *[!A-Za-z0-9._/@:-]*) bad run_root "not a path: '$dir'" ;; esac
[ "$action" = validate-all ] && exit 0

# the tag in the script's name is in the watcher's command line (pid reuse check)
script=$dir/@TAG@.sh; pidfile=$dir/$name.pid; state=$dir/$name.state
watcher() {  # prints the watcher's pid if it runs
  pid=$(cat "$pidfile" 2>/dev/null) && [ -n "$pid" ] \
    && grep -q @TAG@ "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

case $action in
start)
  watcher >/dev/null && exit 0
  mkdir -p "$dir"
  cat > "$script" <<'END_OF_WATCH_SCRIPT'
@WATCH@END_OF_WATCH_SCRIPT
  rm -f "$state"  # write the attribute again: attrd may have lost it
  # a session of its own ($! is the session leader: the stop signals its process group);
  # $exclude unquoted: the excluded ports are words
  setsid sh "$script" watch "$bridge" "$name" "$state" $exclude \
    </dev/null >/dev/null 2>&1 &
  pid=$!
  echo "$pid" > "$pidfile"
  tries=200  # 10 s: the first check writes the attribute and the state file
  until [ -e "$state" ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ $tries -le 0 ]; then
      reason "the uplink watcher did not start"; exit 1
    fi
    tries=$((tries - 1)); sleep 0.05
  done
  exit 0 ;;
stop)
  # the loop and its ip monitor: the process group ("-PID"; dash's kill takes no "--", it
  # fails on it and signals nothing)
  if pid=$(watcher); then kill -TERM "-$pid" 2>/dev/null; fi
  rm -f "$pidfile" "$state"
  attrd_updater -n "$name" -D >/dev/null 2>&1
  exit 0 ;;
monitor)
  watcher >/dev/null || exit 7
  [ $probe = 1 ] && exit 0
  # re-assert the attribute from the carrier now: a missed event cannot leave it wrong (the
  # watcher's check, in this shell: it ends with exit 0)
  set -- check "$bridge" "$name" "$state" $exclude
  . "$script" >/dev/null 2>&1
  exit 0 ;;
esac
""".replace("@ATTR@", ATTRIBUTE).replace("@TAG@", WATCH_TAG).replace("@WATCH@", WATCH_SCRIPT)


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
    handlers={},
    script=SCRIPT,
    actions=[
        Action("start", timeout="20s"),
        Action("stop", timeout="20s"),
        Action("monitor", timeout="20s", interval="10s", depth="0"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ],
)
