"""Shared shape of the agents that run one daemon inside the vrouter namespace (dns, ntp,
conntrackd): start/stop/monitor by the per-namespace PID file, validate-all by rendering the
configuration (which validates every value that goes into it)."""

from __future__ import annotations

from collections.abc import Callable

from envrouter.agent.netlink import netns_exists
from envrouter.document import DeploymentDocument
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
    Handler,
    Param,
    load_vrouter,
)
from envrouter.services.process import Daemon

BuildDaemon = Callable[[DeploymentDocument, Context], Daemon]

COMMON_PARAMS = [DOCUMENT_PARAM, RUN_ROOT_PARAM, LOG_ROOT_PARAM]


def daemon_from(ctx: Context, build: BuildDaemon) -> Daemon:
    return build(load_vrouter(ctx), ctx)


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
        d = daemon_from(ctx, build)
        if d.running():
            if not netns_exists(d.namespace):
                # the daemon outlived its namespace: it serves nothing any more
                ctx.log("error", f"{what} runs but namespace {d.namespace} is gone")
                return OCF_ERR_GENERIC
            if not ctx.is_probe and d.config_drifted():
                # a new document changed the configuration: re-assert it
                ctx.log("warning", f"{what} configuration changed: restarting it")
                d.restart()
                if after_restart is not None:
                    after_restart(ctx, d)
            return OCF_SUCCESS
        return OCF_NOT_RUNNING

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
