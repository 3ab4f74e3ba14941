"""OCF agent ocf:envrouter:vip — the vrouter's VIPs inside its namespace, one resource for all.

One resource carries every VIP of the vrouter (parameter ``addresses``: ``PORT,ADDRESS/PREFIX``
entries, ``,GATEWAY`` on a public VIP; IPv4 and IPv6 alike), as keepalived's one VRRP instance
per router carries all its addresses: they always move together (one holder for both families,
one conntrackd table), and a switchover is then one stop on the old holder and one start on
the new one instead of one per VIP. Four VIP agents at once on the same cores, each stop and
start an action of its own with its CIB update, took 60-177 ms of execution each on the lab
(docs/ha.md, "One resource for the VIPs").

start: with ``conntrackd_conf`` set and present, first commit the node's conntrackd external cache
into the kernel (``conntrackd -C CONF -c``; the synced flows must be known before their packets
arrive here, or the new holder resets them); then every address, and for a public VIP (a gateway
given) the family's default route via the public gateway with the VIP as source, in one ``ip
-batch`` inside the namespace (``replace``: idempotent; the IPv6 route without its source at first,
see below); then the announcements, from detached processes (always, even when the addresses were
present): gratuitous ARP (``arping``) for IPv4, unsolicited neighbour advertisements for IPv6. stop
removes the addresses in one ``ip -batch`` (the public IPv6 route a few seconds later, see below).
monitor: every address present -> 0, none -> 7, some -> 1 (failed: Pacemaker stops the rest and
starts again); a recurring monitor re-asserts the public routes (they drift when the link flaps)
rather than reporting them. The one-address parameters of the layouts before (``port``, ``ip``,
``cidr_netmask``, ``gateway``) are still read when ``addresses`` is empty: a CIB that was not
applied again since the agents were upgraded keeps working.

IPv6, and why it differs:
- the address must be usable at once: duplicate address detection would keep it tentative (not
  usable, not announced) for a second or more; a VIP is never held twice on purpose (fencing
  covers the hung holder, as for IPv4). The start turns DAD off on the ports (``accept_dad`` 0;
  the VIPs are added only where ``all`` is 0 too) and ``ndisc_notify`` on, and adds the
  addresses without ``nodad``: the kernel completes them at once and then itself sends one
  unsolicited neighbour advertisement each to all nodes (ff02::1) with the router flag
  (forwarding is on), the override flag and the target's link-layer address — the moment the
  address is usable, with no process to start (na6 took 15-40 ms to send its first NA on an
  idle machine, 70-300 ms under the lab's load: its libpcap ring buffer; docs/ha.md). For a
  ``nodad`` address the kernel sends none;
- the other ``arp_count`` - 1 NAs come a second apart from ``na6`` (Debian package
  ipv6toolkit: the one tool there that sets the router flag; resource-agents' ``send_ua`` sets
  override only). Where the kernel will not announce (DAD on for ``all``, a sysctl that cannot
  be written, a start that finds a VIP already there) the addresses are added ``nodad`` and na6
  sends all ``arp_count`` at once and a second apart. Override makes a neighbour replace the
  old holder's MAC at once; without it the neighbour keeps it until unreachability detection
  gives up, the 30-45 s IPv6 failovers peers report; one NA may be lost, hence the repeats;
- the public route's source must be a usable address, which the kernel completes from its
  work queue (late on a busy controller; a second later if DAD still runs on an address
  that was there already). Forwarding needs no source: the start adds the route without it,
  in the same ``ip`` run as the addresses, and the detached process sets the source as soon as
  the kernel allows (every 10 ms, at most 5 s; a recurring monitor re-asserts it too). Before,
  the start waited for it: 1.3 s for a start that found the VIP tentative;
- the kernel keeps an IPv6 route whose source address goes away (it only clears the source), so stop
  deletes the public route itself, ``arp_count`` + 1 s later from a detached process, with a route
  of the VIP's prefix on its port that stop adds before it removes the address: meanwhile the old
  holder goes on forwarding the flows whose packets still reach it, until the new holder's
  announcements have moved the neighbours (IPv4 flows take the namespace's fallback route;
  docs/ha.md, "The old holder forwards until the neighbours follow"); and the kernel turns metric 0
  into 1024 for IPv6 (where a router advertisement's default route would sit too), so the public
  IPv6 route has metric 1 (`METRIC6`).

One implementation, in /bin/sh (`SCRIPT`): the VIP start and stop are on the critical path of
every failover and the monitor runs every 2 s, so none of them may pay for a Python start
(0.2-0.3 s of CPU with the package's imports, docs/ha.md "Agent cost"). Python only describes
the agent (`AGENT`: meta-data, the parameters Pacemaker passes) and installs it
(`envrouter.ha.install`); `addresses_param` writes the ``addresses`` value from the document.
Only exit codes are used, and how many lines `ip -o ... show` with a selector prints; its
output is never parsed. An entry's family follows its address (a ``:`` in it).
"""

from __future__ import annotations

from collections.abc import Iterable

from envrouter.ha.ocf_base import Agent, Param, basic_actions
from envrouter.model.names import RTPROT_ENVROUTER_VIP

# the public default routes' metrics: 0 for IPv4 (it wins over the agent's fallback route via
# the host link); 1 for IPv6, where the kernel turns 0 into 1024
METRIC4 = 0
METRIC6 = 1
# The route of an IPv6 VIP's prefix that stop keeps on its port for a while: above the 256 of
# the kernel's own prefix route, because the kernel removes, with an address, the first route of
# its prefix on the port (the lowest metric): its own, and then ours is left to remove.
PREFIX_METRIC6 = 1024


def address_entry(port: str, address: str, prefixlen: int, gateway: str | None = None) -> str:
    """One entry of the ``addresses`` parameter: ``PORT,ADDRESS/PREFIX[,GATEWAY]``."""
    return f"{port},{address}/{prefixlen}" + (f",{gateway}" if gateway else "")


def addresses_param(entries: Iterable[str]) -> str:
    return " ".join(entries)


# split ENTRY: its parts into port, ip, mask and gw (empty without one); rest: ADDRESS/PREFIX.
# One definition for the agent and the two scripts it runs in other shells (the start inside
# the namespace, the detached announcer); it holds no quote, so it goes inside theirs as is.
SPLIT = r"""split() {
  port=${1%%,*} rest=${1#*,} gw=
  case $rest in *,*) gw=${rest#*,} rest=${rest%%,*} ;; esac
  ip=${rest%/*} mask=${rest##*/}
}"""
assert "'" not in SPLIT and '"' not in SPLIT

SCRIPT = r"""
ns=${OCF_RESKEY_namespace:-vrouter}; arp=${OCF_RESKEY_arp_count:-2}
conf=$OCF_RESKEY_conntrackd_conf; addrs=$OCF_RESKEY_addresses
obj="vip${OCF_RESOURCE_INSTANCE:+ $OCF_RESOURCE_INSTANCE}"
proto=@PROTO@

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
missing() {
  reason "missing required parameter(s): $1"
  # a probe must not fail on configuration it does not need to answer "not running"
  [ $probe = 1 ] && exit 7
  exit 6
}
is_ipv4() {
  case $1 in ''|*[!0-9.]*|.*|*.|*..*) return 1 ;; esac
  old_ifs=$IFS; IFS=.; set -- $1; IFS=$old_ifs
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

set -f  # no globbing anywhere below: every list is split on blanks only
if [ -z "$addrs" ]; then
  # The one-address form (port, ip, cidr_netmask, gateway) of the layouts before 2026-12-03:
  # the CIB of a cluster whose agents were upgraded before `envrouter ha apply` ran again.
  # Its errors name its own parameters.
  legacy=1; m=
  [ -n "$OCF_RESKEY_port" ] || m="$m, port"
  [ -n "$OCF_RESKEY_ip" ] || m="$m, ip"
  [ -n "$OCF_RESKEY_cidr_netmask" ] || m="$m, cidr_netmask"
  case $m in
    ", port, ip, cidr_netmask") missing addresses ;;
    ?*) missing "${m#, }" ;;
  esac
  for f in port ip cidr_netmask gateway; do
    eval "v=\$OCF_RESKEY_$f"
    case $v in *[,[:space:]]*) bad $f "not one value: '$v'" ;; esac
  done
  addrs="$OCF_RESKEY_port,$OCF_RESKEY_ip/$OCF_RESKEY_cidr_netmask"
  addrs="$addrs${OCF_RESKEY_gateway:+,$OCF_RESKEY_gateway}"
else
  legacy=0
fi

@SPLIT@
# field KIND ENTRY: the parameter to name in an error about part KIND of ENTRY
field() {
  if [ $legacy = 1 ]; then echo "$1"; else echo "addresses: '$2'"; fi
}
# Validate every entry (PORT,ADDRESS/PREFIX[,GATEWAY]) and sort them by family:
# v4, v6: "PORT,ADDRESS/PREFIX[,GATEWAY]" entries; ports6: the ports carrying IPv6 VIPs
v4= v6= ports6= gw4= gw6= count=0 seen=
for e in $addrs; do
  count=$((count + 1))
  case $e in *,*) ;; *) bad "$(field port "$e")" "not PORT,ADDRESS/PREFIX[,GATEWAY]" ;; esac
  split "$e"
  [ "$ip" != "$rest" ] || bad "$(field cidr_netmask "$e")" "no prefix length"
  case $ip in
    *:*) is_ipv6 "$ip" || bad "$(field ip "$e")" "not an IPv6 address: '$ip'"
      [ -z "$gw" ] || is_ipv6 "$gw" || bad "$(field gateway "$e")" \
        "not an IPv6 address (the VIP is): '$gw'"
      hostlen=128 ;;
    *) is_ipv4 "$ip" || bad "$(field ip "$e")" "not an IPv4 address: '$ip'"
      [ -z "$gw" ] || is_ipv4 "$gw" || bad "$(field gateway "$e")" "not an IPv4 address: '$gw'"
      hostlen=32 ;;
  esac
  case $mask in ''|*[!0-9]*) bad "$(field cidr_netmask "$e")" "not a prefix length: '$mask'" ;; esac
  [ "$mask" -ge 1 ] && [ "$mask" -le $hostlen ] ||
    bad "$(field cidr_netmask "$e")" "not a prefix length: '$mask'"
  is_name "$port" 15 || bad "$(field port "$e")" "not an interface name: '$port'"
  case "$seen " in *" $ip "*) bad addresses "'$ip' twice" ;; esac
  seen="$seen $ip"
  if [ $hostlen = 128 ]; then
    v6="$v6 $e"
    case " $ports6 " in *" $port "*) ;; *) ports6="$ports6 $port" ;; esac
    [ -z "$gw" ] || { [ -z "$gw6" ] || bad addresses "two IPv6 gateways: '$gw6', '$gw'"; gw6=$gw; }
  else
    v4="$v4 $e"
    [ -z "$gw" ] || { [ -z "$gw4" ] || bad addresses "two IPv4 gateways: '$gw4', '$gw'"; gw4=$gw; }
  fi
done
[ $count -gt 0 ] || missing addresses
case $arp in ''|*[!0-9]*) bad arp_count "not a count: '$arp'" ;; esac
is_name "$ns" 64 && [ "$ns" != . ] && [ "$ns" != .. ] || bad namespace "not a namespace name: '$ns'"
case $conf in -*|*[!A-Za-z0-9._/@:-]*) bad conntrackd_conf "not a path: '$conf'" ;; esac
[ "$action" = validate-all ] && exit 0

netns=/run/netns/$ns
NL='
'
# an ip -batch line: the public VIP's default route of its family
route() {
  case $1 in *:*) m=@METRIC6@ ;; *) m=@METRIC4@ ;; esac
  echo "route replace default via $gw dev $port src $ip metric $m proto $proto"
}
# held: how many of the VIPs the kernel shows on their ports (one -o line per address held;
# -force: a missing port fails its own line only), and in `out` what `ip` printed; with
# argument `reassert` the same ip run also re-asserts the public routes
held() {
  out=$({ for e in $v4; do split "$e"; echo "addr show dev $port to $ip/32"; done
          for e in $v6; do split "$e"; echo "addr show dev $port to $ip/128"; done
          if [ "$1" = reassert ]; then
            for e in $v4 $v6; do split "$e"; [ -z "$gw" ] || route "$ip"; done
          fi
        } | ip -o -force -n "$ns" -batch - 2>/dev/null)
  rc=$?
  old_ifs=$IFS; IFS=$NL; set -- $out; IFS=$old_ifs
  n_held=$#
}

# The start, run inside the namespace (nsenter: sh, then ip), with the entries in $v4 and $v6.
# IPv4: the addresses and the public route, one `ip -batch` (replace: idempotent), then the
# gratuitous ARPs from a detached process. IPv6: the kernel announces a VIP itself at the
# moment it becomes usable. With duplicate address detection off on the port (accept_dad 0
# there and for `all`) an address added without `nodad` is completed at once from the kernel's
# work queue, and with ndisc_notify 1 the kernel then sends one unsolicited NA to ff02::1 for
# it: router flag (forwarding is on), override flag, the target's link-layer address. No
# process to start for the first NA (na6 took 15-40 ms to send it: libpcap's ring buffer). The
# repeats, a second apart, come from na6. Where the kernel will not announce (a start that
# finds an address already there, or sysctls it cannot set), the addresses are added `nodad`
# and na6 sends the first NA at once, as before. Every address and the IPv4 route go in the
# same `ip` run (the public IPv6 route without its source: see below).
# Arguments: arp_count proto; environment: V4, V6, PORTS6
START='n=$1 proto=$2; c=/proc/sys/net/ipv6/conf
@SPLIT@
set -f
kernel=0 all=
if [ -n "$V6" ]; then
  { read -r all <$c/all/accept_dad; } 2>/dev/null  # (dash: status 1 at the end of a sysctl)
  if [ "$all" = 0 ]; then
    kernel=1
    for p in $PORTS6; do
      { echo 0 >$c/$p/accept_dad && echo 1 >$c/$p/ndisc_notify; } 2>/dev/null || kernel=0
    done
  fi
fi
# One ip run: the IPv6 VIPs ($1: how an address is added), each public route (IPv6 without
# its source, see below), the IPv4 VIPs.
batch() {
  for e in $V6; do
    split "$e"; echo "addr $1 $ip/$mask dev $port${2:+ $2}"
    [ -z "$gw" ] || echo "route replace default via $gw dev $port metric @METRIC6@ proto $proto"
  done
  for e in $V4; do
    split "$e"; echo "addr replace $ip/$mask dev $port"
    [ -z "$gw" ] ||
      echo "route replace default via $gw dev $port src $ip metric @METRIC4@ proto $proto"
  done
}
# added: the kernel announces every IPv6 VIP; where one was there already (add fails), all
# are added nodad and na6 announces them all
if [ $kernel = 1 ] && batch add | ip -batch - 2>/dev/null; then first=0
else
  batch replace nodad | ip -batch - || exit 1
  first=1
fi
# the gratuitous ARPs: the first at once, the repeats a second apart
if [ "$n" -gt 0 ]; then
  for e in $V4; do
    split "$e"; setsid -f arping -q -U -c "$n" -I "$port" "$ip" </dev/null >/dev/null 2>&1
  done
fi
[ -n "$V6" ] || exit 0
# In the background: the public IPv6 route'"'"'s source, then the unsolicited NAs to all nodes
# (router and override flags, the target link-layer address; the first one at once only where
# the kernel did not send it). A route source must be a usable address, and the kernel
# completes a new one from its work queue (late on a busy controller; a second later where
# DAD still runs on it). Forwarding does not need the source: the route went in without it,
# and the source (the VIP, for the namespace'"'"'s own traffic) follows, tried every 10 ms for
# at most 5 s (it fails for good once the address is gone, so a stop meanwhile is not undone;
# a recurring monitor re-asserts it too).
setsid -f sh -c '"'"'n=$1 first=$2 proto=$3; set -f
  @SPLIT@
  for e in $V6; do
    split "$e"
    [ -n "$gw" ] || continue
    i=0
    while [ $i -lt 500 ] && ! ip route replace default via "$gw" dev "$port" src "$ip" \
        metric @METRIC6@ proto "$proto" 2>/dev/null; do i=$((i + 1)); sleep 0.01; done
  done
  [ "$n" -gt 0 ] || exit 0
  [ "$first" = 1 ] || { n=$((n - 1)); [ "$n" -gt 0 ] || exit 0; sleep 1; }
  while :; do
    pids=
    for e in $V6; do
      split "$e"; na6 -i "$port" -s "$ip" -d ff02::1 -t "$ip" -r -o -e >/dev/null 2>&1 &
      pids="$pids $!"
    done
    wait $pids; n=$((n - 1)); [ "$n" -gt 0 ] || break; sleep 1
  done'"'"' announce "$n" "$first" "$proto" </dev/null >/dev/null 2>&1'

case $action in
start)
  command -v ip >/dev/null || { reason "ip: not installed (Debian package iproute2)"; exit 5; }
  if [ "$arp" -gt 0 ]; then
    if [ -n "$v4" ] && ! command -v arping >/dev/null; then
      reason "arping: not installed (Debian package iputils-arping)"; exit 5
    fi
    if [ -n "$v6" ] && ! command -v na6 >/dev/null; then
      reason "na6: not installed (Debian package ipv6toolkit)"; exit 5
    fi
  fi
  [ -e "$netns" ] || { reason "network namespace '$ns' does not exist"; exit 1; }
  if [ -n "$conf" ] && [ -e "$conf" ]; then
    # not running (yet): nothing to commit, the VIP must still start
    out=$(conntrackd -C "$conf" -c 2>&1) || echo "warning: conntrackd commit: $out" >&2
  fi
  out=$(V4=$v4 V6=$v6 PORTS6=$ports6 nsenter --net="$netns" sh -c "$START" start "$arp" \
        $proto 2>&1) || { reason "adding $(echo $addrs) in $ns: $out"; exit 1; }
  exit 0 ;;
stop)
  [ -e "$netns" ] || exit 0
  # One command on the critical path of a switchover: every address goes. -force: on with the
  # rest when one is gone already. All done (status 0) is the whole stop; only when something
  # failed (gone already: a stop on a stopped VIP) does the agent look again.
  # The old holder goes on forwarding the flows whose packets still reach it until the new
  # holder's announcements have moved the neighbours (docs/ha.md, "The old holder forwards
  # until the neighbours follow"). IPv4 needs nothing here: the kernel removes the public
  # route with its source address, and the flows take the namespace's fallback route. IPv6 has
  # no fallback, and the namespace no IPv6 address of its own: the public route stays (the
  # kernel keeps an IPv6 route whose source address goes away, it only clears the source), and
  # each VIP's prefix stays routed on its port by a route of our own (the kernel removes its
  # own prefix route with the address; PREFIX_METRIC6), for arp_count + 1 s.
  { for e in $v6; do
      split "$e"; echo "route replace $ip/$mask dev $port metric @PREFIX6@ proto $proto"
    done
    for e in $v4 $v6; do split "$e"; echo "addr del $ip/$mask dev $port"; done
  } | ip -n "$ns" -force -batch - >/dev/null 2>&1 || {
    held
    [ "$n_held" = 0 ] || { reason "cannot remove $n_held of $(echo $addrs) in $ns"; exit 1; }
  }
  [ -n "$v6" ] || exit 0
  # then a detached process removes those routes, unless an IPv6 VIP is back here meanwhile
  # (a start here keeps the routes it needs; a recurring monitor re-asserts the public one)
  V6=$v6 setsid -f sh -c 'sleep "$1"; ns=$2 proto=$3; set -f
    @SPLIT@
    back=$(for e in $V6; do split "$e"; echo "addr show dev $port to $ip/128"; done |
           ip -o -force -n "$ns" -batch - 2>/dev/null)
    [ -z "$back" ] || exit 0
    for e in $V6; do
      split "$e"; echo "route del $ip/$mask dev $port metric @PREFIX6@ proto $proto"
      [ -z "$gw" ] || echo "route del default via $gw dev $port metric @METRIC6@ proto $proto"
    done | exec ip -n "$ns" -force -batch -' linger $((arp + 1)) "$ns" $proto \
    </dev/null >/dev/null 2>&1
  exit 0 ;;
monitor)
  [ -e "$netns" ] || exit 7
  # one ip run: how many VIPs are held, and on a recurring monitor the public routes
  # re-asserted (they drift when the link flaps; replacing one by itself changes nothing;
  # without its address the replace fails too: a route's source must be a local address)
  if [ $probe = 0 ] && [ -n "$gw4$gw6" ]; then held reassert; else held; fi
  [ "$n_held" = 0 ] && exit 7
  if [ "$n_held" != $count ]; then
    # some but not all: failed, so that Pacemaker stops (removes the rest) and starts again
    reason "$n_held of the $count VIPs held ($(echo $addrs))"; exit 1
  fi
  [ $probe = 1 ] || [ $rc = 0 ] || echo "warning: cannot re-assert the public routes in $ns" >&2
  exit 0 ;;
esac
""".replace("@SPLIT@", SPLIT).replace("@PROTO@", str(RTPROT_ENVROUTER_VIP)).replace(
    "@METRIC4@", str(METRIC4)).replace("@METRIC6@", str(METRIC6)).replace(
    "@PREFIX6@", str(PREFIX_METRIC6))


AGENT = Agent(
    name="vip",
    shortdesc="The vrouter's virtual IPs inside its namespace",
    longdesc="Adds the VIPs to the ports of the vrouter namespace and announces them "
    "(gratuitous ARP for IPv4; for IPv6 the addresses are made usable at once, without "
    "duplicate address detection, and announced by unsolicited neighbour advertisements, the "
    "first from the kernel); for a public VIP also the namespace's default route of its "
    "family via the public gateway (source the VIP; metric 0 for IPv4, which wins over the "
    "agent's fallback route via the host link, metric 1 for IPv6). All the VIPs move "
    "together: one start, one stop.",
    params=[
        Param("namespace", "namespace", "Network namespace of the vrouter.", default="vrouter"),
        Param("addresses", "the VIPs",
              "The VIPs, separated by blanks, each PORT,ADDRESS/PREFIX (the interface in the "
              "namespace that carries it, the VIP, IPv4 or IPv6, and its prefix length), "
              "followed by ,GATEWAY for a public VIP: the namespace's default route of that "
              "family then goes via GATEWAY, source the VIP (one gateway per family). "
              "Required unless the one-address parameters are set.", unique=True),
        Param("port", "port (one-address form)", "The one-address form of the layouts before "
              "2026-12-03, read when addresses is empty: interface in the namespace that "
              "carries the VIP."),
        Param("ip", "address (one-address form)", "The one-address form: the VIP."),
        Param("cidr_netmask", "prefix length (one-address form)",
              "The one-address form: prefix length of the VIP.", type="integer"),
        Param("gateway", "public gateway (one-address form)",
              "The one-address form: if set, the default route via this gateway."),
        Param("arp_count", "announcements", "Number of announcements of each VIP sent on "
              "start, a second apart: gratuitous ARPs (IPv4) or unsolicited neighbour "
              "advertisements with the router and override flags (IPv6).", type="integer",
              default="2"),
        Param("conntrackd_conf", "conntrackd configuration",
              "If set and present: the configuration of this node's conntrackd instance, whose "
              "external cache is committed into the kernel before the addresses are added."),
    ],
    handlers={},
    actions=basic_actions(start="20s", stop="20s", monitor="20s", interval="2s"),
    script=SCRIPT,
)
