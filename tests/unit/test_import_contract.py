"""The import contract: pure modules (document, desired state, plan, renderers, layout) import
no effectful module, in the spirit of vyos-1x's check that only the config phase reads the
configuration.

Each pure module is imported in a fresh interpreter; the test then reads every envrouter
module that import loaded and inspects its import statements (module level and inside
functions: a lazy import runs as soon as the function does). Third-party libraries are judged
by whether they were loaded at all (pydantic's own use of the standard library is not ours).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from monitor_imports import heavy_in, imported_modules, run_monitor

PURE = (
    "envrouter.document",
    "envrouter.agent.desired",
    "envrouter.agent.steps",
    "envrouter.agent.plan",
    "envrouter.agent.nftables.render",
    "envrouter.ha.layout",
    "envrouter.ha.corosync",
    "envrouter.services.templating",
    "envrouter.model.rules",
    "envrouter.model.documents",
)
# standard-library modules that act on processes, the network, the kernel or files
EFFECT_STDLIB = frozenset({
    "subprocess", "socket", "ctypes", "threading", "multiprocessing", "fcntl", "signal",
    "shutil", "tempfile", "select", "pty", "urllib.request", "http.client",
})
# libraries that exist to cause effects: loading one at all breaks the contract
EFFECT_PACKAGES = frozenset({
    "pyroute2", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "httpx", "typer",
})
# our own effectful modules and packages
EFFECT_OURS = frozenset({
    "envrouter.agent.netlink", "envrouter.agent.nftables.kernel", "envrouter.agent.apply",
    "envrouter.agent.observe", "envrouter.agent.ovs", "envrouter.agent.vip", "envrouter.files",
    "envrouter.services.process", "envrouter.ha.cib", "envrouter.ha.install",
    "envrouter.ops.collect", "envrouter.db", "envrouter.api", "envrouter.cli", "envrouter.lab",
})


def _loaded_by(module: str) -> list[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


def _imports_of(module: str) -> set[str]:
    """Every module named by an import statement in `module`'s source that can run: anywhere
    in a module (a lazy import runs as soon as its function does); in a package's __init__,
    which is loaded as the parent of the modules under it, only what runs at load time.
    `if TYPE_CHECKING:` blocks never run."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    with open(spec.origin) as f:
        tree = ast.parse(f.read(), spec.origin)
    package = spec.submodule_search_locations is not None
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if package and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _within(name: str, forbidden: frozenset[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def violations(module: str) -> list[str]:
    loaded = _loaded_by(module)
    found = [f"loads {m}" for m in loaded if _within(m, EFFECT_PACKAGES | EFFECT_OURS)]
    for ours in (m for m in loaded if m == "envrouter" or m.startswith("envrouter.")):
        for name in sorted(_imports_of(ours)):
            if _within(name, EFFECT_STDLIB | EFFECT_PACKAGES | EFFECT_OURS):
                found.append(f"{ours} imports {name}")
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_nothing_effectful(module):
    assert violations(module) == []


def test_the_check_sees_an_effectful_module():
    # the same check on the applier's side must object, or the test above proves nothing
    found = violations("envrouter.agent.observe")
    assert "loads envrouter.agent.netlink" in found
    assert "envrouter.agent.netlink imports subprocess" in found
    # a lazy import inside a function counts, though it has not run
    assert "loads pyroute2" not in found
    assert "envrouter.agent.netlink imports pyroute2.netns" in found


# -- the OCF monitors: nothing heavy on their path (tests/monitor_imports.py) ----------------
@pytest.mark.parametrize("name", ["dns", "ntp", "conntrackd", "vrouter"])
def test_a_recurring_monitor_imports_nothing_heavy(name, tmp_path):
    from agent_documents import controller_document

    doc = tmp_path / "document.json"
    # a namespace that does not exist here: the monitor answers 7 from what it recorded
    doc.write_text(controller_document("ert-absent-vr").model_dump_json())
    env = {"PATH": os.environ["PATH"], "OCF_RESKEY_CRM_meta_interval": "10000",
           "OCF_RESKEY_document": str(doc), "OCF_RESKEY_run_root": str(tmp_path / "run"),
           "OCF_RESKEY_log_root": str(tmp_path / "log"), "OCF_RESKEY_root": str(tmp_path),
           "ENVROUTER_AGENT_LOCK": str(tmp_path / "lock" / "agent.lock")}
    # the first run reads the document (pydantic) and records what the monitor needs
    rc, first = run_monitor(name, env, importtime=True)
    assert rc == 7 and "pydantic" in first
    rc, modules = run_monitor(name, env, importtime=True)
    assert rc == 7
    module = "ocf_daemon" if name in ("dns", "ntp") else f"ocf_{name}"  # ocf_daemon.SERVICE_AGENTS
    assert f"envrouter.ha.{module}" in modules
    assert heavy_in(modules) == []
    # a new document (another inode) is read again: the record follows its inputs
    doc.write_text(controller_document("ert-absent-vr2").model_dump_json())
    rc, again = run_monitor(name, env, importtime=True)
    assert rc == 7 and "pydantic" in again


def test_the_monitor_check_sees_a_heavy_import():
    # the same check on a module that loads the document model must object
    out = subprocess.run([sys.executable, "-I", "-X", "importtime", "-c",
                          "import envrouter.document"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "pydantic" in heavy_in(imported_modules(out.stderr))
