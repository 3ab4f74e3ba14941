"""Issue #19 point 6: the CLI changes everything the UI can (vrouter settings, VIPs, deleting an
environment) and makes an environment match a YAML declaratively; each change shows a diff
first and needs --yes without a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_run import assert_clean_error, envrouter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "environment.yaml"


@pytest.fixture
def demo(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert envrouter("db", "upgrade", "--database-url", url).returncode == 0
    r = envrouter("env", "import", str(EXAMPLE), "--database-url", url)
    assert r.returncode == 0, r.stderr
    return url


def run(*args: str, url: str):
    r = envrouter(*args, "--database-url", url)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def export(url: str) -> dict:
    return yaml.safe_load(run("env", "export", "demo", url=url).stdout)


def test_set_vrouter_shows_a_diff_and_needs_yes_without_a_terminal(demo):
    before = export(demo)
    r = envrouter("env", "set-vrouter", "demo", "--dns", "192.0.2.53", "--dns", "192.0.2.54",
                  "--no-nat", "--database-url", demo)
    assert_clean_error(r, "--yes", "not a terminal")
    assert "-  - 198.51.100.53" in r.stdout and "+  - 192.0.2.53" in r.stdout
    assert "-  nat: true" in r.stdout and "+  nat: false" in r.stdout
    assert export(demo) == before  # nothing changed
    r = run("env", "set-vrouter", "demo", "--dns", "192.0.2.53", "--dns", "192.0.2.54",
            "--no-nat", "--no-domain", "--yes", url=demo)
    assert "+  nat: false" in r.stdout
    settings = export(demo)["vrouter"]
    assert settings["dns_list"] == ["192.0.2.53", "192.0.2.54"]
    assert settings["nat"] is False and settings["domain"] is None
    assert "nothing to change" in run("env", "set-vrouter", "demo", "--no-nat", url=demo).stdout
    # the rules are the API's: a bad value names the field, nothing changes
    r = envrouter("env", "set-vrouter", "demo", "--dns", "127.0.0.1", "--yes",
                  "--database-url", demo)
    assert_clean_error(r, "dns_list", "loopback")
    r = envrouter("env", "set-vrouter", "demo", "--database-url", demo)
    assert_clean_error(r, "nothing to change")


def test_disable_then_documents_use_the_admin_gateway(demo):
    run("env", "set-vrouter", "demo", "--disable", "--yes", url=demo)
    doc = json.loads(run("document", "demo", "cmp1", url=demo).stdout)
    assert doc["host"]["gateway_source"] == "admin"
    run("env", "set-vrouter", "demo", "--enable", "--yes", url=demo)
    doc = json.loads(run("document", "demo", "cmp1", url=demo).stdout)
    assert doc["host"]["gateway_source"] == "vrouter"


def test_set_vip_user_defined_and_back_to_auto(demo):
    r = run("env", "set-vip", "demo", "vrouter", "192.168.0.5", "--yes", url=demo)
    assert "+    address: 192.168.0.5" in r.stdout
    vip = export(demo)["vips"]["vrouter"]
    assert vip == {"address": "192.168.0.5", "user_defined": True}
    doc = json.loads(run("document", "demo", "cmp1", url=demo).stdout)
    assert doc["host"]["gateway"] == "192.168.0.5"
    run("env", "set-vip", "demo", "vrouter", "auto", "--yes", url=demo)
    assert export(demo)["vips"]["vrouter"]["user_defined"] is False
    r = envrouter("env", "set-vip", "demo", "vrouter", "10.9.9.9", "--yes", "--database-url", demo)
    assert_clean_error(r, "VIP 'vrouter'", "address", "outside")
    r = envrouter("env", "set-vip", "demo", "vip3", "auto", "--yes", "--database-url", demo)
    assert_clean_error(r, "known: vrouter, vrouter_pub")


def test_delete_environment(demo):
    r = envrouter("env", "delete", "demo", "--database-url", demo)
    assert_clean_error(r, "--yes")
    assert "-name: demo" in r.stdout
    assert "demo" in run("env", "list", url=demo).stdout
    run("env", "delete", "demo", "--yes", url=demo)
    assert "demo" not in run("env", "list", url=demo).stdout
    assert_clean_error(envrouter("env", "delete", "demo", "--yes", "--database-url", demo),
                       "not found")


def test_apply_makes_the_environment_match_the_file(demo, tmp_path):
    wanted = export(demo)
    wanted["nodes"] = [n for n in wanted["nodes"] if n["hostname"] != "cmp2"]
    wanted["nodes"].append({"hostname": "cmp3", "roles": ["compute"], "status": "ready"})
    ctl3 = next(n for n in wanted["nodes"] if n["hostname"] == "ctl3")
    ctl3.update(roles=["compute"], addresses={}, namespace_address=None)
    del ctl3["namespace_address"]
    wanted["vrouter"]["ntp_list"] = ["ntp.example.org"]
    storage = next(n for n in wanted["networks"] if n["name"] == "storage")
    storage["vlan"] = 103
    wanted["networks"].append(
        {"name": "backup", "role": "other", "cidr": "192.168.7.0/24",
         "ranges": [{"start": "192.168.7.10", "end": "192.168.7.100"}]}
    )
    file = tmp_path / "wanted.yaml"
    file.write_text(yaml.safe_dump(wanted, sort_keys=False))
    r = envrouter("env", "apply", str(file), "--database-url", demo)
    assert_clean_error(r, "--yes")
    assert "-- hostname: cmp2" in r.stdout and "+- hostname: cmp3" in r.stdout
    r = run("env", "apply", str(file), "--yes", url=demo)
    got = export(demo)
    nodes = {n["hostname"]: n for n in got["nodes"]}
    assert set(nodes) == {"ctl1", "ctl2", "ctl3", "cmp1", "cmp3"}
    assert nodes["ctl3"]["roles"] == ["compute"] and "public" not in nodes["ctl3"]["addresses"]
    assert "namespace_address" not in nodes["ctl3"]
    assert set(nodes["cmp3"]["addresses"]) == {"admin", "management", "storage", "backup"}
    assert got["vrouter"]["ntp_list"] == ["ntp.example.org"] and got["vrouter"]["enabled"]
    assert {n["name"]: n.get("vlan") for n in got["networks"]}["storage"] == 103
    # untouched nodes keep their addresses
    before = {n["hostname"]: n for n in wanted["nodes"]}
    assert nodes["cmp1"]["addresses"] == {
        **before["cmp1"]["addresses"], "backup": nodes["cmp1"]["addresses"]["backup"]
    }
    # the document follows: ctl3 is routed through the vrouter now
    doc = json.loads(run("document", "demo", "ctl3", url=demo).stdout)
    assert doc["host"]["gateway_source"] == "vrouter" and doc["vrouter"] is None
    # a second apply of the export changes nothing
    file.write_text(yaml.safe_dump(got, sort_keys=False))
    assert "nothing to change" in run("env", "apply", str(file), url=demo).stdout


def test_apply_keeps_the_rules(demo, tmp_path):
    before = export(demo)
    wanted = yaml.safe_load(yaml.safe_dump(before))
    next(n for n in wanted["networks"] if n["name"] == "public")["gateway"] = None
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(wanted))
    r = envrouter("env", "apply", str(file), "--yes", "--database-url", demo)
    assert_clean_error(r, "vrouter settings", "enabled", "network 'public': gateway")
    assert export(demo) == before
    # the same file with the vrouter off is fine
    wanted["vrouter"]["enabled"] = False
    file.write_text(yaml.safe_dump(wanted))
    run("env", "apply", str(file), "--yes", url=demo)
    got = export(demo)
    assert got["vrouter"]["enabled"] is False
    assert next(n for n in got["networks"] if n["name"] == "public")["gateway"] is None


def test_apply_creates_an_environment_that_does_not_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    run("db", "upgrade", url=url)
    r = run("env", "apply", str(EXAMPLE), "--yes", url=url)
    assert "+name: demo" in r.stdout
    assert len(export(url)["nodes"]) == 5


DUAL = ROOT / "examples" / "environment-dual-stack.yaml"


def test_dual_stack_example_imports_exports_and_applies(tmp_path):
    url = f"sqlite:///{tmp_path / 'dual.db'}"
    run("db", "upgrade", url=url)
    run("env", "import", str(DUAL), url=url)
    got = yaml.safe_load(run("env", "export", "dual", url=url).stdout)
    nets = {n["name"]: n for n in got["networks"]}
    assert nets["management"]["cidr6"] == "fd00:20::/64"
    assert nets["public"]["gateway6"] == "2001:db8:20::1"
    assert "cidr6" not in nets["storage"]  # IPv4 only: written as before
    assert got["vrouter"]["ipv6"] is False
    nodes = {n["hostname"]: n for n in got["nodes"]}
    assert nodes["dual-cmp2"]["addresses6"] == {"management": "fd00:20::200"}
    assert set(nodes["dual-ctl1"]["addresses6"]) == {"management", "public"}
    assert set(got["vips"]) == {"vrouter", "vrouter_pub", "vrouter6", "vrouter_pub6"}
    assert got["vips"]["vrouter6"] == {"address": "fd00:20::1", "user_defined": True}
    # the document of a compute node carries its IPv6 address; the route stays IPv4
    doc = json.loads(run("document", "dual", "dual-cmp1", url=url).stdout)
    mgmt = next(n for n in doc["networks"] if n["role"] == "management")
    assert mgmt["address6"] == nodes["dual-cmp1"]["addresses6"]["management"]
    assert doc["host"]["gateway_source"] == "vrouter" and ":" not in doc["host"]["gateway"]
    # the export applies as it is
    file = tmp_path / "dual.yaml"
    file.write_text(yaml.safe_dump(got, sort_keys=False))
    assert "nothing to change" in run("env", "apply", str(file), url=url).stdout
    # turning IPv6 on: the compute node's document routes IPv6 through the vrouter6 VIP
    got["vrouter"]["ipv6"] = True
    file.write_text(yaml.safe_dump(got, sort_keys=False))
    r = envrouter("env", "apply", str(file), "--yes", "--database-url", url)
    assert r.returncode == 0, r.stderr
    doc = json.loads(run("document", "dual", "dual-cmp1", url=url).stdout)
    assert ":" in doc["host"]["gateway6"]


def test_apply_adds_an_ipv6_prefix_in_place(demo, tmp_path):
    """Adding cidr6 to a network keeps its IPv4 addresses (no re-creation) and gives every
    node on it an IPv6 address."""
    before = export(demo)
    wanted = yaml.safe_load(yaml.safe_dump(before))
    mgmt = next(n for n in wanted["networks"] if n["name"] == "management")
    mgmt["cidr6"] = "fd00:30::/64"
    mgmt["ranges6"] = [{"start": "fd00:30::10", "end": "fd00:30::ff"}]
    file = tmp_path / "dual.yaml"
    file.write_text(yaml.safe_dump(wanted, sort_keys=False))
    run("env", "apply", str(file), "--yes", url=demo)
    got = export(demo)
    old = {n["hostname"]: n for n in before["nodes"]}
    for node in got["nodes"]:
        assert node["addresses"] == old[node["hostname"]]["addresses"]
        assert list(node["addresses6"]) == ["management"]
    assert got["vips"]["vrouter"] == before["vips"]["vrouter"]
    # reserve-vips then adds vrouter6 only (vrouter_pub6 needs a public IPv6 prefix)
    run("env", "reserve-vips", "demo", url=demo)
    assert set(export(demo)["vips"]) == {"vrouter", "vrouter_pub", "vrouter6"}
