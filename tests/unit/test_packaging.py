"""The pure parts behind the Debian packages and the package step of `envrouter upgrade`:
manual pages from the commands, the package planner, the lab's ssh configuration."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest
from test_upgrade_plan import baseline_db

from envrouter.cli.manpage import render_group_page, render_main_page, roff_escape
from envrouter.lab.sshd import render_client_config, render_sshd_config
from envrouter.upgrade import plan as P
from envrouter.upgrade.execute import preview
from envrouter.upgrade.runner import SshRunner


@pytest.fixture
def pv(tmp_path):  # noqa: ANN201
    return preview(baseline_db(tmp_path / "old.db"), "old")


def test_roff_escape_keeps_lines_from_being_requests() -> None:
    assert roff_escape("--help") == "\\-\\-help"
    assert roff_escape(".hidden\n'quoted") == "\\&.hidden\n\\&'quoted"
    assert roff_escape("a\\b") == "a\\eb"


def test_man_pages_list_every_command_and_option() -> None:
    from envrouter.cli.main import GROUPS
    from envrouter.cli.manpage import command_of

    main = render_main_page(((n, t) for n, (_, t) in GROUPS.items()), "2026-12-01")
    for name in GROUPS:
        assert f"envrouter\\-{name}" in main
    page = render_group_page("agent", command_of("envrouter.cli.agent"), "Node agent.",
                             "2026-12-01")
    for sub in ("plan", "apply", "status", "teardown"):
        assert f'.SS "envrouter agent {sub}"' in page
    assert "\\-\\-document" in page and page.startswith('.TH "ENVROUTER-AGENT" "1"')
    single = render_group_page("upgrade", command_of("envrouter.cli.upgrade"), "Upgrade.",
                               "2026-12-01")
    assert "\\-\\-package\\-file" in single and "\\-\\-dry\\-run" in single
    # no line starts with a control character that is not a request of ours
    for line in page.splitlines():
        assert not line.startswith("'")


def test_man_pages_format_without_warnings(tmp_path) -> None:
    from envrouter.cli.manpage import write_pages

    for path in write_pages(str(tmp_path), "2026-12-01"):
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path],
                              capture_output=True, text=True)
        if proc.returncode == 127:
            pytest.skip("groff is not installed")
        assert proc.stderr == "", f"{path}: {proc.stderr}"


def test_node_packages_by_role_and_files_replace_names(pv) -> None:
    source = P.PackageSource()
    ctl = P.node_packages(pv.after["ctl1"], source)
    assert ctl[:2] == ["envrouter", "envrouter-controller"]
    assert set(P.required_packages(pv.after["ctl1"].vrouter)) <= set(ctl)
    assert P.node_packages(pv.after["cmp1"], source) == ["envrouter"]
    files = P.PackageSource(files=("/srv/envrouter_0.2.0_amd64.deb",
                                   "/srv/envrouter-controller_0.2.0_amd64.deb"))
    with_files = P.node_packages(pv.after["ctl1"], files)
    assert with_files[:2] == list(files.files)
    assert P.package_names(with_files) == ctl


def test_versions_and_what_changed() -> None:
    out = ("envrouter\t0.1.0\tinstalled\nconntrackd\t1:1.4.7-1\tinstalled\n"
           "chrony\t4.3-2\tconfig-files\n")
    before = P.installed_versions(out)
    assert before == {"envrouter": "0.1.0", "conntrackd": "1:1.4.7-1"}
    after = {"envrouter": "0.1.0+b1", "conntrackd": "1:1.4.7-1", "chrony": "4.3-3"}
    assert P.changed_packages(before, after) == {"chrony": (None, "4.3-3"),
                                                 "envrouter": ("0.1.0", "0.1.0+b1")}


def test_only_upgraded_daemons_are_restarted(pv) -> None:
    vr = pv.after["ctl1"].vrouter
    assert P.resources_to_restart({"envrouter": 1, "envrouter-controller": 1}, vr) == []
    assert P.resources_to_restart({"chrony": 1, "conntrackd": 1, "dnsmasq-base": 1}, vr) == \
        ["conntrackd", "dns", "ntp"]
    no_sync = vr.model_copy(update={"conntrack_sync": False})
    assert P.resources_to_restart({"conntrackd": 1}, no_sync) == []
    assert P.resources_to_restart({"chrony": 1}, None) == []


def test_apt_and_cluster_commands_are_argv_lists() -> None:
    argv = P.apt_install_argv(["envrouter", "/srv/x_1_all.deb"])
    assert argv[:2] == ["env", "DEBIAN_FRONTEND=noninteractive"]
    assert argv[-2:] == ["envrouter", "/srv/x_1_all.deb"]
    assert "Dpkg::Options::=--force-confold" in argv
    assert P.maintenance_argv("ctl1", True)[-2:] == ["--update", "true"]
    assert P.maintenance_argv("ctl1", False)[-1] == "--delete"
    assert P.force_argv("promote", "conntrackd") == ["crm_resource", "--force-promote",
                                                     "--resource", "conntrackd"]


def test_plan_upgrades_packages_controllers_first_before_any_route(pv) -> None:
    steps = P.plan_upgrade(pv.before, pv.after, pv.controllers, pv.observed,
                           packages=P.PackageSource())
    keys = [s.key for s in steps]
    pkg = [k for k in keys if k.startswith("packages:")]
    assert pkg == ["packages:ctl1", "packages:ctl2", "packages:cmp1", "packages:cmp2",
                   "packages:stor1"]
    assert keys.index("packages:stor1") < keys.index("check-packages:ctl1")
    assert max(keys.index(k) for k in pkg) < min(i for i, k in enumerate(keys)
                                                 if k.startswith("move:"))
    assert "maintenance" in steps[keys.index("packages:ctl1")].text
    assert "maintenance" not in steps[keys.index("packages:cmp1")].text
    # without a package source: no package step (the lab's own nodes share this machine's)
    plain = P.plan_upgrade(pv.before, pv.after, pv.controllers, pv.observed)
    assert not [s for s in plain if s.kind == P.UPGRADE_PACKAGES]
    # resumed: done package steps are skipped like any other
    again = P.plan_upgrade(pv.before, pv.after, pv.controllers, pv.observed,
                           done=["packages:ctl1"], packages=P.PackageSource())
    assert "packages:ctl1" not in [s.key for s in again]
    assert "packages:ctl2" in [s.key for s in again]


def test_an_environment_already_on_the_vrouter_has_nothing_to_move(pv) -> None:
    from envrouter.upgrade.execute import Upgrade
    from envrouter.upgrade.progress import Progress

    enabled = dataclasses.replace(pv, observed=dataclasses.replace(pv.observed, enabled=True))
    before = Upgrade.before_documents(enabled, Progress(environment="old"))
    assert P.nodes_to_move(before, pv.after, pv.controllers) == []
    # recorded progress wins: a run that enabled it already saw the old documents
    recorded = Progress(environment="old",
                        before={n: d.model_dump_json() for n, d in pv.before.items()})
    again = Upgrade.before_documents(enabled, recorded)
    assert P.nodes_to_move(again, pv.after, pv.controllers) == ["cmp1", "cmp2", "stor1"]


def test_ssh_runner_with_a_config_file_and_agent_root() -> None:
    r = SshRunner({}, config="/lab/ssh/ssh_config", agent_root="/lab/nodes/{node}/root")
    argv = r.argv("ctl1", ["envrouter", "agent", "status"])
    assert argv[:3] == ["ssh", "-F", "/lab/ssh/ssh_config"] and argv[-3] == "ctl1"
    assert r.agent_options("ctl1") == ["--root", "/lab/nodes/ctl1/root"]
    assert SshRunner({}).agent_options("ctl1") == []


def test_lab_ssh_configuration_is_key_only_and_pinned() -> None:
    sshd = render_sshd_config("/lab/nodes/ctl1/ssh", "/lab/ssh/authorized_keys")
    assert "PasswordAuthentication no" in sshd and "UsePAM no" in sshd
    assert "HostKey /lab/nodes/ctl1/ssh/ssh_host_ed25519_key" in sshd
    assert not re.search(r"^\s*Include", sshd, re.M)
    client = render_client_config({"ctl1": "10.20.0.11", "cmp1": "10.20.0.101"},
                                  "/lab/ssh/id_ed25519", "/lab/ssh/known_hosts")
    blocks = client.split("Host ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["cmp1", "ctl1"]
    for needed in ("StrictHostKeyChecking yes", "UserKnownHostsFile /lab/ssh/known_hosts",
                   "GlobalKnownHostsFile /dev/null", "IdentitiesOnly yes", "BatchMode yes"):
        assert client.count(needed) == 2, needed


def test_promoted_here_reads_crm_mon_roles() -> None:
    from envrouter.ops.parse import parse_crm_mon

    xml = """<pacemaker-result><summary/><nodes/><resources>
<clone id="conntrackd-clone" multi_state="true">
 <resource id="conntrackd" resource_agent="ocf:envrouter:conntrackd" role="Promoted"
   active="true" failed="false" managed="true" blocked="false"><node name="ctl1"/></resource>
 <resource id="conntrackd" resource_agent="ocf:envrouter:conntrackd" role="Unpromoted"
   active="true" failed="false" managed="true" blocked="false"><node name="ctl2"/></resource>
</clone></resources></pacemaker-result>"""
    instances = parse_crm_mon(xml).resources
    assert P.promoted_here(instances, "conntrackd", "ctl1")
    assert not P.promoted_here(instances, "conntrackd", "ctl2")
    assert not P.promoted_here(instances, "dns", "ctl1")


def test_lab_login_prints_the_login_page_and_the_token(tmp_path) -> None:
    import json
    import sys

    state = {"plan": {"controllers": 3, "computes": 2, "prefix": "erl-",
                      "state_dir": str(tmp_path), "bridge_kind": "linux"},
             "deployment": {"control_plane": {"url": "http://127.0.0.1:41234",
                                              "token": "er_secret"}}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    out = subprocess.run([sys.executable, "-m", "envrouter.cli.main", "lab", "login",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "http://127.0.0.1:41234/ui/login" in out.stdout and "er_secret" in out.stdout
    state["deployment"] = None
    (tmp_path / "state.json").write_text(json.dumps(state))
    none = subprocess.run([sys.executable, "-m", "envrouter.cli.main", "lab", "login",
                           "--state-dir", str(tmp_path)], capture_output=True, text=True)
    assert none.returncode != 0 and "no control plane" in (none.stderr + none.stdout)
