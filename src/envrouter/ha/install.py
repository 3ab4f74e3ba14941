"""Install the OCF agents into <ocf-root>/resource.d/envrouter/ (effects)."""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP
from envrouter.files import write_if_changed

AGENTS = ("vrouter", "vip", "conntrackd", "dns", "ntp")
DEFAULT_OCF_ROOT = "/usr/lib/ocf"


# The vip agent's start, stop and monitor in /bin/sh: start and stop are on the critical path
# of every failover, monitor runs every few seconds; none of them should pay for starting
# Python (hundreds of ms, and CPU, on a busy controller). Only exit codes are used (and whether
# `ip addr show ... to IP/32` prints anything);
# whenever something is unusual (a parameter with odd characters, a missing namespace, a failed
# command) it falls through to the Python agent, which validates and reports properly.
VIP_FAST_PATH = r"""case "$1" in start|stop|monitor)
ns=${OCF_RESKEY_namespace:-vrouter}; port=$OCF_RESKEY_port; ip=$OCF_RESKEY_ip
mask=$OCF_RESKEY_cidr_netmask; gw=$OCF_RESKEY_gateway; arp=${OCF_RESKEY_arp_count:-2}
conf=$OCF_RESKEY_conntrackd_conf
case "$ns/$port/$ip/$mask/$gw/$arp/$conf" in
*[!A-Za-z0-9._/@:-]*) ;;
*) if [ -n "$port" ] && [ -n "$ip" ] && [ -n "$mask" ] && [ -e "/run/netns/$ns" ] \
      && [ "$arp" -ge 0 ] 2>/dev/null; then
  if [ "$1" = start ]; then
    # the synced flows into the kernel before any packet reaches this holder
    if [ -n "$conf" ] && [ -e "$conf" ]; then conntrackd -C "$conf" -c >/dev/null 2>&1; fi
    # address and public route in one `ip` run
    if { echo "addr replace $ip/$mask dev $port"
         [ -z "$gw" ] || echo "route replace default via $gw dev $port src $ip metric 0 proto @P@"
       } | ip -n "$ns" -batch -; then
      if [ "$arp" -gt 0 ]; then
        setsid -f nsenter --net="/run/netns/$ns" arping -q -U -c "$arp" -I "$port" "$ip" \
          </dev/null >/dev/null 2>&1
      fi
      exit 0
    fi
  elif [ "$1" = monitor ]; then
    # only whether `ip` prints the address at all (its output is not parsed)
    if held=$(ip -n "$ns" -o addr show dev "$port" to "$ip/32" 2>/dev/null); then
      [ -n "$held" ] || exit 7
      # a recurring monitor re-asserts the public route (it drifts when the link flaps)
      case "${OCF_RESKEY_CRM_meta_interval:-0}" in 0) ;; *)
        if [ -n "$gw" ]; then
          ip -n "$ns" route replace default via "$gw" dev "$port" src "$ip" metric 0 \
            proto @P@ 2>/dev/null
        fi ;;
      esac
      exit 0
    fi
  else
    # the kernel removes the public route with the address it uses as source
    ip -n "$ns" addr del "$ip/$mask" dev "$port" 2>/dev/null && exit 0
  fi
fi ;;
esac ;;
esac
""".replace("@P@", str(RTPROT_ENVROUTER_VIP))


def agent_text(name: str, interpreter: str | None = None) -> str:
    """The executable for agent `name`: a tiny sh script that prints the agent's meta-data
    itself (static, generated here: Pacemaker and ocf-tester ask for it often, the latter as
    user nobody, who may not reach the interpreter of a virtualenv) and otherwise execs the
    interpreter envrouter is installed in (sys.executable) on envrouter.ha.ocf_<name>.main.
    The vip agent does its start and stop in sh first (VIP_FAST_PATH)."""
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
        f"{VIP_FAST_PATH if name == 'vip' else ''}"
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
        if write_if_changed(path, agent_text(name, interpreter), mode=0o755):
            changed.append(str(path))
        os.chmod(path, 0o755)
    return changed
