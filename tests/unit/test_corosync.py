"""envrouter.ha.corosync: rendering (pure) and the authkey."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envrouter.errors import ValidationError
from envrouter.ha.corosync import make_authkey, render_corosync_conf

NODES = [("ctl1", 1, "192.168.0.11"), ("ctl2", 2, "192.168.0.12"), ("ctl3", 3, "192.168.0.13")]


def parse(text: str) -> dict:
    """A strict reader of corosync's format: '{' only at the end of a line, '}' alone."""
    root: dict = {}
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            assert name and " " not in name and "{" not in name and "}" not in name, raw
            child: dict = {}
            stack[-1].setdefault(name, []).append(child)
            stack.append(child)
        elif line == "}":
            stack.pop()
            assert stack, "unbalanced '}'"
        else:
            assert "{" not in line and "}" not in line, f"one-line block: {raw!r}"
            key, _, value = line.partition(":")
            assert value, raw
            stack[-1][key.strip()] = value.strip()
    assert len(stack) == 1, "unclosed block"
    return root


def test_three_nodes_tree() -> None:
    conf = parse(render_corosync_conf("lab", NODES))
    totem = conf["totem"][0]
    assert totem["cluster_name"] == "lab"
    assert totem["transport"] == "knet"
    assert totem["token"] == "400"
    assert totem["consensus"] == "480"  # 1.2 x token: detection in token + consensus
    assert totem["token_coefficient"] == "0"
    # knet gives up on a link only when the token would be lost anyway
    (iface,) = totem["interface"]
    assert iface == {"linknumber": "0", "knet_ping_interval": "100", "knet_ping_timeout": "400",
                     "knet_pong_count": "1"}
    nodes = conf["nodelist"][0]["node"]
    assert [(n["name"], int(n["nodeid"]), n["ring0_addr"]) for n in nodes] == NODES
    quorum = conf["quorum"][0]
    assert quorum["provider"] == "corosync_votequorum"
    assert "two_node" not in quorum


def test_two_nodes_get_two_node() -> None:
    conf = parse(render_corosync_conf("lab", NODES[:2]))
    assert conf["quorum"][0]["two_node"] == "1"


def test_defaults_left_to_corosync() -> None:
    totem = parse(render_corosync_conf("lab", NODES, None, None))["totem"][0]
    assert "token" not in totem and "token_coefficient" not in totem


@pytest.mark.parametrize(
    ("nodes", "field"),
    [
        ([], "nodes"),
        ([("ctl1", 1, "192.168.0.11"), ("ctl1", 2, "192.168.0.12")], "name"),
        ([("ctl1", 1, "192.168.0.11"), ("ctl2", 1, "192.168.0.12")], "nodeid"),
        ([("ctl1", 1, "192.168.0.11"), ("ctl2", 2, "192.168.0.11")], "ring0_addr"),
        ([("ctl1", 0, "192.168.0.11")], "nodeid"),
        ([("ctl 1", 1, "192.168.0.11")], "name"),
        ([("ctl1", 1, "not-an-ip")], "ring0_addr"),
    ],
)
def test_bad_nodes(nodes: list, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        render_corosync_conf("lab", nodes)
    assert err.value.field == field


def test_bad_options() -> None:
    with pytest.raises(ValidationError) as err:
        render_corosync_conf("lab {", NODES)
    assert err.value.field == "cluster_name"
    with pytest.raises(ValidationError) as err:
        render_corosync_conf("lab", NODES, token_ms=5)
    assert err.value.field == "token"
    with pytest.raises(ValidationError) as err:
        render_corosync_conf("lab", NODES, crypto_hash="none")
    assert err.value.field == "crypto_hash"


@given(st.integers(min_value=1, max_value=16), st.integers(100, 60000), st.integers(0, 5000))
def test_any_size_renders_multiline(n: int, token: int, coeff: int) -> None:
    nodes = [(f"n{i}", i, f"10.0.{i // 250}.{i % 250 + 1}") for i in range(1, n + 1)]
    conf = parse(render_corosync_conf("c", nodes, token, coeff))
    assert len(conf["nodelist"][0]["node"]) == n
    assert conf["totem"][0]["token"] == str(token)


def test_authkey() -> None:
    a, b = make_authkey(), make_authkey()
    assert len(a) == 256 and a != b
    with pytest.raises(ValidationError):
        make_authkey(16)
