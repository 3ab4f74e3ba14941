"""The OCF contract of envrouter's agents, without running any daemon: meta-data, exit codes."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from envrouter.ha import ocf_conntrackd, ocf_vrouter
from envrouter.ha.install import agent_of, agent_text, install_agents
from envrouter.ha.ocf_base import (
    OCF_ERR_ARGS,
    OCF_ERR_CONFIGURED,
    OCF_ERR_UNIMPLEMENTED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    run,
)

AGENTS = {name: agent_of(name) for name in ("vrouter", "vip", "conntrackd", "dns", "ntp", "uplink")}
DNS = AGENTS["dns"]


# What each agent's meta-data must declare, written out here (not read back from the table the
# meta-data is rendered from): name -> (default, required).
DOC = ("/var/lib/envrouter/document.json", False)
DAEMON = {"document": DOC, "run_root": ("/run/envrouter", False),
          "log_root": ("/var/log/envrouter", False)}
EXPECTED_PARAMS = {
    "vrouter": {"document": DOC, "root": ("/", False), "host_netns": (None, False)},
    "vip": {"namespace": ("vrouter", False), "addresses": (None, False),
            "port": (None, False), "ip": (None, False), "cidr_netmask": (None, False),
            "gateway": (None, False), "arp_count": ("2", False), "conntrackd_conf": (None, False)},
    "conntrackd": {**DAEMON, "transport": ("auto", False),
                   "multicast_group": ("225.0.0.50", False), "port": ("3780", False)},
    "dns": DAEMON,
    "ntp": DAEMON,
    "uplink": {"bridge": (None, True), "exclude": ("", False),
               "name": ("envrouter_uplink", False), "run_root": ("/run/envrouter", False)},
}


def _meta_data(name: str, capsys) -> ET.Element:
    assert run(AGENTS[name], [name, "meta-data"], {}) == OCF_SUCCESS
    out = capsys.readouterr().out
    assert out.startswith('<?xml version="1.0"?>\n<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">')
    return ET.fromstring(out.split("\n", 2)[2])


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_meta_data_describes_every_parameter_and_action(name, capsys):
    root = _meta_data(name, capsys)
    assert root.get("name") == name
    described = {
        p.get("name"): (p.find("content").get("default"), p.get("required") == "1")
        for p in root.iter("parameter")
    }
    assert described == EXPECTED_PARAMS[name]
    for p in root.iter("parameter"):
        assert p.find("longdesc").text and p.find("shortdesc").text
        assert p.find("content").get("type") in ("string", "integer", "boolean")
    actions = {a.get("name") for a in root.iter("action")}
    assert {"start", "stop", "monitor", "meta-data", "validate-all"} <= actions
    if name == "conntrackd":
        assert {"promote", "demote", "notify"} <= actions


def test_layout_passes_only_described_parameters_and_every_required_one(capsys):
    """The Pacemaker layout and the agents' meta-data are written apart: every instance
    attribute the layout gives a primitive must be one its agent declares, and every
    parameter the agent requires must be given."""
    from test_ha_layout import sample_doc

    from envrouter.ha.layout import build_layout

    seen = set()
    for res in build_layout(sample_doc()).resources:
        for prim in res.iter("primitive"):
            if prim.get("provider") != "envrouter":
                continue
            kind = prim.get("type")
            root = _meta_data(kind, capsys)
            declared = {p.get("name") for p in root.iter("parameter")}
            required = {p.get("name") for p in root.iter("parameter") if p.get("required") == "1"}
            given = {nv.get("name") for ia in prim.iter("instance_attributes")
                     for nv in ia.iter("nvpair")}
            assert given <= declared, (prim.get("id"), given - declared)
            assert required <= given, (prim.get("id"), required - given)
            seen.add(kind)
    assert seen == set(AGENTS)


def test_exit_codes(tmp_path, capsys):
    missing = {"OCF_RESKEY_document": str(tmp_path / "absent.json")}
    assert run(DNS, ["dns"], missing) == OCF_ERR_ARGS
    assert run(DNS, ["dns", "migrate_to"], missing) == OCF_ERR_UNIMPLEMENTED
    assert run(DNS, ["dns", "validate-all"], missing) == OCF_ERR_CONFIGURED
    assert run(DNS, ["dns", "start"], missing) == OCF_ERR_CONFIGURED
    # stop on something that cannot be running succeeds; a probe says "not running", silently
    assert run(DNS, ["dns", "stop"], missing) == OCF_SUCCESS
    capsys.readouterr()
    probe = {**missing, "OCF_RESKEY_CRM_meta_interval": "0"}
    assert run(DNS, ["dns", "monitor"], probe) == OCF_NOT_RUNNING
    assert "ocf-exit-reason" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("ocf")
    install_agents(str(root))
    return root / "resource.d" / "envrouter"


def _sh_agent(installed, name: str, *argv: str, **params: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
    return subprocess.run([str(installed / name), *argv], env=env, capture_output=True,
                          text=True, timeout=30)


VIP = {"port": "vr-pub", "ip": "10.0.0.1", "cidr_netmask": "24"}


def test_shell_agents_follow_the_contract_without_python(installed):
    for name in ("vip", "uplink"):
        assert AGENTS[name].script and not AGENTS[name].handlers
        text = (installed / name).read_text()
        assert "python" not in text.lower().replace("envrouter.ha.ocf_", "")
        assert _sh_agent(installed, name).returncode == OCF_ERR_ARGS
        assert _sh_agent(installed, name, "migrate_to").returncode == OCF_ERR_UNIMPLEMENTED
        assert _sh_agent(installed, name, "usage").returncode == OCF_SUCCESS
        meta = _sh_agent(installed, name, "meta-data")
        assert meta.returncode == 0 and f'<resource-agent name="{name}"' in meta.stdout
    # no VIP at all: configuration error naming the parameter; a probe: 7
    out = _sh_agent(installed, "vip", "start")
    assert out.returncode == OCF_ERR_CONFIGURED
    assert out.stderr.splitlines() == ["ocf-exit-reason:missing required parameter(s): addresses"]
    # the one-address form without its address: the error names its parameters
    out = _sh_agent(installed, "vip", "start", port="vr-pub")
    assert out.returncode == OCF_ERR_CONFIGURED
    assert out.stderr.splitlines() == [
        "ocf-exit-reason:missing required parameter(s): ip, cidr_netmask"]
    assert _sh_agent(installed, "vip", "monitor", port="vr-pub",
                     CRM_meta_interval="0").returncode == OCF_NOT_RUNNING
    assert _sh_agent(installed, "vip", "validate-all", **VIP).returncode == OCF_SUCCESS
    for field, value in (("ip", "10.0.0.1\n"), ("ip", "10.0.0.256"), ("ip", "010.0.0.1"),
                         ("ip", "10.0.0"), ("cidr_netmask", "33"), ("cidr_netmask", "x"),
                         ("gateway", "10.0.0.1.1"), ("arp_count", "-1"), ("port", "a b"),
                         ("port", "-x"), ("namespace", "../x"), ("conntrackd_conf", "a b")):
        out = _sh_agent(installed, "vip", "validate-all", **{**VIP, field: value})
        assert out.returncode == OCF_ERR_CONFIGURED, (field, value)
        assert out.stderr.splitlines()[-1].startswith(f"ocf-exit-reason:vip: {field}: ")
        # stop on something that cannot be running succeeds; a probe says "not running"
        assert _sh_agent(installed, "vip", "stop", **{**VIP, field: value}).returncode == 0
        assert _sh_agent(installed, "vip", "monitor", CRM_meta_interval="0",
                         **{**VIP, field: value}).returncode == OCF_NOT_RUNNING
    # IPv6: a plain address (the family follows the VIP), a prefix length up to 128, a gateway
    # of the same family
    vip6 = {**VIP, "ip": "2001:db8::1", "cidr_netmask": "64", "gateway": "fe80::1"}
    for ip in ("2001:db8::1", "::1", "fd00:1:2:3:4:5:6:7", "1::", "1:2:3:4:5:6::7"):
        assert _sh_agent(installed, "vip", "validate-all",
                         **{**vip6, "ip": ip}).returncode == OCF_SUCCESS, ip
    assert _sh_agent(installed, "vip", "validate-all",
                     **{**vip6, "cidr_netmask": "128"}).returncode == OCF_SUCCESS
    for field, value in (("ip", "2001:db8::1::2"), ("ip", "2001:db8:::1"), ("ip", "1:2:3:4:5:6:7"),
                         ("ip", "1:2:3:4:5:6:7:8:9"), ("ip", "2001:db8::12345"),
                         ("ip", "fe80::1%eth0"), ("ip", ":1::"), ("ip", "1::2:"),
                         ("ip", "::ffff:1.2.3.4"), ("cidr_netmask", "129"),
                         ("gateway", "10.0.0.1")):
        out = _sh_agent(installed, "vip", "validate-all", **{**vip6, field: value})
        assert out.returncode == OCF_ERR_CONFIGURED, (field, value)
        assert out.stderr.splitlines()[-1].startswith(f"ocf-exit-reason:vip: {field}: ")
    out = _sh_agent(installed, "vip", "validate-all", **{**VIP, "gateway": "fe80::1"})
    assert out.returncode == OCF_ERR_CONFIGURED and "gateway: not an IPv4" in out.stderr
    # no such namespace: monitor 7, stop succeeds, start fails
    gone = {**VIP, "namespace": "ert-no-such-namespace"}
    assert _sh_agent(installed, "vip", "monitor", **gone).returncode == OCF_NOT_RUNNING
    assert _sh_agent(installed, "vip", "stop", **gone).returncode == OCF_SUCCESS
    out = _sh_agent(installed, "vip", "start", **gone)
    assert out.returncode == 1 and "does not exist" in out.stderr
    # the uplink agent
    assert _sh_agent(installed, "uplink", "validate-all", bridge="br-ex",
                     exclude="vr-pub-h").returncode == OCF_SUCCESS
    out = _sh_agent(installed, "uplink", "validate-all", bridge="br-ex", exclude="a;b")
    assert out.returncode == OCF_ERR_CONFIGURED and "uplink: exclude: " in out.stderr
    assert _sh_agent(installed, "uplink", "monitor", bridge="br-ex",
                     run_root=str(installed)).returncode == OCF_NOT_RUNNING


def test_installed_agent_prints_meta_data_itself_and_execs_the_interpreter():
    text = agent_text("ntp", "/opt/py/bin/python")
    assert text.startswith("#!/bin/sh\n")
    assert '<resource-agent name="ntp"' in text
    # no site initialisation: the package's directory is given, under the interpreter's prefix,
    # after the standard library (as site puts it); the collector off for the light paths
    assert text.rstrip().endswith(
        "exec /opt/py/bin/python -I -S -c 'import gc; gc.disable(); import sys; "
        "sys.path.append(\"/opt/py/lib/python3.11/site-packages\"); "
        "from envrouter.ha.ocf_daemon import main; main(\"ntp\")' \"$@\"")


def test_conntrackd_resyncs_once_a_few_seconds_after_promote(tmp_path, monkeypatch):
    """Only -R puts a flow a peer injected into the internal cache (whose end is then synced):
    the first monitor >= RESYNC_AFTER s after promote runs it once more, and only once."""
    import os
    import time
    from types import SimpleNamespace

    calls = []
    monkeypatch.setattr(ocf_conntrackd.conntrackd, "command",
                        lambda paths, *flag, **kw: calls.append(flag) or "")
    marker = tmp_path / "promoted"
    marker.write_text("promoted\n")
    ctx = SimpleNamespace(log=lambda *a: None)
    d = SimpleNamespace(paths=None)
    ocf_conntrackd._resync_once_after_promote(ctx, d, marker)
    assert calls == []  # just promoted: promote's own -R is enough for now
    old = time.time() - ocf_conntrackd.RESYNC_AFTER - 1
    os.utime(marker, (old, old))
    ocf_conntrackd._resync_once_after_promote(ctx, d, marker)
    assert calls == [("-R",)] and ocf_conntrackd.RESYNCED in marker.read_text()
    os.utime(marker, (old, old))
    ocf_conntrackd._resync_once_after_promote(ctx, d, marker)
    assert calls == [("-R",)]


@pytest.mark.parametrize("namespace_stays, expected", [(True, 1), (False, OCF_SUCCESS)])
def test_vrouter_stop_fails_while_the_namespace_stays(monkeypatch, namespace_stays, expected):
    """A stop whose teardown left the namespace is a failed stop (OCF_ERR_GENERIC), never a
    success Pacemaker would believe. A namespace the kernel refuses to delete cannot be made on
    purpose here, so teardown and the namespace check are replaced (the one mock of this test)."""
    import envrouter.agent as agent
    from agent_documents import controller_document

    doc = controller_document("vr-stop-test")
    torn = []
    monkeypatch.setattr(ocf_vrouter, "load_vrouter", lambda ctx: doc)
    monkeypatch.setattr(agent, "teardown", lambda d, **kw: torn.append(d) or [])
    monkeypatch.setattr(ocf_vrouter, "netns_exists",
                        lambda ns: namespace_stays and ns == "vr-stop-test")
    ctx = ocf_vrouter.Context("stop", {}, {})
    assert ocf_vrouter.stop(ctx) == expected
    assert torn == [doc]


STATS = """cache internal:
current active connections:	       21205
connections created:		       21205	failed:	           0

external inject:
connections created:		           0	failed:	           0
"""


def test_internal_cache_size_is_read_from_the_stats():
    from envrouter.services import conntrackd

    assert conntrackd.internal_cache_size(STATS) == 21205
    assert conntrackd.internal_cache_size(STATS.replace("21205", "0", 1)) == 0
    assert conntrackd.internal_cache_size("external inject:\n") is None


def test_an_unpromoted_instance_keeps_its_internal_cache_empty(monkeypatch):
    """Its cache fills from its own kernel's events; it would resend those flows at the next
    resync request: the monitor flushes it, and only when it is not empty."""
    from types import SimpleNamespace

    calls = []
    monkeypatch.setattr(ocf_conntrackd.conntrackd, "command",
                        lambda paths, *flag, **kw: calls.append(flag) or "")
    ctx = SimpleNamespace(log=lambda *a: None)
    ocf_conntrackd._keep_cache_empty(ctx, None, STATS.replace("21205", "0", 1))
    assert calls == []
    ocf_conntrackd._keep_cache_empty(ctx, None, STATS)
    assert calls == [("-f", "internal")]


ADDRESSES = ("vr-mgmt,10.0.0.2/24 vr-pub,192.0.2.10/24,192.0.2.1 vr-mgmt,fd00::2/64 "
             "vr-pub,2001:db8::10/64,2001:db8::1")


def test_the_vip_list_is_checked_entry_by_entry_naming_the_entry(installed):
    ok = _sh_agent(installed, "vip", "validate-all", addresses=ADDRESSES)
    assert ok.returncode == OCF_SUCCESS, ok.stderr
    # blanks of any kind separate the entries; the one-address parameters are then ignored
    assert _sh_agent(installed, "vip", "validate-all", ip="bad",
                     addresses=ADDRESSES.replace(" ", "\n\t")).returncode == OCF_SUCCESS
    for entry, why in (("vr-mgmt", "not PORT,ADDRESS/PREFIX[,GATEWAY]"),
                       ("vr-mgmt,10.0.0.2", "no prefix length"),
                       ("vr-mgmt,10.0.0.256/24", "not an IPv4 address: '10.0.0.256'"),
                       ("vr-mgmt,10.0.0.2/33", "not a prefix length: '33'"),
                       ("vr-mgmt,fd00::2/129", "not a prefix length: '129'"),
                       ("vr-mgmt,fd00::2/64,10.0.0.1",
                        "not an IPv6 address (the VIP is): '10.0.0.1'"),
                       ("vr-mgmt,10.0.0.2/24,fd00::1", "not an IPv4 address: 'fd00::1'"),
                       ("vr-mgmt,10.0.0.2/24,10.0.0.1,x", "not an IPv4 address: '10.0.0.1,x'"),
                       ("-x,10.0.0.2/24", "not an interface name: '-x'"),
                       ("vr;x,10.0.0.2/24", "not an interface name: 'vr;x'")):
        out = _sh_agent(installed, "vip", "validate-all",
                        addresses=f"vr-pub,10.9.0.1/24 {entry}")
        assert out.returncode == OCF_ERR_CONFIGURED, entry
        assert out.stderr.splitlines()[-1] == f"ocf-exit-reason:vip: addresses: '{entry}': {why}"
        assert _sh_agent(installed, "vip", "stop", addresses=entry).returncode == OCF_SUCCESS
        assert _sh_agent(installed, "vip", "monitor", CRM_meta_interval="0",
                         addresses=entry).returncode == OCF_NOT_RUNNING
    for addresses, why in (
            ("vr-pub,10.0.0.1/24,10.0.0.254 vr-pub,10.0.1.1/24,10.0.1.254",
             "two IPv4 gateways: '10.0.0.254', '10.0.1.254'"),
            ("vr-pub,fd00::1/64,fd00::fe vr-ex,fd01::1/64,fd01::fe",
             "two IPv6 gateways: 'fd00::fe', 'fd01::fe'"),
            ("vr-pub,10.0.0.1/24 vr-mgmt,10.0.0.1/24", "'10.0.0.1' twice")):
        out = _sh_agent(installed, "vip", "validate-all", addresses=addresses)
        assert out.returncode == OCF_ERR_CONFIGURED, addresses
        assert out.stderr.splitlines()[-1] == f"ocf-exit-reason:vip: addresses: {why}"
    out = _sh_agent(installed, "vip", "validate-all", addresses=ADDRESSES, arp_count="x")
    assert out.returncode == OCF_ERR_CONFIGURED and "vip: arp_count: " in out.stderr
    # no such namespace: monitor 7, stop succeeds, start fails
    gone = {"addresses": ADDRESSES, "namespace": "ert-no-such-namespace"}
    assert _sh_agent(installed, "vip", "monitor", **gone).returncode == OCF_NOT_RUNNING
    assert _sh_agent(installed, "vip", "stop", **gone).returncode == OCF_SUCCESS
    out = _sh_agent(installed, "vip", "start", **gone)
    assert out.returncode == 1 and "does not exist" in out.stderr
