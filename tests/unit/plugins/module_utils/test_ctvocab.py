"""Conntrack's vocabulary: the one map of families, protocols, states and status bits."""
import socket

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab


def test_status_names_and_value():
    assert vocab.status_names(0x18e) == ['SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT_DONE', 'DST_NAT_DONE']
    assert vocab.status_value(['SEEN_REPLY', 'ASSURED', 'CONFIRMED']) == 14
    assert vocab.NAT_BITS == vocab.status_value(['SRC_NAT', 'DST_NAT'])


def test_protocol_names_and_numbers_agree():
    for num, name in vocab.PROTO_NAMES.items():
        assert vocab.PROTO_NUMBERS[name] == num
    # the other names conntrack-tools and /etc/protocols use
    assert (vocab.PROTO_NUMBERS['icmp6'], vocab.PROTO_NUMBERS['ipv6-icmp'], vocab.PROTO_NUMBERS['udp-lite']) == (58, 58, 136)
    assert vocab.PORT_PROTOS == frozenset((6, 17, 33, 132, 136))
    assert vocab.ICMP_PROTOS == frozenset((1, 58))
    assert sorted(vocab.PROTO_STATES) == [6, 33, 132]


def test_families():
    assert vocab.FAMILIES == {'ipv4': socket.AF_INET, 'ipv6': socket.AF_INET6}
    assert dict((v, k) for k, v in vocab.FAMILIES.items()) == vocab.FAMILY_NAMES
    assert (vocab.af_of('ipv4'), vocab.af_of('ipv6')) == (socket.AF_INET, socket.AF_INET6)


def test_statistics_names_in_attribute_order():
    assert vocab.STATS_KEYS == ('found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error',
                                'search_restart', 'clash_resolve', 'chaintoolong')
