"""The upgrade plan: pure functions of documents, observations and recorded progress.

Order (docs/upgrade.md): migrate the schema; reserve the two VIPs; upgrade the packages on
every node, one node at a time (controllers first; the envrouter packages and the daemon
packages the node's document names; then restart what runs an upgraded daemon); check every
controller has what the new resources need; enable the vrouter; deploy it on the controllers
(agent, OCF agents, Pacemaker layout); wait until both VIPs answer; then move every other node
whose host section changes (its routes), one at a time, each checked before the next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from envrouter.document import DeploymentDocument, DocVrouter
from envrouter.errors import ValidationError

# step kinds
MIGRATE = "migrate"
RESERVE = "reserve-vips"
UPGRADE_PACKAGES = "packages"
CHECK_PACKAGES = "check-packages"
ENABLE = "enable"
DEPLOY_VROUTER = "deploy-vrouter"
HA_INSTALL = "ha-install"
HA_APPLY = "ha-apply"
WAIT_VIPS = "wait-vips"
MOVE = "move"

# steps run again on every run (they only look): never skipped by recorded progress
ALWAYS = frozenset({CHECK_PACKAGES, WAIT_VIPS})

# node states in the final report
MOVED = "moved"
NOT_MOVED = "not moved"
MOVED_BACK = "moved back"

# where the upgrade puts the documents it pushes to a node
NODE_STATE_DIR = "/var/lib/envrouter"
NODE_DOCUMENT = f"{NODE_STATE_DIR}/document.json"
PUSHED_DOCUMENT = f"{NODE_STATE_DIR}/upgrade-document.json"


@dataclass(frozen=True)
class Step:
    kind: str
    node: str | None
    text: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.node}" if self.node else self.kind


@dataclass(frozen=True)
class Observed:
    """What the database says before the upgrade touches it."""

    revision: str | None
    head: str
    vips_reserved: bool  # both VIPs and every controller's namespace address
    enabled: bool
    vips: Mapping[str, str] = field(default_factory=dict)  # name -> address (after reserving)


def nodes_to_move(
    before: Mapping[str, DeploymentDocument],
    after: Mapping[str, DeploymentDocument],
    controllers: Sequence[str],
) -> list[str]:
    """Every node other than a controller whose host section (gateway, resolver, NTP) changes,
    by hostname."""
    out = []
    for name in sorted(after):
        if name in controllers:
            continue
        if name not in before:
            raise ValidationError(f"node {name!r}", "document", "no document before the upgrade")
        if before[name].host != after[name].host:
            out.append(name)
    return out


def _check_after(after: Mapping[str, DeploymentDocument], controllers: Sequence[str]) -> None:
    if not controllers:
        raise ValidationError("environment", "nodes", "no controller: nowhere to run the vrouter")
    for c in controllers:
        if c not in after:
            raise ValidationError(f"node {c!r}", "document", "controller without a document")
        if after[c].vrouter is None:
            raise ValidationError(
                f"node {c!r}", "vrouter",
                "the vrouter would not be active for this controller (it needs a public address "
                "and a namespace address)",
            )


def plan_upgrade(
    before: Mapping[str, DeploymentDocument],
    after: Mapping[str, DeploymentDocument],
    controllers: Sequence[str],
    observed: Observed,
    done: Sequence[str] = (),
    moved: Sequence[str] = (),
    packages: PackageSource | None = None,
) -> list[Step]:
    """The steps still to run. `done`: step keys recorded as done; `moved`: nodes recorded as
    moved (a node recorded "moved back" is tried again); `packages`: what to install on the
    nodes (None: no package step)."""
    controllers = sorted(controllers)
    _check_after(after, controllers)
    done_set = set(done)
    steps: list[Step] = []
    if observed.revision != observed.head:
        old = observed.revision or "empty"
        steps.append(Step(MIGRATE, None, f"migrate the database schema {old} -> {observed.head}"))
    if not observed.vips_reserved:
        vips = ", ".join(f"{k} {v}" for k, v in sorted(observed.vips.items()))
        steps.append(Step(RESERVE, None, f"reserve the VIPs ({vips}) and the controllers' "
                                         "vrouter namespace addresses"))
    if packages is not None:
        others = sorted(n for n in after if n not in controllers)
        for name in [*controllers, *others]:
            wanted = " ".join(node_packages(after[name], packages))
            restart = ("; restart the cluster resources whose daemon was upgraded, the node "
                       "in maintenance (the VIPs stay)" if name in controllers else "")
            steps.append(Step(UPGRADE_PACKAGES, name,
                              f"upgrade packages on {name}: {wanted}{restart}"))
    for c in controllers:
        pkgs = ", ".join(required_packages(after[c].vrouter))  # type: ignore[arg-type]
        steps.append(Step(CHECK_PACKAGES, c, f"check {c} has {pkgs}"))
    if not observed.enabled:
        steps.append(Step(ENABLE, None, "enable the vrouter in the control plane"))
    for c in controllers:
        steps.append(Step(DEPLOY_VROUTER, c, f"agent apply --scope vrouter on {c}"))
    for c in controllers:
        steps.append(Step(HA_INSTALL, c, f"install the OCF agents on {c}"))
    steps.append(Step(HA_APPLY, controllers[0],
                      f"apply the Pacemaker layout (from {controllers[0]})"))
    any_doc = after[controllers[0]].vrouter
    assert any_doc is not None
    steps.append(Step(WAIT_VIPS, controllers[0],
                      f"wait until the VIPs {any_doc.vip_management.address} and "
                      f"{any_doc.vip_public.address} answer, and DNS and NTP on "
                      f"{any_doc.vip_management.address} (from {controllers[0]})"))
    moved_set = set(moved)
    for name in nodes_to_move(before, after, controllers):
        if name in moved_set:
            continue
        old, new = before[name].host, after[name].host
        steps.append(Step(MOVE, name, f"move {name}: default route {old.gateway} -> "
                                      f"{new.gateway}, DNS/NTP -> "
                                      f"{', '.join(map(str, new.dns_servers))}; then check it"))
    return [s for s in steps if s.kind in ALWAYS or s.key not in done_set]


def final_states(
    before: Mapping[str, DeploymentDocument],
    after: Mapping[str, DeploymentDocument],
    controllers: Sequence[str],
    recorded: Mapping[str, str],
) -> dict[str, str]:
    """Every node to move with its state: moved / moved back / not moved."""
    return {n: recorded.get(n, NOT_MOVED) for n in nodes_to_move(before, after, controllers)}


# ----------------------------------------------------------------------- package check


# binary -> the Debian package that ships it
BINARY_PACKAGES: dict[str, str] = {
    "nft": "nftables",
    "conntrack": "conntrack",
    "conntrackd": "conntrackd",
    "dnsmasq": "dnsmasq-base",
    "chronyd": "chrony",
    "arping": "iputils-arping",
    "na6": "ipv6toolkit",  # the IPv6 VIPs' unsolicited neighbour advertisements
    "cibadmin": "pacemaker-cli-utils",
    "crm_attribute": "pacemaker-cli-utils",
    "ovs-vsctl": "openvswitch-switch",
}
# packages without a binary of their own the resources need (ocf:pacemaker:ping)
EXTRA_PACKAGES = ("pacemaker-resource-agents",)


def required_binaries(vrouter: DocVrouter) -> list[str]:
    out = ["nft", "dnsmasq", "chronyd", "arping", "cibadmin", "crm_attribute", "conntrack"]
    if vrouter.conntrack_sync:
        out.append("conntrackd")
    if vrouter.vip_public6 is not None:
        out.append("na6")
    if vrouter.bridge_kind == "ovs":
        out.append("ovs-vsctl")
    return out


def required_packages(vrouter: DocVrouter) -> list[str]:
    pkgs = {BINARY_PACKAGES[b] for b in required_binaries(vrouter)} | set(EXTRA_PACKAGES)
    return sorted(pkgs)


DPKG_FORMAT = "${Package}\\t${db:Status-Status}\\n"


def package_check_argv(vrouter: DocVrouter) -> list[str]:
    return ["dpkg-query", "-W", "-f", DPKG_FORMAT, *required_packages(vrouter)]


def binary_check_argv(vrouter: DocVrouter) -> list[str]:
    return ["which", *required_binaries(vrouter)]


def missing_packages(vrouter: DocVrouter, dpkg_stdout: str) -> list[str]:
    """The required packages `dpkg-query -W -f DPKG_FORMAT` did not report as installed."""
    installed = set()
    for line in dpkg_stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].strip() == "installed":
            installed.add(parts[0].split(":")[0].strip())
    return [p for p in required_packages(vrouter) if p not in installed]


def missing_binaries(vrouter: DocVrouter, which_stdout: str) -> list[str]:
    found = {line.strip().rsplit("/", 1)[-1] for line in which_stdout.splitlines() if line.strip()}
    return [b for b in required_binaries(vrouter) if b not in found]


# ----------------------------------------------------------------------- package upgrade

# the envrouter packages by role (docs/index.md, "Installation on real machines")
ENVROUTER_PACKAGE = "envrouter"
CONTROLLER_PACKAGE = "envrouter-controller"
# Debian package -> the cluster resource whose daemon it ships (restarted after an upgrade of
# the package; the envrouter packages need no restart: no resident process, the OCF agents
# run the new code at their next action)
PACKAGE_RESOURCES: dict[str, str] = {
    "conntrackd": "conntrackd",
    "dnsmasq-base": "dns",
    "chrony": "ntp",
}


@dataclass(frozen=True)
class PackageSource:
    """Where the packages come from: the nodes' apt repositories (names; `apt-get update`
    first), or .deb files (paths that exist on every node) that replace the envrouter names."""

    files: tuple[str, ...] = ()

    def file_for(self, package: str) -> str | None:
        for f in self.files:
            if f.rsplit("/", 1)[-1].split("_", 1)[0] == package:
                return f
        return None


def node_packages(doc: DeploymentDocument, source: PackageSource) -> list[str]:
    """What `apt-get install` gets on this node: envrouter; on a controller also
    envrouter-controller and the daemon packages its resources need (required_packages)."""
    names = [ENVROUTER_PACKAGE]
    if doc.vrouter is not None:
        names.append(CONTROLLER_PACKAGE)
        names += required_packages(doc.vrouter)
    return [source.file_for(n) or n for n in names]


def package_names(items: Sequence[str]) -> list[str]:
    """Package names of `node_packages` items (a .deb path gives its package's name)."""
    return [i.rsplit("/", 1)[-1].split("_", 1)[0] if i.endswith(".deb") else i for i in items]


def apt_install_argv(items: Sequence[str]) -> list[str]:
    """Install or upgrade, never prompt; a changed configuration file keeps the operator's
    version (--force-confold)."""
    return ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
            "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef",
            *items]


VERSION_FORMAT = "${Package}\t${Version}\t${db:Status-Status}\n"


def version_query_argv(names: Sequence[str]) -> list[str]:
    return ["dpkg-query", "-W", "-f", VERSION_FORMAT, *names]


def installed_versions(dpkg_stdout: str) -> dict[str, str]:
    """package -> version of the installed ones, from `dpkg-query -W -f VERSION_FORMAT`."""
    out = {}
    for line in dpkg_stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip() == "installed":
            out[parts[0].split(":")[0].strip()] = parts[1].strip()
    return out


def changed_packages(before: Mapping[str, str], after: Mapping[str, str]
                     ) -> dict[str, tuple[str | None, str]]:
    """package -> (old version or None when newly installed, new version)."""
    return {p: (before.get(p), v) for p, v in sorted(after.items()) if before.get(p) != v}


def resources_to_restart(changed: Mapping[str, object], vrouter: DocVrouter | None
                         ) -> list[str]:
    """The cluster resources (primitive ids) running a daemon whose package changed, in a
    fixed order; none when the node runs no vrouter or the resource is not in its layout
    (conntrackd without conntrack sync)."""
    if vrouter is None:
        return []
    out = []
    for package, resource in PACKAGE_RESOURCES.items():
        if package not in changed:
            continue
        if resource == "conntrackd" and not vrouter.conntrack_sync:
            continue
        out.append(resource)
    return out


# answers (exit 0) only where a Pacemaker cluster runs
CLUSTER_QUERY_ARGV = ["crm_attribute", "--type", "crm_config", "--name", "dc-version",
                      "--query", "--quiet"]


def maintenance_argv(node: str, on: bool) -> list[str]:
    """The node's `maintenance` attribute: while on, Pacemaker runs no monitor there and
    neither stops nor moves its resources (packages are replaced under them)."""
    base = ["crm_attribute", "--type", "nodes", "--node", node, "--name", "maintenance"]
    return [*base, "--update", "true"] if on else [*base, "--delete"]


def promoted_here(instances: Sequence[object], resource: str, node: str) -> bool:
    """Whether crm_mon's instances (envrouter.ops.model.ResourceInstance) show `resource`
    promoted on `node` (Pacemaker 2.1 says Promoted, older ones Master)."""
    return any(getattr(i, "id", None) == resource and getattr(i, "node", None) == node
               and getattr(i, "role", "") in ("Promoted", "Master") for i in instances)


def force_argv(action: str, resource: str) -> list[str]:
    """Run the resource's agent on this node by hand (crm_resource --force-*), with its
    parameters from the CIB: what a node in maintenance allows without Pacemaker reacting."""
    return ["crm_resource", f"--force-{action}", "--resource", resource]


# ----------------------------------------------------------------------- node checks


@dataclass(frozen=True)
class NodeCheck:
    name: str
    argv: list[str]
    judge: Callable[[int, str], str | None]  # (exit code, output) -> None if ok, else why
    timeout: float = 30


_OFFSET = re.compile(r"[Oo]ffset\s*=?\s*([-+]?[0-9.]+)\s*seconds|System clock wrong by")


def _exit_ok(what: str) -> Callable[[int, str], str | None]:
    def judge(code: int, out: str) -> str | None:
        return None if code == 0 else f"{what}: exit {code}: {out.strip()[-200:]}"

    return judge


def _dns_ok(code: int, out: str) -> str | None:
    answers = [line for line in out.split() if line.strip()]
    if code != 0 or not answers:
        return f"no answer (exit {code}): {out.strip()[-200:] or 'nothing'}"
    return None


def _time_ok(code: int, out: str) -> str | None:
    if code != 0 or not _OFFSET.search(out):
        return f"no time from the server (exit {code}): {out.strip()[-200:]}"
    return None


def check_name(doc: DeploymentDocument, given: str | None) -> str:
    """The name the DNS check resolves: `given`, else this node's name in the search domain."""
    if given:
        return given
    if doc.host.search_domain:
        return f"{doc.node.hostname}.{doc.host.search_domain}"
    raise ValidationError("upgrade", "--check-name", "the environment has no domain: give a "
                          "name the DNS servers resolve")


def service_checks(vip: str, name: str) -> list[NodeCheck]:
    """DNS and NTP answering on the VIP (run from a controller before any node moves)."""
    return [
        NodeCheck("DNS", ["dig", "+short", "+time=2", "+tries=1", f"@{vip}", name], _dns_ok),
        NodeCheck("NTP", ["chronyd", "-Q", "-t", "8", f"server {vip} iburst maxsamples 1"],
                  _time_ok, timeout=20),
    ]


def node_checks(
    doc: DeploymentDocument, name: str, envrouter: Sequence[str], agent_options: Sequence[str],
) -> list[NodeCheck]:
    """What proves a moved node works through the VIP: its host part converged to `doc`, the
    gateway answers, a name resolves through the VIP and the VIP gives the time."""
    gw = doc.host.gateway
    dns = doc.host.dns_servers[0] if doc.host.dns_servers else gw
    ntp = doc.host.ntp_servers[0] if doc.host.ntp_servers else gw
    dns_argv = service_checks(str(dns), name)[0].argv
    ntp_argv = service_checks(str(ntp), name)[1].argv
    return [
        NodeCheck("converged", [*envrouter, "agent", "status", "--document", PUSHED_DOCUMENT,
                                "--scope", "host", *agent_options],
                  _exit_ok("agent status")),
        NodeCheck("gateway", ["ping", "-c", "1", "-W", "2", str(gw)], _exit_ok(f"ping {gw}")),
        NodeCheck("dns", dns_argv, _dns_ok),
        NodeCheck("time", ntp_argv, _time_ok, timeout=20),
    ]
