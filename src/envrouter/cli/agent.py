"""`envrouter agent plan|apply|status|teardown`: converge this node to its document."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from envrouter.cli import imports_without_gc
from envrouter.cli.common import EXIT_FAILED, handle_errors, require_root

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Node agent: plan, apply, status, teardown.",
)

DocumentOpt = typer.Option(None, "--document", help="deployment document (JSON file)")
ServerOpt = typer.Option(None, "--server", help="control plane URL, e.g. http://10.20.0.2:8700")
NodeOpt = typer.Option(None, "--node", help="this node's hostname (with --server)")
TokenFileOpt = typer.Option(None, "--token-file", help="API token file (else $ENVROUTER_TOKEN)")
RootOpt = typer.Option("/", "--root", help="root directory for the files the agent writes")
StateOpt = typer.Option("/var/lib/envrouter", "--state-dir", help="where apply saves the document")
ScopeOpt = typer.Option(
    "auto",
    "--scope",
    help="auto | all | vrouter | host. auto (the default): host on a controller of an HA "
    "environment, whose vrouter namespace belongs to Pacemaker's vrouter clone; all elsewhere",
)
HostNsOpt = typer.Option(
    "",
    "--host-netns",
    help="act on this named namespace as the node (default: the one the agent runs in)",
)
TimingOpt = typer.Option(False, "--timing", help="print the time the command's own work took")


@dataclass(frozen=True)
class Where:
    """The options every agent command takes: where the document comes from, where it acts."""

    document: Path | None
    server: str | None
    node: str | None
    token_file: Path | None
    root: str
    state_dir: Path
    scope: str
    host_netns: str


_WHERE_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("document", Path | None, DocumentOpt),
        ("server", str | None, ServerOpt),
        ("node", str | None, NodeOpt),
        ("token_file", Path | None, TokenFileOpt),
        ("root", str, RootOpt),
        ("state_dir", Path, StateOpt),
        ("scope", str, ScopeOpt),
        ("host_netns", str, HostNsOpt),
    )
]


def node_command(func: Callable[..., None]) -> Callable[..., None]:
    """Declare the shared options once: the command gets them as one `Where` (its first
    argument) and declares only its own options."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(func, eval_str=True).parameters.values()
           if p.name != "where"]

    @functools.wraps(func)
    def command(**options: Any) -> None:
        where = Where(**{p.name: options.pop(p.name) for p in _WHERE_OPTIONS})
        func(where, **options)

    command.__signature__ = inspect.Signature([*_WHERE_OPTIONS, *own])  # type: ignore
    return command


def _fetch(server: str, node: str, token_file: Path | None) -> bytes:
    import urllib.error
    import urllib.parse
    import urllib.request

    from envrouter.errors import InfraError, ValidationError

    if token_file is not None:
        token = token_file.read_text().strip()
    else:
        token = os.environ.get("ENVROUTER_TOKEN", "").strip()
    if not token:
        raise ValidationError("agent", "token", "give --token-file or set ENVROUTER_TOKEN")
    url = (
        f"{server.rstrip('/')}/api/v1/nodes/by-hostname/"
        f"{urllib.parse.quote(node, safe='')}/document"
    )
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise InfraError(f"GET {url}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    except OSError as exc:
        raise InfraError(f"GET {url}: {exc}") from exc


def _document(
    document: Path | None,
    server: str | None,
    node: str | None,
    token_file: Path | None,
    state_dir: Path,
    *,
    fallback: bool = False,
):
    from envrouter.document import parse_document
    from envrouter.errors import ValidationError

    if document is not None and server is not None:
        raise ValidationError("agent", "--document", "give either --document or --server")
    if document is not None:
        from envrouter.agent import load_document

        return load_document(str(document))
    if server is not None:
        if not node:
            raise ValidationError("agent", "--node", "--server needs --node NAME")
        return parse_document(_fetch(server, node, token_file))
    saved = state_dir / "document.json"
    if fallback and saved.exists():
        from envrouter.agent import load_document

        return load_document(str(saved))
    if fallback:
        return None
    raise ValidationError("agent", "--document", "give --document FILE or --server URL --node N")


def _scope(doc, scope: str) -> str:
    from envrouter.agent.desired import AUTO_SCOPE, SCOPES, resolve_scope
    from envrouter.errors import ValidationError

    if scope != AUTO_SCOPE and scope not in SCOPES:
        raise ValidationError(
            "agent", "--scope", f"{scope!r} is not one of {AUTO_SCOPE}, {', '.join(SCOPES)}"
        )
    return scope if doc is None else resolve_scope(doc, scope)


def _load(where: Where, *, fallback: bool = True):
    """The document (see `_document`) and the scope for it (`auto` resolved)."""
    doc = _document(where.document, where.server, where.node, where.token_file, where.state_dir,
                    fallback=fallback)
    return doc, _scope(doc, where.scope)


def _save(doc, state_dir: Path) -> None:
    from envrouter.files import write_if_changed

    # a no-op apply writes nothing
    write_if_changed(state_dir / "document.json", doc.model_dump_json(indent=2) + "\n", 0o600)


def _timing(on: bool, t0: float, t_work: float,
            work: str = "document, observe, plan, apply") -> None:
    if on:
        now = time.perf_counter()
        print(
            f"timing: own work {1000 * (now - t_work):.1f} ms "
            f"({work}); command {1000 * (now - t0):.1f} ms "
            "(with imports)",
            file=sys.stderr,
        )


def lean_pyroute2() -> None:
    """Load of pyroute2 only what the agent uses: `IPRoute`, `NetlinkError` and `netns` (see
    envrouter.agent.netlink). The package's own __init__ imports every part of the library
    (NDB, IPDB, conntrack, wireguard, nl80211, ...: 64 more modules, ~40-60 ms of CPU of every
    `agent` command; docs/ha.md, "Agent cost"). The package module is made from its spec
    without running that __init__; any other name asked of it later (another caller in the
    same process) is its submodule, or else runs the __init__ once (PEP 562). Nothing to do if
    pyroute2 is loaded already."""
    import importlib
    import importlib.util

    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the import in envrouter.agent.netlink says so
    package = importlib.util.module_from_spec(spec)

    def attribute(name: str) -> Any:
        try:
            return importlib.import_module(f"pyroute2.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pyroute2.{name}":
                raise
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # the whole library, as `import pyroute2` loads it
        return getattr(package, name)

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package
    try:
        from pyroute2.iproute import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
    except BaseException:
        del sys.modules["pyroute2"]
        raise
    package.IPRoute, package.NetlinkError = IPRoute, NetlinkError


PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def lean_pydantic_plugins() -> None:
    """Build the document's validators without pydantic's plugin loader. The first validator
    pydantic builds imports that loader, which scans the installed distributions for plugins
    (entry point group `pydantic`): the scan is cheap, but the loader's module imports
    `importlib.metadata` (email, zipfile, csv, ...): ~20 ms of CPU of every agent command that
    reads a document (docs/ha.md, "Agent cost"). The agent's process runs without pydantic
    plugins (none is installed with envrouter; the document's validation is the agent's own),
    as `PYDANTIC_DISABLE_PLUGINS=1` would ask (pydantic's own switch, which skips the scan but
    not that import): the loader is a module whose `get_plugins` (all pydantic asks of it)
    answers none. Nothing to do if the loader is loaded already (a validator was built) or if
    PYDANTIC_DISABLE_PLUGINS names only some plugins (the real loader reads it)."""
    import types

    if PYDANTIC_PLUGIN_LOADER in sys.modules:
        return
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS", "1") not in ("__all__", "1", "true"):
        return
    loader = types.ModuleType(PYDANTIC_PLUGIN_LOADER, lean_pydantic_plugins.__doc__)
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[PYDANTIC_PLUGIN_LOADER] = loader


def _preload() -> None:
    """Import what the work needs, so --timing separates imports from work."""
    with imports_without_gc():
        lean_pyroute2()
        lean_pydantic_plugins()
        from pyroute2 import IPRoute, netns  # noqa: F401

        import envrouter.agent.apply  # noqa: F401
        import envrouter.agent.observe  # noqa: F401
        import envrouter.document  # noqa: F401


NOOP_WORK = "the kernel's stamp, unchanged"  # --timing of a no-op from the stamp


def _noop_record(where: Where):  # -> envrouter.agent.noop.NoopRecord | None
    """The no-op record of an apply from a document file (not one fetched from a server)."""
    if where.document is None or where.server is not None:
        return None
    from envrouter.agent.noop import NoopRecord

    return NoopRecord(document=str(where.document), root=where.root, scope=where.scope,
                      host_netns=where.host_netns, saved=str(where.state_dir / "document.json"))


def _steps(doc, where: Where, scope: str):
    from envrouter.agent import run_pipeline

    return run_pipeline(doc, root=where.root, scope=scope, host_netns=where.host_netns,
                        dry_run=True)


@app.command("plan")
@handle_errors
@node_command
def plan_cmd(where: Where, timing: bool = TimingOpt) -> None:
    """Print the steps an apply would take; change nothing."""
    require_root("envrouter agent plan")
    t0 = time.perf_counter()
    _preload()
    tw = time.perf_counter()
    doc, scope = _load(where)
    steps = _steps(doc, where, scope)
    for s in steps:
        print(s.description)
    if not steps:
        print("nothing to do: converged")
    _timing(timing, t0, tw)


@app.command("apply")
@handle_errors
@node_command
def apply_cmd(
    where: Where,
    timing: bool = TimingOpt,
    chrony_restart: str = typer.Option(
        "",
        "--chrony-restart",
        help="command run (split on spaces) when the chrony client config changed",
    ),
) -> None:
    """Converge this node to the document and save it to <state-dir>/document.json."""
    require_root("envrouter agent apply")
    t0 = time.perf_counter()
    record = _noop_record(where)
    if record is not None and record.converged():
        # the kernel stamped and compared: nothing the apply reads changed since it last
        # found nothing to do (envrouter.agent.noop)
        print("nothing to do: converged")
        _timing(timing, t0, t0, NOOP_WORK)
        return
    _preload()
    tw = time.perf_counter()
    doc, scope = _load(where, fallback=False)
    from envrouter.agent import run_pipeline
    from envrouter.agent.desired import chrony_client_path
    from envrouter.agent.steps import writes_file

    if record is not None:
        record.observing(doc, scope)
    steps = run_pipeline(
        doc,
        root=where.root,
        scope=scope,
        host_netns=where.host_netns,
        before_changes=lambda: _save(doc, where.state_dir),  # once the preconditions hold
        on_step=lambda step: print(step.description, flush=True),
    )
    if record is not None:
        record.done(steps)
    if not steps:
        print("nothing to do: converged")
    if chrony_restart and writes_file(steps, chrony_client_path(where.root)):
        import shlex
        import subprocess

        res = subprocess.run(shlex.split(chrony_restart), capture_output=True, text=True)
        if res.returncode != 0:
            print(f"failed: {chrony_restart}: exit {res.returncode}", file=sys.stderr)
            raise typer.Exit(EXIT_FAILED)
        print(f"ran {chrony_restart}")
    _timing(timing, t0, tw)


@app.command("status")
@handle_errors
@node_command
def status_cmd(where: Where) -> None:
    """Print 'converged' or the pending steps (exit 1)."""
    require_root("envrouter agent status")
    lean_pyroute2()
    lean_pydantic_plugins()
    doc, scope = _load(where)
    steps = _steps(doc, where, scope)
    if not steps:
        print("converged")
        return
    print(f"not converged: {len(steps)} pending step(s)")
    for s in steps:
        print(f"  {s.description}")
    raise typer.Exit(EXIT_FAILED)


@app.command("teardown")
@handle_errors
@node_command
def teardown_cmd(where: Where) -> None:
    """Remove everything the agent owns on this node (for the scope); nothing else."""
    require_root("envrouter agent teardown")
    lean_pyroute2()
    lean_pydantic_plugins()
    doc = _document(where.document, where.server, where.node, where.token_file, where.state_dir,
                    fallback=True)
    if doc is None:
        print("nothing to do: no document given or saved")
        return
    from envrouter.agent import teardown

    for line in teardown(doc, root=where.root, scope=_scope(doc, where.scope),
                         host_netns=where.host_netns):
        print(line)
