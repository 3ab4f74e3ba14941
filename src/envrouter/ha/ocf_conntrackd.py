"""OCF agent ocf:envrouter:conntrackd — conntrackd in the vrouter namespace, promotable clone.

conntrackd cannot say whether it is "master", so the promoted state is a file in the
instance's run directory, set by promote and cleared by demote, start and stop.

- start: the daemon (unpromoted), then `conntrackd.rejoin`: where the namespace holds no VIP,
  -f internal (the cache the daemon filled from this kernel table), the kernel table flushed
  (copies of flows ended while the daemon was down) and -n (the holder's current table);
  where it holds them (the holder's daemon restarted), -B. Promotion score set so Pacemaker
  can promote. With an external cache: -n.
- promote: -R the internal cache from the kernel table, which already holds every synced flow
  (the peers inject them as they arrive: `conntrackd.EXTERNAL_CACHE` off), so that a peer's
  resync request gets them all. Nothing is sent: the peers have them. With an external cache:
  -c commit, -f flush, -R, -B (the sequence that flooded the channel at 100,000 flows).
- demote: -f internal (this node no longer originates flows). Its kernel table stays a copy of
  the holder's — no -t (shortened timers would empty it, and the next failover back would
  lose every flow) and no -n (a resync of the whole table through the channel at every
  switchover). With an external cache: -t, -f internal, -n.
- notify: pre-promote on the instances not being promoted: -B (the one about to commit gets the
  latest flows, this is what makes a planned switchover lossless); post-start on the promoted
  instance: -B (a peer that just started gets the table).
"""

from __future__ import annotations

import os
import time

from envrouter.errors import InfraError
from envrouter.ha.ocf_base import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_NOT_RUNNING,
    OCF_RUNNING_PROMOTED,
    OCF_SUCCESS,
    Action,
    Agent,
    Context,
    Param,
    exit_reason,
    load_vrouter,
    main_for,
)
from envrouter.ha.ocf_daemon import (
    COMMON_PARAMS,
    RENDERERS,
    Instance,
    daemon_from,
    instance,
    make_handlers,
)
from envrouter.services import conntrackd

TYPE_CHECKING = False  # without importing typing (docs/ha.md, "Agent cost")
if TYPE_CHECKING:
    from envrouter.document import DeploymentDocument
    from envrouter.services.process import Daemon

PROMOTED_FILE = "promoted"
# One promotion score for every running instance, set at start and never changed: which
# instance is promoted follows from its colocation with the VIPs. A score that changed on
# promote/demote would abort the transition in flight (a CIB change) and schedule the rest of a
# failover in a new one — seconds more on a busy cluster.
PROMOTION_SCORE = "100"

if conntrackd.EXTERNAL_CACHE:
    PROMOTE = [["-c"], ["-f"], ["-R"], ["-B"]]
    DEMOTE = [["-t"], ["-f", "internal"], ["-n"]]
    PROMOTE_RESTARTED = [["-R"], ["-B"]]
else:
    # the peers' kernel tables already hold the flows: refill the internal cache only
    PROMOTE = [["-R"]]
    DEMOTE = [["-f", "internal"]]
    PROMOTE_RESTARTED = [["-R"], ["-B"]]


def _build(doc: DeploymentDocument, ctx: Context) -> Daemon:
    assert doc.vrouter is not None
    return conntrackd.daemon(
        doc.vrouter,
        run_root=ctx.params["run_root"],
        log_root=ctx.params["log_root"],
        transport=ctx.params["transport"],  # type: ignore[arg-type]
        multicast_group=ctx.params["multicast_group"],
        port=int(ctx.params["port"]) if ctx.params["port"].isdigit() else -1,
    )


def _set_promotion_score(ctx: Context, score: str | None) -> None:
    """crm_attribute --promotion (crm_master's successor). Outside a cluster (ocf-tester) it
    fails; that only matters to Pacemaker, which always provides one."""
    if "OCF_RESOURCE_INSTANCE" not in ctx.env:
        return
    import subprocess

    argv = ["crm_attribute", "--promotion", "--lifetime", "reboot", "--quiet"]
    argv += ["--delete"] if score is None else ["--update", score]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        ctx.log("warning", f"cannot set the promotion score: {exc}")
        return
    if proc.returncode != 0:
        ctx.log("warning", f"cannot set the promotion score: {proc.stderr.strip()}")


def _commands(d: Daemon, flags: list[list[str]]) -> None:
    for flag in flags:
        conntrackd.command(d.paths, *flag)


def _check_meta(ctx: Context) -> int | None:
    for name in ("promoted_max", "promoted_node_max", "clone_node_max"):
        value = ctx.meta(name) or ctx.meta(name.replace("promoted", "master"))
        if value not in ("", "1"):
            exit_reason(f"meta {name} must be 1, got {value}")
            return OCF_ERR_CONFIGURED
    return None


def _after_restart(ctx: Context, d: Daemon) -> None:
    """A restarted daemon has empty caches: refill from the kernel (and tell the peers) if it
    is the promoted instance, otherwise rejoin as at start."""
    if d.paths.file(PROMOTED_FILE).exists():
        _commands(d, PROMOTE_RESTARTED)
    else:
        _rejoin(ctx, d)


def _holds_vips(ctx: Context) -> bool:
    from envrouter.agent.vip import vip_present

    vr = load_vrouter(ctx).vrouter
    assert vr is not None
    return any(vip_present(vr.namespace, port, str(vip.address)) for port, vip in (
        (vr.management_port, vr.vip_management), (vr.public_port, vr.vip_public)))


def _rejoin(ctx: Context, d: Daemon) -> None:
    if conntrackd.EXTERNAL_CACHE:
        conntrackd.command(d.paths, "-n")
        return
    done = conntrackd.rejoin(d.paths, holds_vips=_holds_vips(ctx))
    ctx.log("info", f"conntrackd rejoined in {d.namespace}: {', '.join(done)}")


_base = make_handlers(_build, what="conntrackd", after_restart=_after_restart)


def start(ctx: Context) -> int:
    bad = _check_meta(ctx)
    if bad is not None:
        return bad
    d = daemon_from(ctx, _build)
    if d.start():
        d.paths.file(PROMOTED_FILE).unlink(missing_ok=True)
        ctx.log("info", f"conntrackd started in namespace {d.namespace}")
        try:
            _rejoin(ctx, d)
        except InfraError as exc:
            ctx.log("warning", f"resync failed: {exc}")
    _set_promotion_score(ctx, PROMOTION_SCORE)
    return OCF_SUCCESS


def stop(ctx: Context) -> int:
    rc = _base["stop"](ctx)
    daemon_from(ctx, _build).paths.file(PROMOTED_FILE).unlink(missing_ok=True)
    _set_promotion_score(ctx, None)
    return rc


def monitor(ctx: Context) -> int:
    rc = _base["monitor"](ctx)
    if rc != OCF_SUCCESS:
        return rc
    i, _ = instance(ctx, "conntrackd", _build)  # recorded by the monitor above
    stats = conntrackd.stats(i)
    if stats is None:
        exit_reason("conntrackd runs but does not answer on its control socket")
        return OCF_ERR_GENERIC
    marker = i.file(PROMOTED_FILE)
    promoted = os.path.exists(marker)
    if ctx.is_probe:  # the attribute lives until reboot only: restore it after a restart
        _set_promotion_score(ctx, PROMOTION_SCORE)
    elif promoted and not conntrackd.EXTERNAL_CACHE:
        _resync_once_after_promote(ctx, i, marker)
    elif not promoted and not conntrackd.EXTERNAL_CACHE:
        _keep_cache_empty(ctx, i, stats)
    _verdict_facts(ctx, i, marker, promoted, stats)
    return OCF_RUNNING_PROMOTED if promoted else OCF_SUCCESS


def _verdict_facts(ctx: Context, i: Instance, marker: str, promoted: bool,
                   stats: str) -> None:
    """What this recurring monitor's answer rests on besides the daemon's (ocf_daemon): it
    answers on its socket; promoted, the marker says the resync after promote is done;
    unpromoted, there is no marker and (with the internal cache) the cache is empty, as the
    first two lines of `conntrackd -s` say. A cache that was not empty was flushed just now
    (a change): that answer is not repeated."""
    if ctx.verdict is None:
        return
    ctx.verdict.succeeds(conntrackd.STATS_TIMEOUT, *conntrackd.stats_argv(i))
    if promoted:
        if conntrackd.EXTERNAL_CACHE:
            ctx.verdict.exists(marker)
        else:
            ctx.verdict.has_line(marker, RESYNCED)
        return
    ctx.verdict.absent(marker)
    if conntrackd.EXTERNAL_CACHE:
        return
    head = stats.splitlines()[:2]
    # any output that starts with these two lines has an empty internal cache: the block is
    # the first line, its count the next (internal_cache_size reads no further)
    if len(head) == 2 and conntrackd.internal_cache_size("\n".join(head)) == 0:
        ctx.verdict.says(1, head[0])
        ctx.verdict.says(2, head[1])
    else:
        ctx.verdict.spoiled = True


def _keep_cache_empty(ctx: Context, paths: Instance, stats: str) -> None:
    """An unpromoted instance's internal cache fills from its own kernel's events (the old
    holder forwarding between its demote and its VIP stop): empty it, or it would resend
    those flows, long ended, to every peer at the next resync request, and sync the end of
    its own copies (docs/ha.md, "At scale")."""
    if not conntrackd.internal_cache_size(stats):
        return
    try:
        conntrackd.command(paths, "-f", "internal")
    except InfraError as exc:  # a monitor must not fail for it: the next one tries again
        ctx.log("warning", f"flushing the internal cache failed: {exc}")


RESYNCED = "resynced"
RESYNC_AFTER = 3.0  # s after promote


def _resync_once_after_promote(ctx: Context, paths: Instance, marker: str) -> None:
    """The first recurring monitor after promote runs -R again. conntrackd syncs a flow's end
    only if the flow is in the holder's internal cache, and only -R puts a flow injected by a
    peer there: the flows the old holder synced after promote's -R (or a dump that came back
    short on a loaded machine) would otherwise leave stale copies on the peers, whose NAT
    ports then clash with new flows (docs/ha.md, "At scale"). Costs one kernel dump, sends
    nothing."""
    try:
        with open(marker) as f:
            text = f.read()
        age = time.time() - os.stat(marker).st_mtime
    except OSError:
        return
    if RESYNCED in text or age < RESYNC_AFTER:
        return
    try:
        conntrackd.command(paths, "-R")
    except InfraError as exc:  # a monitor must not fail for it: the next one tries again
        ctx.log("warning", f"resync after promote failed: {exc}")
        return
    try:
        with open(marker, "w") as f:
            f.write(f"promoted\n{RESYNCED}\n")
    except OSError:
        pass


def _set_role(ctx: Context, promoted: bool) -> int:
    """promote or demote: the role's commands and the marker, once (again: nothing to do)."""
    doing = "promote" if promoted else "demote"
    d = daemon_from(ctx, _build)
    if not d.running():
        exit_reason(f"conntrackd is not running: cannot {doing}")
        return OCF_NOT_RUNNING
    marker = d.paths.file(PROMOTED_FILE)
    if marker.exists() != promoted:
        _commands(d, PROMOTE if promoted else DEMOTE)
        if promoted:
            marker.write_text("promoted\n")
        else:
            marker.unlink()
        ctx.log("info", f"conntrackd {doing}d in {d.namespace}")
    return OCF_SUCCESS


def promote(ctx: Context) -> int:
    return _set_role(ctx, promoted=True)


def demote(ctx: Context) -> int:
    return _set_role(ctx, promoted=False)


def notify(ctx: Context) -> int:
    kind = ctx.meta("notify_type")
    operation = ctx.meta("notify_operation")
    me = ctx.env.get("OCF_RESKEY_CRM_meta_on_node") or _uname()
    d = daemon_from(ctx, _build)
    if not d.running():
        return OCF_SUCCESS
    promoted_here = d.paths.file(PROMOTED_FILE).exists()
    to_promote = ctx.meta("notify_promote_uname").split()
    started = ctx.meta("notify_start_uname").split()
    send_bulk = (
        (kind == "pre" and operation == "promote" and to_promote and me not in to_promote)
        or (kind == "post" and operation == "start" and promoted_here
            and any(n != me for n in started))
    )
    if send_bulk:
        try:
            conntrackd.command(d.paths, "-B")
            ctx.log("info", f"conntrackd bulk update sent ({kind}-{operation})")
        except InfraError as exc:  # a notify must not fail the transition
            ctx.log("warning", f"bulk update failed: {exc}")
    return OCF_SUCCESS


def _uname() -> str:
    return os.uname().nodename


AGENT = Agent(
    name="conntrackd",
    shortdesc="conntrackd (FTFW) in the vrouter namespace, promotable",
    longdesc="Runs conntrackd inside the document's vrouter namespace, syncing TCP, UDP and "
    "ICMP flows with the peer controllers' namespaces over the management network. The "
    "promoted instance is the one whose namespace holds the VIPs: promote commits the external "
    "cache into the kernel before the VIPs start. Use as a promotable clone with "
    "promoted-max=1, promoted-node-max=1, clone-node-max=1, notify=true.",
    params=[
        *COMMON_PARAMS,
        Param("transport", "sync transport",
              "auto (UDP unicast with exactly one peer, multicast with more), udp or multicast.",
              default="auto"),
        Param("multicast_group", "multicast group",
              "IPv4 multicast group for the multicast transport.",
              default=conntrackd.DEFAULT_MULTICAST_GROUP),
        Param("port", "sync port", "UDP port (multicast: the Group) of the sync channel.",
              type="integer", default=str(conntrackd.DEFAULT_PORT)),
    ],
    handlers={
        "start": start,
        "stop": stop,
        "monitor": monitor,
        "promote": promote,
        "demote": demote,
        "notify": notify,
        "validate-all": _base["validate-all"],
    },
    actions=[
        Action("start", timeout="30s"),
        Action("stop", timeout="30s"),
        Action("promote", timeout="30s"),
        Action("demote", timeout="30s"),
        Action("notify", timeout="30s"),
        Action("monitor", timeout="20s", interval="5s", role="Promoted"),
        Action("monitor", timeout="20s", interval="10s", role="Unpromoted"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ],
    monitor_inputs=RENDERERS,
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
