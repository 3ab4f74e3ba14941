"""The OCF resource agent contract, shared by every envrouter agent.

An agent is a table: its parameters (for meta-data and for reading OCF_RESKEY_*), its actions
and a handler per action. `run` picks the action, maps the project's errors to OCF exit codes
(chosen only here) and prints the reason in the ``ocf-exit-reason:`` form Pacemaker shows.
A probe (monitor with interval 0) that finds the resource stopped returns 7 silently.

Imports stay light (the standard library's os and sys at run time): Pacemaker runs a monitor
every few seconds, each a new process (docs/ha.md, "Agent cost").
"""

from __future__ import annotations

import os
import sys

from envrouter.errors import ConflictError, InfraError, NotFoundError, ValidationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (20 ms of CPU here)
if TYPE_CHECKING:
    from collections.abc import Callable

    from envrouter.ha.ocf_memo import Verdict

    Handler = Callable[["Context"], int]

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_FAILED_PROMOTED = 9

PROVIDER = "envrouter"
DEFAULT_DOCUMENT = "/var/lib/envrouter/document.json"


# Plain classes, not dataclasses: importing dataclasses (and typing, which it pulls in) costs
# more CPU than the rest of a monitor (docs/ha.md, "Agent cost"); `from __future__ import
# annotations` leaves the hints as strings.
class Param:
    __slots__ = ("name", "shortdesc", "longdesc", "type", "default", "required", "unique")

    def __init__(self, name: str, shortdesc: str, longdesc: str, type: str = "string",
                 default: str | None = None, required: bool = False,
                 unique: bool = False) -> None:
        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc
        self.type = type  # string | integer | boolean
        self.default = default
        self.required = required
        self.unique = unique


class Action:
    __slots__ = ("name", "timeout", "interval", "role", "depth")

    def __init__(self, name: str, timeout: str = "20s", interval: str | None = None,
                 role: str | None = None, depth: str | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self.interval = interval
        self.role = role
        self.depth = depth


def basic_actions(*, start: str, stop: str, monitor: str, interval: str) -> list[Action]:
    """The actions of an agent that is only started, stopped and monitored (at depth 0)."""
    return [
        Action("start", timeout=start),
        Action("stop", timeout=stop),
        Action("monitor", timeout=monitor, interval=interval, depth="0"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ]


class Context:
    """What one invocation knows: its action, parameters and Pacemaker's meta variables."""

    __slots__ = ("action", "params", "env", "verdict")

    def __init__(self, action: str, params: dict[str, str], env: dict[str, str]) -> None:
        self.action = action
        self.params = params
        self.env = env
        # a recurring monitor's answer and its facts (envrouter.ha.ocf_memo.Verdict), recorded
        # by `run` when the handler returns
        self.verdict: Verdict | None = None

    @property
    def is_probe(self) -> bool:
        return self.action == "monitor" and self.env.get("OCF_RESKEY_CRM_meta_interval", "0") in (
            "0", "")

    def meta(self, name: str, default: str = "") -> str:
        return self.env.get(f"OCF_RESKEY_CRM_meta_{name}", default)

    def log(self, level: str, message: str) -> None:
        print(f"{level}: {message}", file=sys.stderr)


def exit_reason(message: str) -> None:
    """The one-line reason Pacemaker shows for a failed action."""
    print(f"ocf-exit-reason:{message}", file=sys.stderr)


class Agent:
    """An agent's table. A shell agent has a `script`: the /bin/sh body that IS the agent
    (every action but meta-data, which the installed executable prints itself); its
    `handlers` are then empty and no Python runs (envrouter.ha.install). A Python agent with
    `monitor_inputs` (files or directories of the package, besides its document, that its
    monitor's answer depends on) has its recurring monitors answered by its launcher from the
    verdict of the last one while nothing changed (envrouter.ha.ocf_memo.Verdict)."""

    def __init__(self, name: str, shortdesc: str, longdesc: str, params: list[Param],
                 handlers: dict[str, Handler], actions: list[Action] | None = None,
                 version: str = "1.0", script: str = "",
                 monitor_inputs: tuple[str, ...] = ()) -> None:
        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc
        self.params = params
        self.handlers = handlers
        self.actions = actions or []
        self.version = version
        self.script = script
        self.monitor_inputs = monitor_inputs

    def meta_data(self) -> str:
        from xml.sax.saxutils import escape, quoteattr

        out = [
            '<?xml version="1.0"?>',
            '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">',
            f"<resource-agent name={quoteattr(self.name)} version={quoteattr(self.version)}>",
            "<version>1.0</version>",
            f'<longdesc lang="en">{escape(self.longdesc)}</longdesc>',
            f'<shortdesc lang="en">{escape(self.shortdesc)}</shortdesc>',
            "<parameters>",
        ]
        for p in self.params:
            out.append(
                f"<parameter name={quoteattr(p.name)} unique=\"{int(p.unique)}\" "
                f"required=\"{int(p.required)}\">"
            )
            out.append(f'<longdesc lang="en">{escape(p.longdesc)}</longdesc>')
            out.append(f'<shortdesc lang="en">{escape(p.shortdesc)}</shortdesc>')
            default = "" if p.default is None else f" default={quoteattr(p.default)}"
            out.append(f"<content type={quoteattr(p.type)}{default}/>")
            out.append("</parameter>")
        out += ["</parameters>", "<actions>"]
        for a in self.actions:
            attrs = f"name={quoteattr(a.name)} timeout={quoteattr(a.timeout)}"
            if a.interval is not None:
                attrs += f" interval={quoteattr(a.interval)}"
            if a.depth is not None:
                attrs += f" depth={quoteattr(a.depth)}"
            if a.role is not None:
                attrs += f" role={quoteattr(a.role)}"
            out.append(f"<action {attrs}/>")
        out += ["</actions>", "</resource-agent>", ""]
        return "\n".join(out)

    def read_params(self, env: dict[str, str]) -> dict[str, str]:
        params: dict[str, str] = {}
        for p in self.params:
            value = env.get(f"OCF_RESKEY_{p.name}")
            if value is None or value == "":
                value = p.default
            if value is not None:
                params[p.name] = value
        return params

    def usage(self) -> str:
        names = "|".join(sorted({"meta-data", "validate-all", *self.handlers}))
        return f"usage: {self.name} {{{names}}}"


def run(agent: Agent, argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = dict(os.environ) if env is None else env
    if len(argv) != 2:
        print(agent.usage(), file=sys.stderr)
        return OCF_ERR_ARGS
    action = argv[1]
    if action == "meta-data":
        sys.stdout.write(agent.meta_data())
        return OCF_SUCCESS
    if action in ("usage", "help"):
        print(agent.usage())
        return OCF_SUCCESS
    if action == "status":
        action = "monitor"
    handler = agent.handlers.get(action)
    if handler is None:
        print(agent.usage(), file=sys.stderr)
        return OCF_ERR_UNIMPLEMENTED
    ctx = Context(action=action, params=agent.read_params(env), env=env)
    missing = [p.name for p in agent.params if p.required and p.name not in ctx.params]
    if missing:
        print(f"ocf-exit-reason:missing required parameter(s): {', '.join(missing)}",
              file=sys.stderr)
        # a probe must not fail on configuration it does not need to answer "not running"
        return OCF_NOT_RUNNING if ctx.is_probe else OCF_ERR_CONFIGURED
    rc: int | None = None
    try:
        rc = handler(ctx)
    except (ValidationError, ConflictError, NotFoundError) as exc:
        if action == "stop":
            # stop must not fail on a bad configuration; nothing valid can be running
            print(f"ocf-exit-reason:{exc} (stop: nothing to do)", file=sys.stderr)
            return OCF_SUCCESS
        if ctx.is_probe:
            return OCF_NOT_RUNNING
        print(f"ocf-exit-reason:{exc}", file=sys.stderr)
        return OCF_ERR_CONFIGURED
    except InfraError as exc:
        print(f"ocf-exit-reason:{exc}", file=sys.stderr)
        return OCF_ERR_GENERIC
    finally:
        if ctx.verdict is not None:
            _record_verdict(ctx, rc)
    return rc


def _record_verdict(ctx: Context, rc: int | None) -> None:
    """Record the recurring monitor's verdict. Only a running answer is repeated: a failure,
    or a handler that raised (rc None), may rest on more than the facts recorded, so the
    launcher asks Python again."""
    assert ctx.verdict is not None
    if rc not in (OCF_SUCCESS, OCF_RUNNING_PROMOTED):
        ctx.verdict.spoiled = True
    try:
        ctx.verdict.record(rc or 0)
    except OSError as exc:  # a monitor must not fail for its verdict: the next run decides
        ctx.log("warning", f"cannot record the monitor's verdict: {exc}")


def main_for(agent: Agent) -> None:
    leave(run(agent))


def leave(rc: int) -> None:
    """Exit with rc. Without the interpreter's finalization (freeing every object, a last
    garbage collection: ~3 ms of CPU, a fifth of a monitor's) when it has nothing left to
    do: the output flushed, no atexit callback registered, no other thread running."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(rc)
    threading = sys.modules.get("threading")
    callbacks = getattr(atexit, "_ncallbacks", None)
    if (callbacks is not None and callbacks() == 0
            and (threading is None or threading.active_count() == 1)):
        os._exit(rc)
    sys.exit(rc)


# -- parameters several agents share -------------------------------------------------------

DOCUMENT_PARAM = Param(
    "document",
    "deployment document",
    "Path of this node's deployment document (JSON), written by 'envrouter agent apply'.",
    default=DEFAULT_DOCUMENT,
)
RUN_ROOT_PARAM = Param(
    "run_root",
    "run directory root",
    "Daemons keep config, pid, lock and socket files under <run_root>/<namespace>/<service>/.",
    default="/run/envrouter",
)
LOG_ROOT_PARAM = Param(
    "log_root",
    "log directory",
    "Daemon logs are <log_root>/<namespace>-<service>.log.",
    default="/var/log/envrouter",
)


def load_vrouter(ctx: Context):  # -> DocVrouter
    """The document's vrouter section; a missing or bad document is a configuration error."""
    import gc

    gc.enable()  # off in the launcher for the light paths (envrouter.ha.install.launcher_argv)
    from envrouter.document import parse_document

    path = ctx.params.get("document", DEFAULT_DOCUMENT)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValidationError("deployment document", "path", f"cannot read {path}: {exc}") from exc
    doc = parse_document(raw)
    if doc.vrouter is None:
        raise ValidationError("deployment document", "vrouter",
                              "this node has no vrouter section (not a controller?)")
    return doc
