"""Shared shape of the agents that run one daemon inside the vrouter namespace (dns, ntp,
conntrackd): start/stop/monitor by the per-namespace PID file, validate-all by rendering the
configuration (which validates every value that goes into it).

The monitor runs every 5-10 s, each time a new process: it must not parse the deployment
document (pydantic) nor render anything (jinja2) when nothing changed. What it needs of the
daemon — its namespace, run directory, PID file, command name and the digest of the inputs
its configuration is rendered from — is a pure function of the document and the agent's
parameters, so the first run that builds the daemon from the document records it (an
`Instance`, under ``<run_root>/.ocf/``) together with a stamp of those inputs: the document
file's identity (inode, size, mtime, ctime) and the package's renderers and templates. A
later monitor whose stamp is the same takes the recorded instance; any difference builds the
daemon from the document again. Only standard library os and sys are imported on that path.
"""

from __future__ import annotations

import os

from envrouter.agent.namespaces import netns_exists
from envrouter.ha.ocf_base import (
    DOCUMENT_PARAM,
    LOG_ROOT_PARAM,
    OCF_ERR_GENERIC,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    RUN_ROOT_PARAM,
    Action,
    Agent,
    Context,
    Param,
    load_vrouter,
)
from envrouter.services import status

TYPE_CHECKING = False  # without importing typing (docs/ha.md, "Agent cost")
if TYPE_CHECKING:
    from collections.abc import Callable

    from envrouter.document import DeploymentDocument
    from envrouter.ha.ocf_base import Handler
    from envrouter.services.process import Daemon

    BuildDaemon = Callable[[DeploymentDocument, Context], Daemon]

COMMON_PARAMS = [DOCUMENT_PARAM, RUN_ROOT_PARAM, LOG_ROOT_PARAM]
MEMO_DIR = ".ocf"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what a daemon's configuration is rendered by, besides the document (a package upgrade or an
# edit changes a file's identity here)
_RENDERERS = ("document.py", "services", os.path.join("services", "templates"))


def daemon_from(ctx: Context, build: BuildDaemon) -> Daemon:
    return build(load_vrouter(ctx), ctx)


class Instance:
    """What a monitor needs to know of a daemon instance, without the document."""

    __slots__ = ("namespace", "run_dir", "pid_file", "comm", "source")

    def __init__(self, namespace: str, run_dir: str, pid_file: str, comm: str,
                 source: str) -> None:
        self.namespace = namespace
        self.run_dir = run_dir
        self.pid_file = pid_file
        self.comm = comm
        self.source = source

    def file(self, name: str) -> str:
        return os.path.join(self.run_dir, name)


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def inputs_stamp(ctx: Context) -> str:
    """The identity of everything the instance is computed from: the agent's parameters, the
    document file and the renderers' files. Raises OSError if the document cannot be read."""
    parts = [repr(sorted(ctx.params.items())),
             _identity(ctx.params.get("document", DOCUMENT_PARAM.default or ""))]
    for rel in _RENDERERS:
        path = os.path.join(_PACKAGE, rel)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if not name.startswith("."):
                    full = os.path.join(path, name)
                    if os.path.isfile(full):
                        parts.append(f"{name}={_identity(full)}")
        else:
            parts.append(f"{rel}={_identity(path)}")
    return "\n".join(parts)


def _memo_path(ctx: Context, name: str) -> str:
    import binascii

    key = binascii.crc32(repr(sorted(ctx.params.items())).encode())
    run_root = ctx.params.get("run_root", RUN_ROOT_PARAM.default or "/run/envrouter")
    return os.path.join(run_root, MEMO_DIR, f"{name}-{key:08x}")


_FIELDS = Instance.__slots__


def instance(ctx: Context, name: str, build: BuildDaemon) -> tuple[Instance, Daemon | None]:
    """The instance the document and parameters describe: recorded, or built from the
    document (and recorded) when anything it is computed from changed; with the daemon if it
    was built."""
    memo = _memo_path(ctx, name)
    try:
        stamp: str | None = inputs_stamp(ctx)
    except OSError:
        stamp = None  # no document: building the daemon says why
    if stamp is not None:
        try:
            with open(memo) as f:
                recorded = f.read().split("\n\0\n")
        except OSError:
            recorded = []
        if len(recorded) == len(_FIELDS) + 1 and recorded[0] == stamp:
            return Instance(*recorded[1:]), None
    d = daemon_from(ctx, build)
    found = Instance(d.namespace, str(d.paths.run_dir), str(d.paths.pid_file), d.comm, d.source)
    if stamp is not None:
        from envrouter.files import write_if_changed

        text = "\n\0\n".join([stamp, *(getattr(found, f) for f in _FIELDS)])
        try:
            os.makedirs(os.path.dirname(memo), exist_ok=True)
            write_if_changed(memo, text)
        except Exception as exc:  # noqa: BLE001 - a monitor must not fail for its memo
            ctx.log("warning", f"cannot record the instance in {memo}: {exc}")
    return found, d


def make_handlers(
    build: BuildDaemon,
    *,
    what: str,
    after_restart: Callable[[Context, Daemon], None] | None = None,
) -> dict[str, Handler]:
    def validate(ctx: Context) -> int:
        daemon_from(ctx, build).files()  # renders: a bad value raises ValidationError (field)
        return OCF_SUCCESS

    def start(ctx: Context) -> int:
        d = daemon_from(ctx, build)
        if d.start():
            ctx.log("info", f"{what} started in namespace {d.namespace}")
        return OCF_SUCCESS

    def stop(ctx: Context) -> int:
        d = daemon_from(ctx, build)
        if d.stop():
            ctx.log("info", f"{what} stopped in namespace {d.namespace}")
        return OCF_SUCCESS

    def monitor(ctx: Context) -> int:
        i, built = instance(ctx, what, build)
        if status.running_pid(i.pid_file, i.comm) is None:
            return OCF_NOT_RUNNING
        if not netns_exists(i.namespace):
            # the daemon outlived its namespace: it serves nothing any more
            ctx.log("error", f"{what} runs but namespace {i.namespace} is gone")
            return OCF_ERR_GENERIC
        if not ctx.is_probe and status.recorded_source(i.run_dir) != i.source:
            d = built or daemon_from(ctx, build)
            if d.config_drifted():
                # a new document changed the configuration: re-assert it
                ctx.log("warning", f"{what} configuration changed: restarting it")
                d.restart()
                if after_restart is not None:
                    after_restart(ctx, d)
            else:
                d.prepare()  # the same files from new inputs: record their digest
        return OCF_SUCCESS

    return {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}


def clone_actions() -> list[Action]:
    return [
        Action("start", timeout="30s"),
        Action("stop", timeout="30s"),
        Action("monitor", timeout="20s", interval="10s", depth="0"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ]


def make_daemon_agent(
    name: str, shortdesc: str, longdesc: str, build: BuildDaemon, extra: list[Param] | None = None
) -> Agent:
    return Agent(
        name=name,
        shortdesc=shortdesc,
        longdesc=longdesc,
        params=[*COMMON_PARAMS, *(extra or [])],
        handlers=make_handlers(build, what=name),
        actions=clone_actions(),
    )
