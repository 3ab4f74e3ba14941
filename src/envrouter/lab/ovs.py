"""Open vSwitch in a lab controller (`lab up --bridge ovs`): ovsdb-server and ovs-vswitchd
inside the node (its private /run/openvswitch), bridges with the userspace datapath (no OVS
kernel module here), the node's uplinks as their ports and the host addresses on the bridges."""

from __future__ import annotations

import os

from pyroute2 import IPRoute

from envrouter.lab.nodes import Lab, _ensure_addr
from envrouter.lab.waiting import wait_for

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VSCTL = ["ovs-vsctl", "--timeout=10"]
# ovs-vswitchd forwards every packet of the controller here (the userspace datapath), the
# cluster's own messages included. On a kernel datapath that forwarding runs in softirq
# context, ahead of every process; at a normal priority it waited behind the lab's busy
# processes instead, and corosync (SCHED_RR 99) and Pacemaker's messages with it. Real-time,
# below corosync: the lab's datapath behaves like the kernel's (docs/ha.md, "Open vSwitch").
VSWITCHD_SCHED = ["chrt", "--rr", "50"]


def ovs_ports(lab: Lab, name: str) -> list:
    """The controller's ports that go on OVS bridges: management and public."""
    return [p for p in lab.plan.node(name).ports
            if p.node_bridge and p.network in ("management", "public")]


def start_ovs(lab: Lab, name: str) -> None:
    node = lab.plan.node(name)
    ndir = lab.plan.node_dir(name)
    db = os.path.join(ndir, "ovs", "conf.db")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    if os.path.exists(db):
        os.unlink(db)
    lab.exec_in(name, ["ovsdb-tool", "create", db, SCHEMA])
    lab.exec_in(name, ["mkdir", "-p", "/run/openvswitch", "/var/log/openvswitch"])
    dbs = lab.spawn_in(name, "ovsdb-server", [
        "ovsdb-server", db, "--remote=punix:/run/openvswitch/db.sock",
        "--pidfile=/run/openvswitch/ovsdb-server.pid",
        "--log-file=/var/log/openvswitch/ovsdb-server.log"])
    wait_for(f"{name}: ovsdb-server", lambda: lab.exec_in(
        name, [*VSCTL, "--no-wait", "init"], check=False).returncode == 0,
        timeout=30, proc=dbs, log=f"{ndir}/ovsdb-server.out")
    vsd = lab.spawn_in(name, "ovs-vswitchd", [
        *VSWITCHD_SCHED, "ovs-vswitchd", "unix:/run/openvswitch/db.sock",
        "--pidfile=/run/openvswitch/ovs-vswitchd.pid",
        "--log-file=/var/log/openvswitch/ovs-vswitchd.log"])
    for port in ovs_ports(lab, name):
        assert port.node_bridge is not None
        lab.exec_in(name, [*VSCTL, "--may-exist", "add-br", port.node_bridge, "--", "set",
                           "bridge", port.node_bridge, "datapath_type=netdev"])
        lab.exec_in(name, [*VSCTL, "--may-exist", "add-port", port.node_bridge, port.ifname])

    def bridges_up() -> bool:
        with IPRoute(netns=node.netns) as ipr:
            return all(ipr.link_lookup(ifname=p.node_bridge) for p in ovs_ports(lab, name))

    wait_for(f"{name}: OVS bridges", bridges_up, timeout=30, proc=vsd,
             log=f"{ndir}/log/openvswitch/ovs-vswitchd.log")
    with IPRoute(netns=node.netns) as ipr:
        for port in ovs_ports(lab, name):
            idx = ipr.link_lookup(ifname=port.node_bridge)[0]
            ipr.link("set", index=idx, state="up")
            _ensure_addr(ipr, idx, port.address, port.prefixlen)
            if port.address6:
                _ensure_addr(ipr, idx, port.address6, port.prefixlen6)
