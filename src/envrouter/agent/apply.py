"""Execute plan steps: the only module of the agent that changes the kernel, files or OVS."""

from __future__ import annotations

import time

from envrouter.agent import netlink as nl
from envrouter.agent import ovs
from envrouter.agent.desired import OWNER_ALIAS, RouteSpec
from envrouter.agent.nftables import kernel as nftables
from envrouter.agent.plan import Step
from envrouter.errors import InfraError
from envrouter.files import remove_file, write_atomic


def _wait_link(link: nl.Netlink, ns: str, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while link.index(ns, name) is None:
        if time.monotonic() > deadline:
            raise InfraError(f"link {name!r} did not appear in {ns or 'the host'}")
        time.sleep(0.02)


def apply_step(step: Step, link: nl.Netlink) -> None:
    ns, a = step.ns, step.args
    op = step.op
    if op == "create_netns":
        nl.create_netns(a[0])
    elif op == "delete_netns":
        link.forget(a[0])
        nl.remove_netns(a[0])
    elif op == "keep_netns":
        pass
    elif op == "add_veth":
        link.add_veth(ns, a[0], a[1], a[2], OWNER_ALIAS)
    elif op == "move_link":
        name, to_ns = a
        _wait_link(link, ns, name)
        link.move_link(ns, name, to_ns)
        _wait_link(link, to_ns, name)
    elif op == "set_alias":
        link.set_alias(ns, a[0], OWNER_ALIAS)
    elif op == "set_master":
        link.set_master(ns, a[0], a[1])
    elif op == "set_up":
        link.set_up(ns, a[0])
    elif op == "del_link":
        link.del_link(ns, a[0])
    elif op == "ovs_add_port":
        ovs.add_internal_port(ns, a[0], a[1])
    elif op == "ovs_del_port":
        ovs.del_port(ns, a[0], a[1])
    elif op == "add_addr":
        link.add_addr(ns, *a)
    elif op == "del_addr":
        link.del_addr(ns, *a)
    elif op == "add_route":
        r: RouteSpec = a[0]
        link.replace_route(ns, r.dst, r.gateway, r.dev, r.metric)
    elif op == "del_route":
        r = a[0]
        oif = link.index(ns, r.dev) if r.dev else None
        link.del_route(ns, r.dst, r.gateway or None, oif, r.metric)
    elif op == "set_sysctl":
        key, value = a
        nl.in_netns(ns, lambda: nl.write_sysctl(key, value))
    elif op == "load_nft":
        nftables.load_table(ns, a[0], replace=a[1])
    elif op == "delete_nft":
        nftables.delete_table(ns, a[0], a[1])
    elif op == "write_file":
        write_atomic(a[0], a[1])
    elif op == "remove_file":
        remove_file(a[0])
    else:  # a plan this applier does not know: a programming error, say so plainly
        raise InfraError(f"unknown step {op!r}")


def apply(steps: list[Step], link: nl.Netlink) -> list[str]:
    done = []
    for step in steps:
        apply_step(step, link)
        done.append(step.description)
    return done
