"""Execute plan steps: the only module of the agent that changes the kernel, files or OVS.

One dispatch: `apply_step` looks the step's type up in `_HANDLERS`; a step type without a
handler is a programming error, said plainly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envrouter.agent import netlink as nl
from envrouter.agent import ovs
from envrouter.agent import steps as s
from envrouter.agent.desired import OWNER_ALIAS
from envrouter.agent.nftables import kernel as nftables
from envrouter.errors import InfraError
from envrouter.files import remove_file, write_atomic
from envrouter.waiting import wait_until


def _wait_link(link: nl.Netlink, ns: str, name: str, timeout: float = 10.0) -> None:
    if not wait_until(lambda: link.index(ns, name) is not None, timeout):
        raise InfraError(f"link {name!r} did not appear in {ns or 'the host'}")


def _delete_netns(st: s.DeleteNetns, link: nl.Netlink) -> None:
    link.forget(st.name)
    nl.remove_netns(st.name)


def _move_link(st: s.MoveLink, link: nl.Netlink) -> None:
    _wait_link(link, st.ns, st.name)
    link.move_link(st.ns, st.name, st.to_ns)
    _wait_link(link, st.to_ns, st.name)


def _del_route(st: s.DelRoute, link: nl.Netlink) -> None:
    r = st.route
    oif = link.index(st.ns, r.dev) if r.dev else None
    link.del_route(st.ns, r.dst, r.gateway or None, oif, r.metric)


def _add_route(st: s.AddRoute, link: nl.Netlink) -> None:
    r = st.route
    link.replace_route(st.ns, r.dst, r.gateway, r.dev, r.metric)


def _set_sysctl(st: s.SetSysctl, link: nl.Netlink) -> None:
    nl.in_netns(st.ns, lambda: nl.write_sysctl(st.key, st.value))


_HANDLERS: dict[type[s.Step], Callable[[Any, nl.Netlink], None]] = {
    s.CreateNetns: lambda st, link: nl.create_netns(st.name),
    s.DeleteNetns: _delete_netns,
    s.KeepNetns: lambda st, link: None,
    s.AddVeth: lambda st, link: link.add_veth(st.ns, st.name, st.peer_ns, st.peer, OWNER_ALIAS),
    s.MoveLink: _move_link,
    s.SetAlias: lambda st, link: link.set_alias(st.ns, st.name, OWNER_ALIAS),
    s.SetMaster: lambda st, link: link.set_master(st.ns, st.name, st.master),
    s.SetUp: lambda st, link: link.set_up(st.ns, st.name),
    s.DelLink: lambda st, link: link.del_link(st.ns, st.name),
    s.OvsAddPort: lambda st, link: ovs.add_internal_port(st.ns, st.bridge, st.port),
    s.OvsDelPort: lambda st, link: ovs.del_port(st.ns, st.bridge, st.port),
    s.SetTxChecksum: lambda st, link: nl.in_netns(
        st.ns, lambda: ovs.set_tx_checksum(st.name, st.on)),
    s.AddAddr: lambda st, link: link.add_addr(st.ns, st.addr.dev, st.addr.address,
                                              st.addr.prefixlen),
    s.DelAddr: lambda st, link: link.del_addr(st.ns, st.addr.dev, st.addr.address,
                                              st.addr.prefixlen),
    s.AddRoute: _add_route,
    s.DelRoute: _del_route,
    s.SetSysctl: _set_sysctl,
    s.LoadNft: lambda st, link: nftables.load_table(st.ns, st.table, replace=st.replace),
    s.DeleteNft: lambda st, link: nftables.delete_table(st.ns, st.family, st.name),
    s.WriteFile: lambda st, link: write_atomic(st.path, st.content),
    s.RemoveFile: lambda st, link: remove_file(st.path),
}


def apply_step(step: s.Step, link: nl.Netlink) -> None:
    handler = _HANDLERS.get(type(step))
    if handler is None:  # a plan this applier does not know: a programming error
        raise InfraError(f"unknown step {type(step).__name__}")
    handler(step, link)


def apply(steps: list[s.Step], link: nl.Netlink) -> list[str]:
    done = []
    for step in steps:
        apply_step(step, link)
        done.append(step.description)
    return done
