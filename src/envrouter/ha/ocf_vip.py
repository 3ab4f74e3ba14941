"""OCF agent ocf:envrouter:vip — one VIP inside the vrouter namespace, IPv4 or IPv6.

start: with ``conntrackd_conf`` set and present, first commit the node's conntrackd external
cache into the kernel (``conntrackd -C CONF -c``; the synced flows must be known before their
packets arrive here, or the new holder resets them); then the address on the port and, for the
public VIP (``gateway`` set), the default route via the public gateway with the VIP as source,
in one ``ip -batch`` (``replace``: idempotent); then the announcement, from a detached process
(always, even when the address was present): gratuitous ARP (``arping``) for IPv4, unsolicited
neighbour advertisements for IPv6. stop removes them. monitor: address present -> 0, else 7; a
recurring monitor re-asserts the public route (it drifts when the link flaps) rather than
reporting it.

IPv6, and why it differs:
- the address must be usable at once: duplicate address detection would keep it tentative (not
  usable, not announced) for a second or more; a VIP is never held twice on purpose (fencing
  covers the hung holder, as for IPv4). The start turns DAD off on the port (``accept_dad`` 0;
  the VIP is added only where ``all`` is 0 too) and ``ndisc_notify`` on, and adds the address
  without ``nodad``: the kernel completes it at once and then itself sends one unsolicited
  neighbour advertisement to all nodes (ff02::1) with the router flag (forwarding is on), the
  override flag and the target's link-layer address — the moment the address is usable, with
  no process to start (na6 took 15-40 ms to send its first NA on an idle machine, 70-300 ms
  under the lab's load: its libpcap ring buffer; docs/ha.md). For a ``nodad`` address the
  kernel sends none;
- the other ``arp_count`` - 1 NAs come a second apart from ``na6`` (Debian package
  ipv6toolkit: the one tool there that sets the router flag; resource-agents' ``send_ua`` sets
  override only). Where the kernel will not announce (DAD on for ``all``, a sysctl that cannot
  be written, a start that finds the VIP already there) the address is added ``nodad`` and na6
  sends all ``arp_count`` at once and a second apart. Override makes a neighbour replace the
  old holder's MAC at once; without it the neighbour keeps it until unreachability detection
  gives up, the 30-45 s IPv6 failovers peers report; one NA may be lost, hence the repeats;
- the public route's source must be a usable address, which the kernel completes from its
  work queue (late on a busy controller; a second later if DAD still runs on an address
  that was there already). Forwarding needs no source: when the route with the source is
  refused, the start adds it without, and a detached process sets the source as soon as the
  kernel allows (every 10 ms, at most 5 s; a recurring monitor re-asserts it too). Before,
  the start waited for it: 1.3 s for a start that found the VIP tentative;
- the kernel keeps an IPv6 route whose source address goes away (it only clears the source),
  so stop deletes the public route itself; and it turns metric 0 into 1024 for IPv6 (where a
  router advertisement's default route would sit too), so the public IPv6 route has metric 1.

One implementation, in /bin/sh (`SCRIPT`): the VIP start and stop are on the critical path of
every failover and the monitor runs every 2 s, so none of them may pay for a Python start
(0.2-0.3 s of CPU with the package's imports, docs/ha.md "Agent cost"). Python only describes
the agent (`AGENT`: meta-data, the parameters Pacemaker passes) and installs it
(`envrouter.ha.install`). Only exit codes are used, and whether `ip ... show` with a selector
prints anything; its output is never parsed. The address family is chosen in one place
(`family` in SCRIPT).
"""

from __future__ import annotations

from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP
from envrouter.ha.ocf_base import Agent, Param, basic_actions

SCRIPT = r"""
ns=${OCF_RESKEY_namespace:-vrouter}; port=$OCF_RESKEY_port; ip=$OCF_RESKEY_ip
mask=$OCF_RESKEY_cidr_netmask; gw=$OCF_RESKEY_gateway; arp=${OCF_RESKEY_arp_count:-2}
conf=$OCF_RESKEY_conntrackd_conf
obj="vip${OCF_RESOURCE_INSTANCE:+ $OCF_RESOURCE_INSTANCE}"
proto=@PROTO@

missing=
[ -n "$port" ] || missing="$missing, port"
[ -n "$ip" ] || missing="$missing, ip"
[ -n "$mask" ] || missing="$missing, cidr_netmask"
if [ -n "$missing" ]; then
  reason "missing required parameter(s): ${missing#, }"
  # a probe must not fail on configuration it does not need to answer "not running"
  [ $probe = 1 ] && exit 7
  exit 6
fi

# bad FIELD WHY: a wrong parameter; what that means depends on the action
bad() {
  why=$(printf '%s' "$2" | tr -c '[:print:]' '?')  # one line, whatever the value holds
  if [ "$action" = stop ]; then
    # stop must not fail on a bad configuration: nothing valid can be running
    reason "$obj: $1: $why (stop: nothing to do)"; exit 0
  fi
  [ $probe = 1 ] && exit 7
  reason "$obj: $1: $why"; exit 6
}
is_ipv4() {
  case $1 in ''|*[!0-9.]*|.*|*.|*..*) return 1 ;; esac
  set -f; old_ifs=$IFS; IFS=.; set -- $1; IFS=$old_ifs; set +f
  [ $# -eq 4 ] || return 1
  for octet; do
    case $octet in 0|[1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]) ;; *) return 1 ;; esac
  done
}
is_ipv6() {  # a plain IPv6 address (no scope id, no dotted quad); `ip` has the last word
  case $1 in ''|*[!0-9A-Fa-f:]*|*:::*|*::*::*|:[!:]*|*[!:]:) return 1 ;; esac
  case $1 in *[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]*) return 1 ;; esac
  rest=$1; colons=0
  while :; do
    case $rest in *:*) rest=${rest#*:}; colons=$((colons + 1)) ;; *) break ;; esac
  done
  case $1 in *::*) [ $colons -ge 2 ] && [ $colons -le 7 ] ;; *) [ $colons -eq 7 ] ;; esac
}
is_name() {  # an interface or namespace name: nothing a command could take for something else
  case $1 in ''|-*|*[!A-Za-z0-9._@:-]*) return 1 ;; esac
  [ ${#1} -le "$2" ]
}

case $ip in
  *:*) family=6 ;;
  *) family=4 ;;
esac
# per family: the host prefix length, the public route's metric (IPv6 turns 0 into 1024, the
# metric of a router advertisement's default route), how the address is added, the announcer
case $family in
  4) hostlen=32 metric=0 announcer=arping announcer_pkg=iputils-arping
     is_ipv4 "$ip" || bad ip "not an IPv4 address: '$ip'"
     [ -z "$gw" ] || is_ipv4 "$gw" || bad gateway "not an IPv4 address: '$gw'" ;;
  6) hostlen=128 metric=1 announcer=na6 announcer_pkg=ipv6toolkit
     is_ipv6 "$ip" || bad ip "not an IPv6 address: '$ip'"
     [ -z "$gw" ] || is_ipv6 "$gw" || bad gateway "not an IPv6 address (the VIP is): '$gw'" ;;
esac
case $mask in ''|*[!0-9]*) bad cidr_netmask "not a prefix length: '$mask'" ;; esac
[ "$mask" -ge 1 ] && [ "$mask" -le $hostlen ] || bad cidr_netmask "not a prefix length: '$mask'"
case $arp in ''|*[!0-9]*) bad arp_count "not a count: '$arp'" ;; esac
is_name "$port" 15 || bad port "not an interface name: '$port'"
is_name "$ns" 64 && [ "$ns" != . ] && [ "$ns" != .. ] || bad namespace "not a namespace name: '$ns'"
case $conf in -*|*[!A-Za-z0-9._/@:-]*) bad conntrackd_conf "not a path: '$conf'" ;; esac
[ "$action" = validate-all ] && exit 0

netns=/run/netns/$ns
# held: the kernel shows the VIP on the port (ip exits non-zero if the port does not exist)
held() {
  out=$(ip -n "$ns" -o addr show dev "$port" to "$ip/$hostlen" 2>/dev/null) && [ -n "$out" ]
}
public_route() {
  echo "route replace default via $gw dev $port src $ip metric $metric proto $proto"
}
announce() {  # the first at once, repeats a second apart, without waiting for them
  [ "$arp" -gt 0 ] || return 0
  setsid -f nsenter --net="$netns" arping -q -U -c "$arp" -I "$port" "$ip" \
    </dev/null >/dev/null 2>&1
}
# IPv6 start, run inside the namespace (nsenter: sh, then ip): the kernel announces the VIP
# itself at the moment it becomes usable. With duplicate address detection off on the port
# (accept_dad 0 there and for `all`) an address added without `nodad` is completed at once
# from the kernel's work queue, and with ndisc_notify 1 the kernel then sends one unsolicited
# NA to ff02::1 for it: router flag (forwarding is on), override flag, the target's link-layer
# address. No process to start for the first NA (na6 took 15-40 ms to send it: libpcap's ring
# buffer). The repeats, a second apart, come from na6. Where the kernel will not announce (a
# start that finds the address already there, or sysctls it cannot set), the address is added
# `nodad` and na6 sends the first NA at once, as before.
# Arguments: port ip mask count gateway(or empty) metric proto
START6='port=$1 ip=$2 mask=$3 n=$4 gw=$5; c=/proc/sys/net/ipv6/conf
first=1 all=
{ read -r all <$c/all/accept_dad; } 2>/dev/null  # (dash: status 1 at the end of a sysctl)
if [ "$all" = 0 ] && { echo 0 >$c/$port/accept_dad && echo 1 >$c/$port/ndisc_notify; } 2>/dev/null \
   && ip addr add "$ip/$mask" dev "$port" 2>/dev/null; then
  first=0  # the kernel sends it
else
  ip addr replace "$ip/$mask" dev "$port" nodad || exit 1
fi
pin=
if [ -n "$gw" ]; then
  # A route source must be a usable address, and the kernel may not have completed it yet
  # (from its work queue, late on a busy controller; a second where DAD still runs on it).
  # Forwarding does not need the source: the route goes in at once without it, and the
  # source (the VIP, for the namespace'"'"'s own traffic) follows in the background.
  if ! ip route replace default via "$gw" dev "$port" src "$ip" metric $6 proto $7 2>/dev/null
  then
    ip route replace default via "$gw" dev "$port" metric $6 proto $7 || exit 1
    pin=1
  fi
fi
[ "$first" = 1 ] || n=$((n - 1))
[ -n "$pin" ] || [ "$n" -gt 0 ] || exit 0
# In the background: the route'"'"'s source (tried every 10 ms for at most 5 s; it fails for
# good once the address is gone, so a stop meanwhile is not undone; a recurring monitor
# re-asserts it too), then the unsolicited NAs to all nodes: router and override flags, the
# target link-layer address.
setsid -f sh -c '"'"'n=$1 first=$2 pin=$3 gw=$4 metric=$5 proto=$6; shift 6
  port=$2 ip=$4 i=0  # from the na6 arguments: -i PORT -s IP ...
  while [ -n "$pin" ] && [ $i -lt 500 ] && ! ip route replace default via "$gw" dev "$port" \
      src "$ip" metric "$metric" proto "$proto" 2>/dev/null; do i=$((i + 1)); sleep 0.01; done
  [ "$n" -gt 0 ] || exit 0
  [ "$first" = 1 ] || sleep 1
  while na6 "$@" >/dev/null 2>&1; n=$((n - 1)); [ "$n" -gt 0 ]; do sleep 1; done'"'"' \
  na6 "$n" "$first" "$pin" "$gw" $6 $7 -i "$port" -s "$ip" -d ff02::1 -t "$ip" -r -o -e \
  </dev/null >/dev/null 2>&1'

case $action in
start)
  command -v ip >/dev/null || { reason "ip: not installed (Debian package iproute2)"; exit 5; }
  if [ "$arp" -gt 0 ] && ! command -v $announcer >/dev/null; then
    reason "$announcer: not installed (Debian package $announcer_pkg)"; exit 5
  fi
  [ -e "$netns" ] || { reason "network namespace '$ns' does not exist"; exit 1; }
  if [ -n "$conf" ] && [ -e "$conf" ]; then
    # not running (yet): nothing to commit, the VIP must still start
    out=$(conntrackd -C "$conf" -c 2>&1) || echo "warning: conntrackd commit: $out" >&2
  fi
  if [ $family = 6 ]; then
    out=$(nsenter --net="$netns" sh -c "$START6" start6 "$port" "$ip" "$mask" "$arp" "$gw" \
          $metric $proto 2>&1) || { reason "adding $ip/$mask on $port in $ns: $out"; exit 1; }
    exit 0
  fi
  if ! out=$({ echo "addr replace $ip/$mask dev $port"; [ -z "$gw" ] || public_route; } \
             | ip -n "$ns" -batch - 2>&1); then
    reason "adding $ip/$mask on $port in $ns: $out"; exit 1
  fi
  announce
  exit 0 ;;
stop)
  [ -e "$netns" ] || exit 0
  if [ $family = 6 ] && [ -n "$gw" ]; then
    # the kernel keeps an IPv6 route whose source address goes away (it clears the source):
    # the route goes first, in the same ip run (-force: on with the address if it is gone)
    # One command on the critical path: both removed (status 0) is the whole stop; only when
    # one of them failed (gone already: a stop on a stopped VIP) does the agent look again.
    printf '%s\n' "route del default via $gw dev $port metric $metric proto $proto" \
      "addr del $ip/$mask dev $port" | ip -n "$ns" -force -batch - >/dev/null 2>&1 && exit 0
    if held; then reason "cannot remove $ip/$mask from $port in $ns"; exit 1; fi
    out=$(ip -n "$ns" route show default via "$gw" dev "$port" proto $proto 2>/dev/null)
    [ -z "$out" ] || { reason "cannot remove the default route via $gw in $ns"; exit 1; }
    exit 0
  fi
  # one command on the critical path of a switchover: the kernel removes the public IPv4
  # route with the address it uses as source (a route's source must be a local address)
  ip -n "$ns" addr del "$ip/$mask" dev "$port" 2>/dev/null && exit 0
  if held; then reason "cannot remove $ip/$mask from $port in $ns"; exit 1; fi
  exit 0 ;;  # it was not there
monitor)
  [ -e "$netns" ] || exit 7
  if [ $probe = 0 ] && [ -n "$gw" ]; then
    # one ip run: is the address held (does `show` print it), and the public route re-asserted
    # (it drifts when the link flaps; replacing it by itself changes nothing). Without the
    # address the replace fails too: a route's source must be a local address.
    out=$({ echo "addr show dev $port to $ip/$hostlen"; public_route; } \
          | ip -o -n "$ns" -batch - 2>/dev/null)
    rc=$?
    [ -n "$out" ] || exit 7
    [ $rc = 0 ] || echo "warning: cannot re-assert the default route via $gw in $ns" >&2
    exit 0
  fi
  held || exit 7
  exit 0 ;;
esac
""".replace("@PROTO@", str(RTPROT_ENVROUTER_VIP))


AGENT = Agent(
    name="vip",
    shortdesc="A virtual IP inside the vrouter namespace",
    longdesc="Adds an address to a port of the vrouter namespace and announces it "
    "(gratuitous ARP for IPv4; for IPv6 the address is made usable at once, without duplicate "
    "address detection, and announced by unsolicited neighbour advertisements, the first from "
    "the kernel); for a public VIP also the namespace's default route via the "
    "public gateway (source the VIP; metric 0 for IPv4, which wins over the agent's fallback "
    "route via the host link, metric 1 for IPv6).",
    params=[
        Param("namespace", "namespace", "Network namespace of the vrouter.", default="vrouter"),
        Param("port", "port", "Interface in the namespace that carries the VIP.", required=True),
        Param("ip", "address", "The VIP (IPv4 or IPv6; an IPv6 one skips DAD).",
              required=True, unique=True),
        Param("cidr_netmask", "prefix length", "Prefix length of the VIP.", type="integer",
              required=True),
        Param("gateway", "public gateway",
              "If set: the default route via this gateway (of the VIP's family), source the "
              "VIP (public VIPs only)."),
        Param("arp_count", "announcements", "Number of announcements sent on start, a second "
              "apart: gratuitous ARPs (IPv4) or unsolicited neighbour advertisements with the "
              "router and override flags (IPv6).", type="integer", default="2"),
        Param("conntrackd_conf", "conntrackd configuration",
              "If set and present: the configuration of this node's conntrackd instance, whose "
              "external cache is committed into the kernel before the address is added."),
    ],
    handlers={},
    actions=basic_actions(start="20s", stop="20s", monitor="20s", interval="2s"),
    script=SCRIPT,
)
