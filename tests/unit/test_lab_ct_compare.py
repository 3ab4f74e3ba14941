from envrouter.lab.ct_compare import compare, parse_conntrack_list

SERVER, VIP = "198.51.100.80", "203.0.113.2"


def _tcp(client: str, cport: int, sport: int, nat: int, timeout: int = 97) -> str:
    return (f"tcp      6 {timeout} TIME_WAIT src={client} dst={SERVER} sport={cport} "
            f"dport={sport} src={SERVER} dst={VIP} sport={sport} dport={nat} [ASSURED] "
            "mark=0 use=1")


HOLDER = "\n".join([
    _tcp("192.168.0.102", 59266, 5100, 59266),
    _tcp("192.168.0.101", 59266, 5101, 59266),
    _tcp("192.168.0.102", 59266, 5101, 33089),
    f"udp      17 20 src=192.168.0.101 dst={SERVER} sport=4000 dport=5091 src={SERVER} "
    f"dst={VIP} sport=5091 dport=4000 mark=0 use=1",
    "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.",
])
PEER = "\n".join([
    _tcp("192.168.0.102", 59266, 5100, 33089, 102),  # re-created next to the 5101 flow
    _tcp("192.168.0.101", 59266, 5101, 59266, 102),
    _tcp("192.168.0.102", 59266, 5101, 33089, 102),
    _tcp("192.168.0.101", 7000, 5090, 7000, 3),
])


def test_parse_keys_flows_by_original_tuple_and_reads_the_nat_port() -> None:
    t = parse_conntrack_list(HOLDER)
    assert len(t) == 4
    e = t[("tcp", "192.168.0.102", "59266", SERVER, "5101")]
    assert (e.nat_port, e.state, e.timeout) == ("33089", "TIME_WAIT", 97)
    assert t[("udp", "192.168.0.101", "4000", SERVER, "5091")].state == ""


def test_compare_counts_and_explains_another_nat_port_by_a_same_source_mapping() -> None:
    d = compare(parse_conntrack_list(HOLDER), parse_conntrack_list(PEER))
    assert (d.same, d.other_port, d.peer_only, d.holder_only) == (2, 1, 1, 1)
    assert d.other_port_same_source == 1
    assert d.peer_only_states == {"TIME_WAIT": 1}
    assert "59266 on the holder, 33089 on the peer" in d.examples[0]
