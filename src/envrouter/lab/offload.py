"""Turn off TX checksum offload on network devices of the current namespace (SIOCETHTOOL).

Needed in front of Open vSwitch's userspace datapath: a veth forwards TCP/UDP packets with
their checksum still to be filled in ("partial"), OVS reads them from an AF_PACKET socket and
passes them on unfixed, and the receiver drops them (ping works, DNS/TCP do not). With TX
checksumming off on the veth that feeds OVS, the kernel completes the checksum first.

Run as ``ip netns exec NS python -m envrouter.lab.offload IFNAME...``.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


def _ethtool_value(ifname: str, cmd: int, data: int = 0) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    return int(struct.unpack("II", value.raw[:8])[1])


def tx_checksum_off(ifname: str) -> None:
    _ethtool_value(ifname, ETHTOOL_STXCSUM, 0)


def tx_checksum(ifname: str) -> bool:
    return bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--show"]:
        for ifname in argv[1:]:
            print(f"{ifname} tx-checksumming {'on' if tx_checksum(ifname) else 'off'}")
        return 0
    for ifname in argv:
        tx_checksum_off(ifname)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
