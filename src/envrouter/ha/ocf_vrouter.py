"""OCF agent ocf:envrouter:vrouter — the vrouter namespace on this controller (clone).

start = converge(scope="vrouter"); monitor: namespace missing -> 7, otherwise what drifted
(ip_forward, routes, the nftables table, ...) is converged again and the monitor succeeds;
stop = teardown(scope="vrouter"). All three come from envrouter.agent.
"""

from __future__ import annotations

from envrouter.ha.ocf_base import (
    DOCUMENT_PARAM,
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
    return OCF_SUCCESS


def monitor(ctx: Context) -> int:
    import envrouter.agent as agent
    from envrouter.agent.netlink import netns_exists

    doc = load_vrouter(ctx)
    assert doc.vrouter is not None
    if not netns_exists(doc.vrouter.namespace):
        return OCF_NOT_RUNNING
    if ctx.is_probe:
        # a probe only reports; re-asserting is the recurring monitor's job
        return OCF_SUCCESS
    drift = agent.check(doc, **_where(ctx))
    if drift:
        ctx.log("warning", "vrouter drifted, re-asserting: " + "; ".join(drift))
        agent.converge(doc, **_where(ctx))
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
