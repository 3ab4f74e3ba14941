"""nftables rendering (pure), compared with the expected text."""

from __future__ import annotations

import pytest

from envrouter.agent.nftables.render import (
    nft_load_text,
    render_host_table,
    render_vrouter_table,
)


def test_vrouter_table_text():
    t = render_vrouter_table(
        management_cidr="10.20.0.0/24",
        management_port="vr-mgmt",
        public_port="vr-pub",
        public_vip="10.30.0.2",
        nat=True,
    )
    d = t.digest
    assert t.text == (
        "table ip envrouter {\n"
        f'\tcomment "envrouter {d}"\n'
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy drop;\n"
        f'\t\tct state established,related accept comment "envrouter:forward:1:{d}"\n'
        '\t\tiifname "vr-mgmt" oifname "vr-pub" ip saddr 10.20.0.0/24 accept '
        f'comment "envrouter:forward:2:{d}"\n'
        "\t}\n"
        "\tchain postrouting {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        '\t\tip saddr 10.20.0.0/24 oifname "vr-pub" snat to 10.30.0.2 '
        f'comment "envrouter:postrouting:1:{d}"\n'
        "\t}\n"
        "}\n"
    )
    assert "masquerade" not in t.text  # SNAT to the VIP, never MASQUERADE
    assert nft_load_text(t).startswith(
        "table ip envrouter\ndelete table ip envrouter\ntable ip envrouter {\n"
    )


def test_digest_follows_content_and_nat_off_has_no_snat():
    a = render_vrouter_table(
        management_cidr="10.20.0.0/24",
        management_port="vr-mgmt",
        public_port="vr-pub",
        public_vip="10.30.0.2",
        nat=True,
    )
    b = render_vrouter_table(
        management_cidr="10.20.0.0/24",
        management_port="vr-mgmt",
        public_port="vr-pub",
        public_vip="10.30.0.3",
        nat=True,
    )
    c = render_vrouter_table(
        management_cidr="10.20.0.0/24",
        management_port="vr-mgmt",
        public_port="vr-pub",
        public_vip="10.30.0.2",
        nat=False,
    )
    assert len({a.digest, b.digest, c.digest}) == 3
    assert "snat" not in c.text and "postrouting" not in c.text
    assert a.rule_comments[0][0] == "forward" and len(a.rule_comments[0][1]) == 2


def test_host_table_snat_to_own_public_address():
    t = render_host_table(
        link_cidr="169.254.77.0/30", public_bridge="br-ex", public_address="10.30.0.11",
        host_link="vr-host",
    )
    assert 'ip saddr 169.254.77.0/30 oifname "br-ex" snat to 10.30.0.11' in t.text
    assert t.text.startswith("table ip envrouter_host {\n")


def test_ipv6_twin_table_nat66_and_routed():
    from envrouter.agent.nftables.render import render_vrouter_table6

    kw = dict(management_cidr6="fd00:20::/64", management_port="vr-mgmt", public_port="vr-pub",
              public_vip6="2001:db8:30::5")
    nat = render_vrouter_table6(**kw, egress="nat66")
    assert nat.family == "ip6" and nat.name == "envrouter"
    assert "policy drop;" in nat.text and "ct state established,related accept" in nat.text
    assert 'ip6 saddr fd00:20::/64 oifname "vr-pub" snat to 2001:db8:30::5' in nat.text
    routed = render_vrouter_table6(**kw, egress="routed")
    assert "snat" not in routed.text and "postrouting" not in routed.text
    assert 'iifname "vr-mgmt" oifname "vr-pub" ip6 saddr fd00:20::/64' in routed.text
    assert routed.digest != nat.digest
    with pytest.raises(ValueError):
        render_vrouter_table6(**kw, egress="nat64")
