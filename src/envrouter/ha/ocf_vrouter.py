"""OCF agent ocf:envrouter:vrouter — the vrouter namespace on this controller (clone).

start = converge(scope="vrouter"); monitor: namespace missing -> 7, otherwise what drifted
(ip_forward, routes, the nftables table, ...) is converged again and the monitor succeeds;
stop = teardown(scope="vrouter"). All three come from envrouter.agent.

The recurring monitor (every 10 s) first takes a stamp of everything the agent's check reads
(envrouter.agent.stamp: netlink dumps, the nftables generation, sysctls, files) and compares it
with the stamp taken before the last check that found the node converged: the same stamp means
nothing changed, and the full check (the document, pyroute2, the plan: ~0.5 s of CPU) is not
needed. The document's namespace and what to stamp are recorded with the stamp of the inputs
they come from (envrouter.ha.ocf_memo), so the usual monitor imports neither pydantic nor
pyroute2. An Open vSwitch controller runs the full check every time (OVS's ports are not in
the kernel's netlink dumps with the userspace datapath).
"""

from __future__ import annotations

import os

from envrouter.agent.namespaces import netns_exists
from envrouter.ha.ocf_base import (
    DOCUMENT_PARAM,
    OCF_ERR_GENERIC,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Agent,
    Context,
    Param,
    basic_actions,
    load_vrouter,
    main_for,
)


def _root(ctx: Context) -> str:
    return ctx.params.get("root", "/")


def _where(ctx: Context) -> dict:
    return {"root": _root(ctx), "scope": "vrouter", "host_netns": ctx.params.get("host_netns", "")}


def validate(ctx: Context) -> int:
    load_vrouter(ctx)
    return OCF_SUCCESS


def start(ctx: Context) -> int:
    import envrouter.agent as agent

    steps = agent.converge(load_vrouter(ctx), **_where(ctx))
    if steps:
        ctx.log("info", f"vrouter converged: {len(steps)} step(s)")
    return OCF_SUCCESS


def stop(ctx: Context) -> int:
    import envrouter.agent as agent

    try:
        doc = load_vrouter(ctx)
    except Exception:  # noqa: BLE001 - no readable document: nothing known to be ours
        doc = None
    agent.teardown(doc, **_where(ctx))
    if doc is not None and netns_exists(doc.vrouter.namespace):
        # a stop that leaves the namespace is a failed stop: Pacemaker must not start it elsewhere
        # believing this copy gone (on a cluster with fencing, a failed stop gets the node fenced)
        ctx.log("err", f"stop: namespace {doc.vrouter.namespace} still exists after teardown")
        return OCF_ERR_GENERIC
    return OCF_SUCCESS


def _memo(ctx: Context) -> tuple[str, str | None]:
    from envrouter.agent import lock_path
    from envrouter.agent.stamp import CHECKER
    from envrouter.ha.ocf_memo import inputs_stamp, memo_path

    path = memo_path(os.path.dirname(lock_path()), "vrouter", ctx.params)
    try:
        return path, inputs_stamp(ctx.params, ctx.params.get("document", ""), CHECKER)
    except OSError:
        return path, None  # no document: loading it says why


def monitor(ctx: Context) -> int:
    from envrouter.agent.stamp import Watch, watch_for
    from envrouter.ha.ocf_memo import read_memo, write_memo

    memo, stamp = _memo(ctx)
    recorded = read_memo(memo, stamp, 1 + Watch.FIELDS)
    doc = None
    if recorded is not None:
        namespace, watch = recorded[0], Watch.parse(recorded[1:])
    else:
        doc = load_vrouter(ctx)
        namespace, watch = doc.vrouter.namespace, watch_for(doc, **_where(ctx))
        if stamp is not None:
            try:
                write_memo(memo, stamp, [namespace, *watch.lines()])
            except Exception as exc:  # noqa: BLE001 - a monitor must not fail for its memo
                ctx.log("warning", f"cannot record what the monitor watches in {memo}: {exc}")
    if not netns_exists(namespace):
        return OCF_NOT_RUNNING
    if ctx.is_probe:
        # a probe only reports; re-asserting is the recurring monitor's job
        return OCF_SUCCESS
    kernel = None
    if not watch.ovs and stamp is not None:
        try:
            # taken before the check: a change during the check shows at the next monitor
            kernel = watch.stamp()
            with open(memo + ".kernel", "rb") as f:
                if f.read() == kernel:
                    return OCF_SUCCESS  # nothing changed since the node was converged
        except OSError as exc:  # no stamp or no record of one: the full check decides
            if kernel is None:
                ctx.log("warning", f"no kernel stamp ({exc}): full check")
    import envrouter.agent as agent

    doc = doc or load_vrouter(ctx)
    drift = agent.check(doc, **_where(ctx))
    if drift:
        ctx.log("warning", "vrouter drifted, re-asserting: " + "; ".join(drift))
        agent.converge(doc, **_where(ctx))
        kernel = None  # the next monitor checks again, from a stamp taken after this
    try:
        if kernel is None:
            os.unlink(memo + ".kernel")
        else:
            with open(memo + ".kernel.new", "wb") as f:
                f.write(kernel)
            os.replace(memo + ".kernel.new", memo + ".kernel")
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a monitor must not fail for its memo
        ctx.log("warning", f"cannot record the kernel's stamp in {memo}: {exc}")
    return OCF_SUCCESS


AGENT = Agent(
    name="vrouter",
    shortdesc="The vrouter network namespace on this controller",
    longdesc="Converges the vrouter namespace of the deployment document: namespace, ports on "
    "the management and public bridges, host link with the fallback route and host NAT, "
    "sysctls and nftables tables. The recurring monitor re-asserts whatever drifted.",
    params=[
        DOCUMENT_PARAM,
        Param("root", "file root", "Root directory for the files the agent writes.",
              default="/"),
        Param("host_netns", "host namespace",
              "Network namespace that plays this node's own (tests); empty: the node's own."),
    ],
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate},
    actions=basic_actions(start="60s", stop="60s", monitor="30s", interval="10s"),
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
