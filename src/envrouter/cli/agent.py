"""`envrouter agent plan|apply|status|teardown`: converge this node to its document."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

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
ScopeOpt = typer.Option("all", "--scope", help="all | vrouter | host")
HostNsOpt = typer.Option(
    "",
    "--host-netns",
    help="act on this named namespace as the node (default: the one the agent runs in)",
)
TimingOpt = typer.Option(False, "--timing", help="print the time the command's own work took")


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


def _scope(scope: str) -> str:
    from envrouter.agent.desired import SCOPES
    from envrouter.errors import ValidationError

    if scope not in SCOPES:
        raise ValidationError("agent", "--scope", f"{scope!r} is not one of {', '.join(SCOPES)}")
    return scope


def _load(
    document: Path | None,
    server: str | None,
    node: str | None,
    token_file: Path | None,
    state_dir: Path,
    scope: str,
    *,
    fallback: bool = True,
):
    """The document (see `_document`) and the checked scope, in that order."""
    doc = _document(document, server, node, token_file, state_dir, fallback=fallback)
    return doc, _scope(scope)


def _save(doc, state_dir: Path) -> None:
    from envrouter.agent.files import read_file, write_atomic

    path = str(state_dir / "document.json")
    text = doc.model_dump_json(indent=2) + "\n"
    if read_file(path) != text:  # a no-op apply writes nothing
        write_atomic(path, text, 0o600)


def _timing(on: bool, t0: float, t_work: float) -> None:
    if on:
        now = time.perf_counter()
        print(
            f"timing: own work {1000 * (now - t_work):.1f} ms "
            f"(document, observe, plan, apply); command {1000 * (now - t0):.1f} ms "
            "(with imports)",
            file=sys.stderr,
        )


def _preload() -> None:
    """Import what the work needs, so --timing separates imports from work."""
    import pyroute2  # noqa: F401

    import envrouter.agent.apply  # noqa: F401
    import envrouter.agent.observe  # noqa: F401
    import envrouter.document  # noqa: F401


def _steps(doc, root: str, scope: str, host_netns: str, teardown: bool):
    from envrouter.agent import compute_plan

    return compute_plan(doc, root=root, scope=scope, host_netns=host_netns, teardown=teardown)


@app.command("plan")
@handle_errors
def plan_cmd(
    document: Path | None = DocumentOpt,
    server: str | None = ServerOpt,
    node: str | None = NodeOpt,
    token_file: Path | None = TokenFileOpt,
    root: str = RootOpt,
    state_dir: Path = StateOpt,
    scope: str = ScopeOpt,
    host_netns: str = HostNsOpt,
    timing: bool = TimingOpt,
) -> None:
    """Print the steps an apply would take; change nothing."""
    require_root("envrouter agent plan")
    t0 = time.perf_counter()
    _preload()
    tw = time.perf_counter()
    doc, scope = _load(document, server, node, token_file, state_dir, scope)
    steps = _steps(doc, root, scope, host_netns, False)
    for s in steps:
        print(s.description)
    if not steps:
        print("nothing to do: converged")
    _timing(timing, t0, tw)


@app.command("apply")
@handle_errors
def apply_cmd(
    document: Path | None = DocumentOpt,
    server: str | None = ServerOpt,
    node: str | None = NodeOpt,
    token_file: Path | None = TokenFileOpt,
    root: str = RootOpt,
    state_dir: Path = StateOpt,
    scope: str = ScopeOpt,
    host_netns: str = HostNsOpt,
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
    _preload()
    tw = time.perf_counter()
    doc, scope = _load(document, server, node, token_file, state_dir, scope, fallback=False)
    from envrouter.agent import agent_lock
    from envrouter.agent.apply import apply
    from envrouter.agent.desired import desired_state
    from envrouter.agent.netlink import Netlink
    from envrouter.agent.observe import observe
    from envrouter.agent.plan import check_preconditions, plan

    desired = desired_state(doc, root=root, scope=scope, host_netns=host_netns)
    with agent_lock(), Netlink() as link:
        observed = observe(desired, link)
        check_preconditions(desired, observed)  # refuse before saving or changing anything
        _save(doc, state_dir)
        steps = plan(desired, observed)
        for step in steps:
            apply([step], link)
            print(step.description, flush=True)
    if not steps:
        print("nothing to do: converged")
    chrony = [s for s in steps if s.op == "write_file" and s.args[0].endswith("chrony.conf")]
    if chrony and chrony_restart:
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
def status_cmd(
    document: Path | None = DocumentOpt,
    server: str | None = ServerOpt,
    node: str | None = NodeOpt,
    token_file: Path | None = TokenFileOpt,
    root: str = RootOpt,
    state_dir: Path = StateOpt,
    scope: str = ScopeOpt,
    host_netns: str = HostNsOpt,
) -> None:
    """Print 'converged' or the pending steps (exit 1)."""
    require_root("envrouter agent status")
    doc, scope = _load(document, server, node, token_file, state_dir, scope)
    steps = _steps(doc, root, scope, host_netns, False)
    if not steps:
        print("converged")
        return
    print(f"not converged: {len(steps)} pending step(s)")
    for s in steps:
        print(f"  {s.description}")
    raise typer.Exit(EXIT_FAILED)


@app.command("teardown")
@handle_errors
def teardown_cmd(
    document: Path | None = DocumentOpt,
    server: str | None = ServerOpt,
    node: str | None = NodeOpt,
    token_file: Path | None = TokenFileOpt,
    root: str = RootOpt,
    state_dir: Path = StateOpt,
    scope: str = ScopeOpt,
    host_netns: str = HostNsOpt,
) -> None:
    """Remove everything the agent owns on this node (for the scope); nothing else."""
    require_root("envrouter agent teardown")
    doc = _document(document, server, node, token_file, state_dir, fallback=True)
    if doc is None:
        print("nothing to do: no document given or saved")
        return
    from envrouter.agent import teardown

    for line in teardown(doc, root=root, scope=_scope(scope), host_netns=host_netns):
        print(line)
