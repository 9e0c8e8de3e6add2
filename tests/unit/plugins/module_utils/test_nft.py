"""_nft: reading the owned table back from what ``nft list`` prints (pure text, no nft run)."""
import os

from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft

SYNPROXY_TABLE = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                   'fixtures', 'nft_tables.txt')).read()  # a table as ``nft list`` prints it


def test_protected_traffic_from_the_listed_table():
    assert _nft.protected_traffic(SYNPROXY_TABLE) == [
        ('ipv4', [(443, 443), (8443, 8443)]), (None, [(1000, 2000)]), ('ipv6', [])]
    assert _nft.protected_traffic(None) == []
    assert _nft.describe_protected('ipv4', [(443, 443), (1000, 2000)]) == 'ipv4 tcp dport 443, 1000-2000'
    assert _nft.describe_protected(None, []) == 'ipv4/ipv6 tcp (every port)'


def test_drop_invalid_of_a_listed_synproxy_line():
    owned = _nft.parse_table(SYNPROXY_TABLE)
    lines = [_nft.drop_invalid_of(line) for kind, _r, line in owned.lines['input'] if kind == 'notrack']
    assert lines[0] == 'meta nfproto ipv4 tcp dport { 443, 8443 } ct state invalid drop comment "nc:drop_invalid:aaa"'
    assert lines[1] == 'tcp dport 1000-2000 ct state invalid drop comment "nc:drop_invalid:bbb"'
    assert _nft.drop_invalid_of('udp dport 53 notrack comment "nc:notrack:ccc"') is None
