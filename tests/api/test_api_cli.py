"""The CLI end to end: db, token, env import/export/list/reserve-vips, document, serve."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from serving import serve_process

ROOT = Path(__file__).resolve().parents[2]
ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]


def run(*args, url, check=True):
    r = subprocess.run(
        [*ENVROUTER, *args, "--database-url", url], capture_output=True, text=True, timeout=120
    )
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_cli_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert "0003_ipv6" in run("db", "upgrade", url=url).stdout
    assert run("db", "current", url=url).stdout.startswith("0003_ipv6")
    run("env", "import", str(ROOT / "examples" / "environment.yaml"), url=url)
    listing = run("env", "list", url=url).stdout
    assert "demo" in listing and " 5 " in listing
    doc = json.loads(run("document", "demo", "cmp1", url=url).stdout)
    assert doc["host"]["gateway_source"] == "vrouter"
    assert doc["host"]["search_domain"] == "demo.example"
    ctl = json.loads(run("document", "demo", "ctl1", url=url).stdout)
    assert ctl["vrouter"]["vip_management"]["address"] == doc["host"]["gateway"]
    reserved = run("env", "reserve-vips", "demo", url=url).stdout
    assert doc["host"]["gateway"] in reserved  # idempotent: same address
    exported = yaml.safe_load(run("env", "export", "demo", url=url).stdout)
    assert exported["vrouter"]["dns_list"] == ["198.51.100.53"]
    assert [n["hostname"] for n in exported["nodes"]] == ["ctl1", "ctl2", "ctl3", "cmp1", "cmp2"]
    # bad input: exit code 2 and the field named
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load((ROOT / "examples" / "environment.yaml").read_text())
    data["name"] = "bad"
    data["nodes"] = []
    data["vrouter"]["dns_list"] = ["198.51.100.53\nserver=8.8.8.8"]
    bad.write_text(yaml.safe_dump(data))
    r = run("env", "import", str(bad), url=url, check=False)
    assert r.returncode == 2 and "dns_list" in r.stderr
    assert "bad" not in run("env", "list", url=url).stdout  # nothing half-imported
    r = run("document", "demo", "nope", url=url, check=False)
    assert r.returncode == 2 and "not found" in r.stderr
    # tokens
    secret = run("token", "create", "--name", "ops", "--read-only", url=url).stdout.strip()
    assert secret.startswith("ert_")
    assert "read-only" in run("token", "list", url=url).stdout
    assert secret not in run("token", "list", url=url).stdout
    run("token", "revoke", "ops", url=url)
    assert "ops" not in run("token", "list", url=url).stdout


def test_document_schema_command(tmp_path):
    out = subprocess.run(
        [*ENVROUTER, "document", "--schema"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert json.loads(out)["title"] == "DeploymentDocument"


def test_serve_with_port(tmp_path):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    with serve_process(ENVROUTER, tmp_path, url) as base:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
            assert json.loads(r.read()) == {"status": "ok"}
        # serve migrated the database itself
        r = run("db", "current", url=url)
        assert r.stdout.startswith("0003_ipv6")
