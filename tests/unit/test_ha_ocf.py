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


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_meta_data_describes_every_parameter_and_action(name, capsys):
    agent = AGENTS[name]
    assert run(agent, [name, "meta-data"], {}) == OCF_SUCCESS
    root = ET.fromstring(capsys.readouterr().out.split("\n", 2)[2])
    assert root.get("name") == name
    described = {p.get("name") for p in root.iter("parameter")}
    assert described == {p.name for p in agent.params}
    for p in root.iter("parameter"):
        assert p.find("longdesc").text and p.find("shortdesc").text
        assert p.find("content").get("type") in ("string", "integer", "boolean")
    actions = {a.get("name") for a in root.iter("action")}
    assert {"start", "stop", "monitor", "meta-data", "validate-all"} <= actions
    if name == "conntrackd":
        assert {"promote", "demote", "notify"} <= actions


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
    assert "ip" in capsys.readouterr().err
    bad = {"OCF_RESKEY_port": "vr-pub", "OCF_RESKEY_ip": "10.0.0.1\n",
           "OCF_RESKEY_cidr_netmask": "24"}
    assert run(ocf_vip.AGENT, ["vip", "validate-all"], bad) == OCF_ERR_CONFIGURED


def test_installed_agent_prints_meta_data_itself_and_execs_the_interpreter():
    text = agent_text("ntp", "/opt/py/bin/python")
    assert text.startswith("#!/bin/sh\n")
    assert '<resource-agent name="ntp"' in text
    assert text.rstrip().endswith(
        "exec /opt/py/bin/python -c 'from envrouter.ha.ocf_ntp import main; main()' \"$@\"")
