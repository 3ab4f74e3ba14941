"""Corosync 3 configuration: rendering (pure) and the cluster authkey.

corosync's parser rejects one-line blocks (``totem { version: 2 }`` fails with "Extra characters
after opening bracket"), so every block is rendered with its opening brace at the end of a line
and one ``key: value`` per line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from envrouter.document import DnsName, EnvironmentName, IPAddress, parse_value
from envrouter.errors import ValidationError
from envrouter.services.templating import render_template

AUTHKEY_SIZE = 256  # bytes, what corosync-keygen writes by default
CIPHERS = ("none", "aes256", "aes192", "aes128")
HASHES = ("none", "md5", "sha1", "sha256", "sha384", "sha512")

Node = tuple[str, int, object]  # (name, nodeid, ring0_addr: an address or its text)

# Failure detection = token + consensus (a dead node is declared lost only after the token
# timed out AND the survivors waited `consensus` for it in the new membership round). 400 ms
# with consensus 1.2 x 400 = 480 ms: a crashed controller is noticed in ~0.9 s, which leaves
# room for Pacemaker and the VIP start within the 1.5 s target. Safe on a LAN, where the token
# circulates in well under a millisecond and corosync runs with real-time priority; NOT across
# sites or with VMs that may be paused for longer than that (live migration, snapshots): there,
# raise it (docs/ha.md, "Failover speed").
DEFAULT_TOKEN_MS = 400
# knet's link heartbeat. By default knet pings every token/4 and declares a link down after
# token/2 without an answer (knet_pong_count 2), and sends nothing on a down link until two
# pongs came back: a 200-300 ms hiccup becomes a lost token and a new membership round (seen in
# the lab: ~11 spurious rounds a minute at token 400, ~3 at token 1000; none with the settings
# below). With knet_ping_timeout = token and one pong to come back, knet gives up on a link only
# when totem would lose the token anyway.
KNET_PINGS_PER_TOKEN = 4


def validate_nodes(nodes: Sequence[Node]) -> None:
    if not nodes:
        raise ValidationError("corosync nodelist", "nodes", "at least one node is needed")
    seen_names: set[str] = set()
    seen_ids: set[int] = set()
    seen_addrs: set[str] = set()
    for name, nodeid, ring0_addr in nodes:
        # names and addresses by the rules of the document they come from (a node's hostname)
        obj = f"corosync node {name!r}"
        parse_value(DnsName, obj, "name", name)
        if not isinstance(nodeid, int) or isinstance(nodeid, bool) or nodeid < 1:
            raise ValidationError(obj, "nodeid", f"must be a positive integer, got {nodeid!r}")
        addr = str(parse_value(IPAddress, obj, "ring0_addr", ring0_addr))
        if name in seen_names:
            raise ValidationError(obj, "name", "appears twice in the nodelist")
        if nodeid in seen_ids:
            raise ValidationError(obj, "nodeid", f"{nodeid} is used by another node")
        if addr in seen_addrs:
            raise ValidationError(obj, "ring0_addr", f"{addr} is used by another node")
        seen_names.add(name)
        seen_ids.add(nodeid)
        seen_addrs.add(addr)


def render_corosync_conf(
    cluster_name: str,
    nodes: Sequence[Node],
    token_ms: int | None = DEFAULT_TOKEN_MS,
    token_coefficient: int | None = 0,
    *,
    transport: str = "knet",
    crypto_cipher: str = "aes256",
    crypto_hash: str = "sha256",
    logfile: str = "/var/log/corosync/corosync.log",
) -> str:
    """corosync.conf for a cluster of `nodes` = [(name, nodeid, ring0_addr), ...].

    `token_ms` / `token_coefficient` None leave corosync's defaults. With the defaults here
    (token 400 ms, coefficient 0, consensus written out as 1.2 x token = 480 ms) the effective
    token does not grow with the number of nodes and a crashed VIP holder is noticed in ~0.9 s
    instead of ~8 s with corosync's defaults (see DEFAULT_TOKEN_MS for the trade-off). A
    two-node cluster gets ``two_node: 1`` so it stays quorate when one node is gone.
    """
    parse_value(EnvironmentName, "corosync cluster", "cluster_name", cluster_name)
    validate_nodes(nodes)
    if token_ms is not None and not (isinstance(token_ms, int) and 100 <= token_ms <= 600_000):
        raise ValidationError("corosync totem", "token", "must be an integer in 100..600000 ms")
    if token_coefficient is not None and not (
        isinstance(token_coefficient, int) and 0 <= token_coefficient <= 60_000
    ):
        raise ValidationError(
            "corosync totem", "token_coefficient", "must be an integer in 0..60000 ms"
        )
    if transport not in ("knet", "udpu", "udp"):
        raise ValidationError("corosync totem", "transport", "must be knet, udpu or udp")
    if crypto_cipher not in CIPHERS:
        raise ValidationError("corosync totem", "crypto_cipher", f"must be one of {CIPHERS}")
    if crypto_hash not in HASHES:
        raise ValidationError("corosync totem", "crypto_hash", f"must be one of {HASHES}")
    if crypto_cipher != "none" and crypto_hash == "none":
        raise ValidationError(
            "corosync totem", "crypto_hash", "a cipher needs a hash (knet refuses it otherwise)"
        )

    # corosync's own default, written out so the file says what detection costs
    consensus_ms = None if token_ms is None else -(-token_ms * 6 // 5)  # ceil(1.2 x token)
    return render_template(
        "ha/templates/corosync.conf.j2",
        cluster_name=cluster_name,
        transport=transport,
        crypto_cipher=crypto_cipher,
        crypto_hash=crypto_hash,
        token_ms=token_ms,
        consensus_ms=consensus_ms,
        token_coefficient=token_coefficient,
        knet_ping_timeout=token_ms if transport == "knet" else None,
        knet_ping_interval=None if token_ms is None else max(1, token_ms // KNET_PINGS_PER_TOKEN),
        nodes=list(nodes),
        two_node=len(nodes) == 2,
        logfile=logfile,
    )


def make_authkey(size: int = AUTHKEY_SIZE) -> bytes:
    """Random bytes for /etc/corosync/authkey (same on every node, mode 0400)."""
    if not 128 <= size <= 4096:
        raise ValidationError("corosync authkey", "size", "must be 128..4096 bytes")
    return os.urandom(size)
