"""nftables tables owned whole: observe by JSON listing, load with check then one `nft -f`."""

from __future__ import annotations

import json

from envrouter.agent.desired import NftTableSpec, nft_load_text
from envrouter.agent.netlink import run
from envrouter.errors import InfraError

NFT = "nft"


def observe_tables(ns: str, names: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """{(family, name): {"rules": ((chain, (rule comments...)), ...)}}
    for the tables among `names` present in namespace `ns` (one `nft -j list ruleset`)."""
    families = sorted({f for f, _ in names})
    out: dict[tuple[str, str], dict] = {}
    for family in families:
        res = run(ns, [NFT, "-j", "list", "ruleset", family])
        try:
            items = json.loads(res.stdout or '{"nftables": []}')["nftables"]
        except (ValueError, KeyError) as exc:
            raise InfraError(f"nft -j list ruleset: unreadable output: {exc}") from exc
        chains: dict[tuple[str, str], dict[str, list[str]]] = {}
        for item in items:
            if "table" in item:
                t = item["table"]
                key = (t["family"], t["name"])
                if key in names:
                    out[key] = {"rules": ()}
                    chains[key] = {}
            elif "chain" in item:
                c = item["chain"]
                key = (c["family"], c["table"])
                if key in chains:
                    chains[key].setdefault(c["name"], [])
            elif "rule" in item:
                r = item["rule"]
                key = (r["family"], r["table"])
                if key in chains:
                    chains[key].setdefault(r["chain"], []).append(r.get("comment", ""))
        for key, cs in chains.items():
            out[key]["rules"] = tuple(sorted((c, tuple(v)) for c, v in cs.items()))
    return out


def load_table(ns: str, spec: NftTableSpec) -> None:
    text = nft_load_text(spec)
    run(ns, [NFT, "-c", "-f", "-"], input=text)
    run(ns, [NFT, "-f", "-"], input=text)


def delete_table(ns: str, family: str, name: str) -> None:
    # "table X" first makes the delete succeed whether or not it exists: no error text parsing
    run(ns, [NFT, "-f", "-"], input=f"table {family} {name}\ndelete table {family} {name}\n")
