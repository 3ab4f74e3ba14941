"""`agent apply`'s no-op answered from the kernel's stamp (envrouter.agent.noop): it still
observes the kernel, so every drift reaches the full apply and is re-asserted.

Whole processes of the installed `envrouter` command, in namespaces made here (unique prefix,
removed at the end); `python -X importtime` tells which path an apply took: the full one
loads pyroute2 and the document model, the no-op from the stamp neither.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.agent import make_node

from agent_documents import controller_document
from envrouter.waiting import poll
from monitor_imports import imported_modules

REPO = Path(__file__).resolve().parents[2]
ENVROUTER = str(REPO / ".venv" / "bin" / "envrouter")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture
def node(tmp_path):
    prefix = f"ern{secrets.token_hex(3)}"
    vr = f"{prefix}-vr"
    try:
        host = make_node(prefix, "node")  # the bridges br-mgmt and br-ex, the host addresses
        doc = tmp_path / "document.json"
        doc.write_text(controller_document(vr).model_dump_json())
        yield {"host": host, "vr": vr, "doc": doc, "tmp": tmp_path}
    finally:
        subprocess.run(["ip", "netns", "del", vr], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"{prefix}-node"], capture_output=True)


def _apply(node) -> tuple[str, bool]:
    """(stdout, whether the full apply ran) of one `envrouter agent apply`."""
    t = node["tmp"]
    argv = [sys.executable, "-X", "importtime", ENVROUTER, "agent", "apply",
            "--document", str(node["doc"]), "--host-netns", node["host"], "--root",
            str(t / "root"), "--state-dir", str(t / "state"), "--scope", "all"]
    env = {**os.environ, "ENVROUTER_AGENT_LOCK": str(t / "run" / "agent.lock")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = imported_modules(proc.stderr)
    full = "pyroute2.iproute" in modules
    assert full == ("envrouter.document" in modules)
    return proc.stdout.strip(), full


def _tentative(node) -> bool:
    """Does a link of the node's namespaces still run IPv6 duplicate address detection?"""
    return any(sh("ip", "-n", ns, "-6", "addr", "show", "tentative").strip()
               for ns in (node["vr"], node["host"]))


def _settles(node) -> int:
    """Applies until one answers from the stamp; how many observed in full before it. A link
    just created or set up changes by itself for a second or two (IPv6 duplicate address
    detection: its fe80:: address stops being tentative, its local route appears): every
    apply then sees a changed stamp and observes in full, as it must. So the first apply
    waits for the detection to end (else it could answer from a stamp the end of the
    detection then changes: the next apply observes in full again)."""
    assert poll(lambda: not _tentative(node), timeout=30)
    for full_applies in range(30):
        out, full = _apply(node)
        assert out == "nothing to do: converged"
        if not full:
            return full_applies
        time.sleep(0.5)
    raise AssertionError("no apply answered from the stamp in 30 tries")


def test_a_noop_apply_observes_the_kernel_and_every_drift_is_reasserted(node):
    vr, host = node["vr"], node["host"]
    out, full = _apply(node)
    assert full and "nothing to do" not in out  # from scratch
    assert _settles(node) >= 1  # the first no-op observes in full (and records)
    assert _apply(node) == ("nothing to do: converged", False)  # from the stamp
    drifts = [
        (["ip", "netns", "exec", vr, "sysctl", "-qw", "net.ipv4.ip_forward=0"],
         "sysctl net.ipv4.ip_forward=1"),
        (["ip", "-n", vr, "route", "del", "default"], "route default"),
        (["ip", "netns", "exec", vr, "nft", "flush", "ruleset"], "nft"),
        (["ip", "-n", host, "addr", "flush", "dev", "vr-host"], "169.254.77.1"),
        (["ip", "-n", vr, "link", "set", "vr-pub", "down"], "vr-pub"),
    ]
    for command, step in drifts:
        sh(*command)
        out, full = _apply(node)
        assert full and step in out, (command, out)
        assert _settles(node) >= 1
    # a new document (another inode, the same content) is read again
    node["doc"].write_text(node["doc"].read_text())
    assert _apply(node) == ("nothing to do: converged", True)
    assert _settles(node) == 0
    # the saved copy changed behind the agent's back: the full apply writes it again
    saved = node["tmp"] / "state" / "document.json"
    saved.write_text("{}")
    assert _apply(node) == ("nothing to do: converged", True)
    assert saved.read_text() != "{}"
    assert _settles(node) == 0
