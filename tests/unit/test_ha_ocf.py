"""The OCF contract of envrouter's agents, without running any daemon: meta-data, exit codes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from envrouter.ha import ocf_conntrackd, ocf_dns, ocf_ntp, ocf_uplink, ocf_vip, ocf_vrouter
from envrouter.ha.install import agent_text
from envrouter.ha.ocf_base import (
    OCF_ERR_ARGS,
    OCF_ERR_CONFIGURED,
    OCF_ERR_UNIMPLEMENTED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    run,
)

AGENTS = {"vrouter": ocf_vrouter.AGENT, "vip": ocf_vip.AGENT, "conntrackd": ocf_conntrackd.AGENT,
          "dns": ocf_dns.AGENT, "ntp": ocf_ntp.AGENT, "uplink": ocf_uplink.AGENT}


# What each agent's meta-data must declare, written out here (not read back from the table the
# meta-data is rendered from): name -> (default, required).
DOC = ("/var/lib/envrouter/document.json", False)
DAEMON = {"document": DOC, "run_root": ("/run/envrouter", False),
          "log_root": ("/var/log/envrouter", False)}
EXPECTED_PARAMS = {
    "vrouter": {"document": DOC, "root": ("/", False), "host_netns": (None, False)},
    "vip": {"namespace": ("vrouter", False), "port": (None, True), "ip": (None, True),
            "cidr_netmask": (None, True), "gateway": (None, False), "arp_count": ("2", False),
            "conntrackd_conf": (None, False)},
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
    assert run(ocf_dns.AGENT, ["dns"], missing) == OCF_ERR_ARGS
    assert run(ocf_dns.AGENT, ["dns", "migrate_to"], missing) == OCF_ERR_UNIMPLEMENTED
    assert run(ocf_dns.AGENT, ["dns", "validate-all"], missing) == OCF_ERR_CONFIGURED
    assert run(ocf_dns.AGENT, ["dns", "start"], missing) == OCF_ERR_CONFIGURED
    # stop on something that cannot be running succeeds; a probe says "not running", silently
    assert run(ocf_dns.AGENT, ["dns", "stop"], missing) == OCF_SUCCESS
    capsys.readouterr()
    probe = {**missing, "OCF_RESKEY_CRM_meta_interval": "0"}
    assert run(ocf_dns.AGENT, ["dns", "monitor"], probe) == OCF_NOT_RUNNING
    assert "ocf-exit-reason" not in capsys.readouterr().err
    # a VIP without its address: configuration error naming the parameter
    assert run(ocf_vip.AGENT, ["vip", "start"], {"OCF_RESKEY_port": "vr-pub"}) == (
        OCF_ERR_CONFIGURED)
    assert capsys.readouterr().err.splitlines() == [
        "ocf-exit-reason:missing required parameter(s): ip, cidr_netmask"]
    bad = {"OCF_RESKEY_port": "vr-pub", "OCF_RESKEY_ip": "10.0.0.1\n",
           "OCF_RESKEY_cidr_netmask": "24"}
    assert run(ocf_vip.AGENT, ["vip", "validate-all"], bad) == OCF_ERR_CONFIGURED
    assert capsys.readouterr().err.splitlines()[-1].startswith("ocf-exit-reason:vip: ip: ")


def test_installed_agent_prints_meta_data_itself_and_execs_the_interpreter():
    text = agent_text("ntp", "/opt/py/bin/python")
    assert text.startswith("#!/bin/sh\n")
    assert '<resource-agent name="ntp"' in text
    assert text.rstrip().endswith(
        "exec /opt/py/bin/python -c 'from envrouter.ha.ocf_ntp import main; main()' \"$@\"")


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
    d = SimpleNamespace(paths=None)
    ocf_conntrackd._keep_cache_empty(ctx, d, STATS.replace("21205", "0", 1))
    assert calls == []
    ocf_conntrackd._keep_cache_empty(ctx, d, STATS)
    assert calls == [("-f", "internal")]
