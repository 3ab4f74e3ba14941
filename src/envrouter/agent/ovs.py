"""Open vSwitch through ovs-vsctl (the database client; OVS_RUNDIR selects the instance), and
the transmit checksum offload of the devices that feed OVS's userspace datapath.

Checksum offload and the datapath type: the Linux stack sends TCP and UDP through a device
that offers TX checksumming with the checksum still to be filled in ("partial"; the device, or
the kernel at the last moment, finishes it). OVS's kernel datapath keeps such packets as
kernel packets, so whichever device finally sends one finishes its checksum: nothing to do.
The userspace datapath (`datapath_type=netdev`) copies packets out of the kernel (AF_PACKET
for a system port, the tap of an internal port) without that state and sends them on
unfinished: the receiver drops them (ping passes, DNS and TCP do not). So on a netdev bridge
no device may hand OVS a partial checksum: a device whose transmissions OVS reads must have TX
checksumming off. The agent's own ports there are the namespace's internal ports (taps); OVS
leaves their TX checksumming off unless its userspace TSO is on, and the agent makes sure of it
(`envrouter.agent.plan.plan_tx_checksum`).
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from envrouter.agent.desired import USERSPACE_DATAPATHS
from envrouter.agent.netlink import run
from envrouter.errors import InfraError

VSCTL = ["ovs-vsctl", "--timeout=10"]
__all__ = ["USERSPACE_DATAPATHS"]


def list_bridges(ns: str) -> set[str]:
    res = run(ns, [*VSCTL, "list-br"])
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def list_ports(ns: str, bridge: str) -> set[str]:
    res = run(ns, [*VSCTL, "list-ports", bridge])
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def datapaths(ns: str, bridges: list[str]) -> tuple[dict[str, str], bool]:
    """In one ovs-vsctl call: each bridge's datapath type ("" or "system": the kernel module,
    "netdev": userspace), and whether OVS's userspace TSO is on (other_config:
    userspace-tso-enable, read at ovs-vswitchd's start; with it the userspace datapath carries
    the kernel's checksum state in virtio net headers and finishes partial checksums)."""
    argv = [*VSCTL]
    for br in bridges:
        argv += ["get", "Bridge", br, "datapath_type", "--"]
    argv += ["--if-exists", "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"]
    lines = [line.strip().strip('"') for line in run(ns, argv).stdout.splitlines()]
    types = dict(zip(bridges, lines, strict=False))
    tso = len(lines) > len(bridges) and lines[len(bridges)] == "true"
    return types, tso


def add_internal_port(ns: str, bridge: str, port: str) -> None:
    run(
        ns,
        [
            *VSCTL,
            "--may-exist",
            "add-port",
            bridge,
            port,
            "--",
            "set",
            "Interface",
            port,
            "type=internal",
            "external_ids:owner=envrouter",
        ],
    )


def del_port(ns: str, bridge: str, port: str) -> None:
    run(ns, [*VSCTL, "--if-exists", "del-port", bridge, port])


# ---- TX checksum offload (SIOCETHTOOL, the calls `ethtool -k/-K DEV tx` makes), acting on a
# device of the calling thread's network namespace (envrouter.agent.netlink.in_netns)

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


def _ethtool_value(ifname: str, cmd: int, data: int = 0) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    except OSError as exc:
        raise InfraError(f"{ifname}: TX checksum offload: {exc.strerror}") from exc
    return int(struct.unpack("II", value.raw[:8])[1])


def tx_checksum(ifname: str) -> bool:
    """Whether the device offers TX checksumming (`ethtool -k DEV` tx-checksumming)."""
    return bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM))


def set_tx_checksum(ifname: str, on: bool) -> None:
    """`ethtool -K DEV tx on|off`; with it off the kernel finishes every checksum itself."""
    _ethtool_value(ifname, ETHTOOL_STXCSUM, int(on))
