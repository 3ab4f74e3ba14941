"""Where named network namespaces live (`ip netns`'s convention). Standard library `os` only:
the OCF monitors, which run every few seconds, import this and nothing heavier."""

from __future__ import annotations

import os

NETNS_DIR = "/run/netns"


def netns_path(ns: str) -> str:
    return "/proc/self/ns/net" if ns == "" else os.path.join(NETNS_DIR, ns)


def netns_exists(ns: str) -> bool:
    return ns == "" or os.path.exists(os.path.join(NETNS_DIR, ns))


def sysctl_path(key: str) -> str:
    """/proc/sys path of a sysctl key (of the namespace the reading thread is in)."""
    return "/proc/sys/" + key.replace(".", "/")
