"""The agent's nftables tables as text (pure: no kernel, no files, no processes).

Every rule carries a comment naming it and a digest of the whole table, so the observed table
can be compared rule by rule with the one the agent would load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

NFT_TABLE = "envrouter"  # the vrouter namespace's table
NFT_HOST_TABLE = "envrouter_host"  # the node's own table


@dataclass(frozen=True)
class NftTableSpec:
    ns: str
    family: str
    name: str
    text: str  # the whole table definition, without the delete preamble
    digest: str
    rule_comments: tuple[tuple[str, tuple[str, ...]], ...]  # (chain, comments in order)

    def in_ns(self, ns: str) -> NftTableSpec:
        return NftTableSpec(ns, self.family, self.name, self.text, self.digest, self.rule_comments)


def _table(family: str, name: str, chains: list[tuple[str, str, list[str]]]) -> NftTableSpec:
    """chains: (name, base chain header, rules). Each rule gets a comment naming it, so the
    observed table can be compared rule by rule; the table comment carries a digest of it all."""
    # the digest covers the whole table and is repeated in every rule comment: nft's JSON
    # listing shows rule comments (not table comments), so any change of ours, a rule
    # removed or added by hand, or a flushed chain shows as a different fingerprint
    digest = hashlib.sha256(repr(chains).encode()).hexdigest()[:12]
    body: list[str] = []
    comments: list[tuple[str, tuple[str, ...]]] = []
    for cname, header, rules in chains:
        body.append(f"\tchain {cname} {{")
        body.append(f"\t\t{header}")
        names = []
        for i, rule in enumerate(rules, 1):
            cm = f"{name}:{cname}:{i}:{digest}"
            names.append(cm)
            body.append(f'\t\t{rule} comment "{cm}"')
        body.append("\t}")
        comments.append((cname, tuple(names)))
    text = "\n".join(
        [f"table {family} {name} {{", f'\tcomment "envrouter {digest}"', *body, "}", ""]
    )
    return NftTableSpec("", family, name, text, digest, tuple(comments))


def render_vrouter_table(
    *, management_cidr: str, management_port: str, public_port: str, public_vip: str, nat: bool
) -> NftTableSpec:
    forward = [
        "ct state established,related accept",
        f'iifname "{management_port}" oifname "{public_port}" ip saddr {management_cidr} accept',
    ]
    chains = [
        ("forward", "type filter hook forward priority filter; policy drop;", forward),
    ]
    if nat:
        chains.append(
            (
                "postrouting",
                "type nat hook postrouting priority srcnat; policy accept;",
                [f'ip saddr {management_cidr} oifname "{public_port}" snat to {public_vip}'],
            )
        )
    return _table("ip", NFT_TABLE, chains)


def render_vrouter_table6(
    *,
    management_cidr6: str,
    management_port: str,
    public_port: str,
    public_vip6: str,
    egress: str,
) -> NftTableSpec:
    """The IPv6 twin of the vrouter table (`ip6 envrouter`), loaded and replaced by itself in
    one transaction like the IPv4 one: forward only from the management prefix to the public
    side, and back only what belongs to a connection (policy drop: closed from the public side
    in routed mode too); `nat66`: SNAT to the public IPv6 VIP; `routed`: no NAT chain."""
    forward = [
        "ct state established,related accept",
        f'iifname "{management_port}" oifname "{public_port}" ip6 saddr {management_cidr6} '
        "accept",
    ]
    chains = [("forward", "type filter hook forward priority filter; policy drop;", forward)]
    if egress == "nat66":
        chains.append(
            (
                "postrouting",
                "type nat hook postrouting priority srcnat; policy accept;",
                [f'ip6 saddr {management_cidr6} oifname "{public_port}" snat to {public_vip6}'],
            )
        )
    elif egress != "routed":
        raise ValueError(f"unknown IPv6 egress {egress!r}")
    return _table("ip6", NFT_TABLE, chains)


def render_host_table(
    *, link_cidr: str, public_bridge: str, public_address: str, host_link: str
) -> NftTableSpec:
    rules = [
        f'ip saddr {link_cidr} oifname "{public_bridge}" snat to {public_address}',
        f'ip saddr {link_cidr} oifname != "{host_link}" masquerade',
    ]
    return _table(
        "ip",
        NFT_HOST_TABLE,
        [("postrouting", "type nat hook postrouting priority srcnat; policy accept;", rules)],
    )


def fingerprint(spec: NftTableSpec) -> dict:
    """What observe can read back of a table we loaded: its rules' comments per chain."""
    return {"rules": tuple(sorted(spec.rule_comments))}


def nft_load_text(spec: NftTableSpec) -> str:
    """The file `nft -f` loads: create-if-missing, delete, define: one atomic transaction."""
    return f"table {spec.family} {spec.name}\ndelete table {spec.family} {spec.name}\n{spec.text}"
