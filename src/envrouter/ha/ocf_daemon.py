"""The agents that run one daemon inside the vrouter namespace: start/stop/monitor by the
per-namespace PID file, validate-all by rendering the configuration (which validates every
value that goes into it). `dns` (dnsmasq) and `ntp` (chronyd) are this and nothing more, so
they are declared here (`SERVICE_AGENTS`, one table each: their descriptions differ, not their
logic); conntrackd (ocf_conntrackd) adds its roles to these handlers.

The monitor runs every 5-10 s, each time a new process: it must not parse the deployment
document (pydantic) nor render anything (jinja2) when nothing changed. What it needs of the
daemon — its namespace, run directory, PID file, command name and the digest of the inputs
its configuration is rendered from — is a pure function of the document, the agent's
parameters and the renderers, recorded as an `Instance` under ``<run_root>/.ocf/``
(envrouter.ha.ocf_memo). Only standard library os and sys are imported on that path.
"""

from __future__ import annotations

import os

from envrouter.agent.namespaces import netns_exists, netns_path
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
    main_for,
)
from envrouter.ha.ocf_memo import (
    inputs_stamp,
    memo_path,
    read_memo,
    start_verdict,
    write_memo,
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
# what a daemon's configuration is rendered by, besides the document
RENDERERS = ("document.py", "services", os.path.join("services", "templates"))


def daemon_from(ctx: Context, build: BuildDaemon) -> Daemon:
    return build(load_vrouter(ctx), ctx)


def service_build(service: str) -> BuildDaemon:
    """The build of an agent whose daemon is ``envrouter.services.<service>.daemon`` of the
    document's vrouter section, with the agent's run_root and log_root. The renderer is
    imported only when a daemon is built: not on a monitor's usual path."""
    def build(doc: DeploymentDocument, ctx: Context) -> Daemon:
        import importlib

        assert doc.vrouter is not None
        module = importlib.import_module(f"envrouter.services.{service}")
        return module.daemon(doc.vrouter, run_root=ctx.params["run_root"],
                             log_root=ctx.params["log_root"])

    return build


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


def instance(ctx: Context, name: str, build: BuildDaemon) -> tuple[Instance, Daemon | None]:
    """The instance the document and parameters describe: recorded (envrouter.ha.ocf_memo),
    or built from the document (and recorded) when anything it is computed from changed;
    with the daemon if it was built."""
    memo = memo_path(ctx.params.get("run_root", RUN_ROOT_PARAM.default or ""), name,
                     ctx.params)
    if memo in _known:  # asked again in the same run (conntrackd's monitor)
        return _known[memo], None
    try:
        stamp: str | None = inputs_stamp(ctx.params, ctx.params.get("document", ""), RENDERERS)
    except OSError:
        stamp = None  # no document: building the daemon says why
    recorded = read_memo(memo, stamp, len(Instance.__slots__))
    if recorded is not None:
        _known[memo] = Instance(*recorded)
        return _known[memo], None
    d = daemon_from(ctx, build)
    found = Instance(d.namespace, str(d.paths.run_dir), str(d.paths.pid_file), d.comm, d.source)
    if stamp is not None:
        try:
            write_memo(memo, stamp, [getattr(found, f) for f in Instance.__slots__])
        except Exception as exc:  # noqa: BLE001 - a monitor must not fail for its memo
            ctx.log("warning", f"cannot record the instance in {memo}: {exc}")
    _known[memo] = found
    return found, d


_known: dict[str, Instance] = {}  # this process's answers (one OCF action per process)


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
        if ctx.is_probe:
            return OCF_SUCCESS
        if status.recorded_source(i.run_dir) != i.source:
            d = built or daemon_from(ctx, build)
            if d.config_drifted():
                # a new document changed the configuration: re-assert it
                ctx.log("warning", f"{what} configuration changed: restarting it")
                d.restart()
                if after_restart is not None:
                    after_restart(ctx, d)
            else:
                d.prepare()  # the same files from new inputs: record their digest
            return OCF_SUCCESS  # changed something: the next run records the verdict
        # the answer rests on these facts only (the instance itself on the inputs' stamp)
        ctx.verdict = start_verdict(ctx.env, ctx.params.get("run_root", ""), what)
        if ctx.verdict is not None:
            ctx.verdict.live_pid(i.pid_file, i.comm)
            ctx.verdict.exists(netns_path(i.namespace))
            ctx.verdict.has_line(i.file(status.SOURCE_FILE), i.source)
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
        monitor_inputs=RENDERERS,
    )


# The agents whose whole logic is this module's: the daemon of envrouter.services.<name>.
SERVICE_AGENTS = {
    "dns": make_daemon_agent(
        "dns",
        "DNS forwarder and cache (dnsmasq) in the vrouter namespace",
        "Runs dnsmasq inside the document's vrouter namespace: forwards to the upstream DNS "
        "servers, caches, keeps answering expired entries while every upstream is down, and "
        "answers only on the management port (its own address and the management VIP).",
        service_build("dns"),
    ),
    "ntp": make_daemon_agent(
        "ntp",
        "NTP server (chronyd) in the vrouter namespace",
        "Runs chronyd -x (never touching the machine's clock) inside the document's vrouter "
        "namespace: upstream NTP servers from the settings, the peer controllers in orphan "
        "mode, local stratum 8, serving the management CIDR on the management port only, no "
        "remote command port.",
        service_build("ntp"),
    ),
}


def main(name: str) -> None:
    """The entry point of the `dns` and `ntp` executables (envrouter.ha.install)."""
    main_for(SERVICE_AGENTS[name])
