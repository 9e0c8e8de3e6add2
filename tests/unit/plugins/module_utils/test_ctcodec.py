"""The conntrack codec on bytes recorded from this project's kernel (Linux 6.18): decode_ct and the encoders.

The recording (tests/unit/fixtures/ctrecorded.py) has real traffic and entries inserted over netlink. Three
independent oracles check the general decoder: values written out by hand for the inserted entries,
pyroute2's message classes on the same bytes, and ``conntrack -L -o extended,id`` taken at the same moment.
The encoders are checked by decoding what they write, and by pyroute2 parsing it.
"""
import socket

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab

import conntrack_text  # noqa: E402
from ctrecorded import ENTRIES, REC, entry_messages, find, messages  # noqa: E402


def test_recording_is_complete():
    assert len(ENTRIES) == 9
    assert sorted(e['proto'] for e in ENTRIES) == ['icmp', 'icmp', 'icmpv6', 'sctp', 'tcp', 'tcp', 'tcp', 'udp',
                                                   'udp']
    assert messages(REC['dump'])[-1][0] == nw.NLMSG_DONE


# --- hand-written expectations for the entries inserted over netlink -------------------------------------

def test_sctp_entry():
    entry = dict(find(proto='sctp'))
    stamp = entry.pop('timestamp_start')
    assert stamp > 1.7e18  # ns since the epoch (2023+)
    entry.pop('id')
    assert entry == {
        'family': 'ipv4', 'proto': 'sctp', 'protonum': 132, 'src': '192.0.2.10', 'dst': '198.51.100.20',
        'sport': 3868, 'dport': 3868, 'reply_src': '198.51.100.20', 'reply_dst': '192.0.2.10', 'reply_sport': 3868,
        'reply_dport': 3868, 'zone': 0, 'status': ['SEEN_REPLY', 'ASSURED', 'CONFIRMED'], 'mark': 0, 'use': 1,
        'timeout': 2999, 'state': 'ESTABLISHED', 'packets': 0, 'bytes': 0, 'reply_packets': 0, 'reply_bytes': 0}


def test_tcp_entry_in_zone_with_mark():
    entry = find(proto='tcp', zone=7)
    assert entry['mark'] == 0xdead0001
    assert entry['state'] == 'SYN_RECV'
    assert entry['status'] == ['CONFIRMED']  # no SEEN_REPLY: conntrack shows [UNREPLIED]
    assert (entry['src'], entry['sport'], entry['dst'], entry['dport']) == ('203.0.113.5', 51000, '192.0.2.80', 443)
    assert (entry['reply_src'], entry['reply_sport'], entry['reply_dst'], entry['reply_dport']) == (
        '192.0.2.80', 443, '203.0.113.5', 51000)
    assert entry['timeout'] == 1999
    assert 'tuple_zone' not in entry and 'reply_tuple_zone' not in entry


def test_udp6_entry_with_labels():
    entry = find(family='ipv6', proto='udp')
    assert entry['labels'] == [1, 70]
    assert entry['mark'] == 0x10
    assert (entry['src'], entry['dst'], entry['reply_src'], entry['reply_dst']) == (
        '2001:db8:1::5', '2001:db8:2::53', '2001:db8:2::53', '2001:db8:1::5')
    assert 'state' not in entry


def test_icmp_entry_inserted():
    entry = find(proto='icmp', icmp_id=4242)
    for key in ('sport', 'dport', 'reply_sport', 'reply_dport', 'state'):
        assert key not in entry
    assert (entry['icmp_type'], entry['icmp_code'], entry['reply_icmp_type'], entry['reply_icmp_code'],
            entry['reply_icmp_id']) == (8, 0, 0, 0, 4242)
    assert entry['mark'] == 3 and entry['zone'] == 0


# --- entries from real traffic -------------------------------------------------------------------------

def test_counters_and_timestamps_from_traffic():
    entry = find(family='ipv6', proto='icmpv6')
    assert (entry['packets'], entry['bytes'], entry['reply_packets'], entry['reply_bytes']) == (1, 52, 1, 52)
    assert (entry['icmp_type'], entry['reply_icmp_type']) == (128, 129)
    assert entry['src'] == '2001:db8::1'  # compressed, as conntrack prints it
    assert 'timestamp_stop' not in entry  # a live entry has only a start time
    tcp6 = find(family='ipv6', proto='tcp')
    assert tcp6['state'] == 'ESTABLISHED' and 'ASSURED' in tcp6['status']
    assert (tcp6['packets'], tcp6['reply_packets']) == (3, 2)


def test_dnat_entry():
    entry = find(proto='udp', family='ipv4')
    assert 'DST_NAT' in entry['status'] and 'SRC_NAT' not in entry['status']
    got = (entry['dst'], entry['dport'], entry['reply_src'], entry['reply_sport'])
    assert got == ('192.0.2.100', 5000, '192.0.2.1', 5001)
    assert entry['dnat'] == {'from': '192.0.2.100', 'to': '192.0.2.1', 'from_port': 5000, 'to_port': 5001}
    assert 'snat' not in entry


def test_helper_entry():
    entry = find(proto='tcp', dport=21)
    assert entry['helper'] == 'ftp'
    assert 'HELPER' in entry['status']


def test_plain_entries_have_no_nat_keys():
    for entry in ENTRIES:
        if not set(entry['status']) & {'SRC_NAT', 'DST_NAT'}:
            assert 'snat' not in entry and 'dnat' not in entry, entry


# --- oracle: pyroute2 on the same bytes ---------------------------------------------------------------

def test_every_field_equals_pyroute2():
    pytest.importorskip('pyroute2')
    from pyroute2.netlink.nfnetlink.nfctsocket import nfct_msg
    import pyroute2_reference

    for data in entry_messages():
        msg = nfct_msg(data)
        msg.decode()
        ours = codec.decode_ct(data, 20, len(data), data[16])
        assert ours == pyroute2_reference.flat_entry(msg)


# --- oracle: conntrack -L -o extended,id taken at the same moment ---------------------------------------

def test_every_entry_equals_conntrack_extended():
    theirs = dict((conntrack_text.key_of(e), e) for e in conntrack_text.parse_listing(REC['conntrack_extended']))
    assert len(theirs) == len(ENTRIES)
    for entry in ENTRIES:
        line = theirs[conntrack_text.key_of(entry)]
        assert conntrack_text.differences(entry, line) == [], entry


# --- decoder robustness ----------------------------------------------------------------------------------

def test_decoder_stays_inside_the_message():
    """Bytes after ``end`` (the next message in a datagram) are never read as part of this entry."""
    for data in entry_messages():
        padded = data + b'\xff' * 512
        assert codec.decode_ct(padded, 20, len(data), data[16]) == codec.decode_ct(data, 20, len(data), data[16])


def test_unknown_attributes_are_skipped():
    """A newer kernel may add attributes: an unknown CTA_* before the usual ones changes nothing."""
    data = entry_messages()[0]
    unknown = nw.nla(60, b'\x01\x02\x03')
    patched = data[:20] + unknown + data[20:]
    assert codec.decode_ct(patched, 20, len(patched), patched[16]) == codec.decode_ct(data, 20, len(data), data[16])


# --- encoders round-trip --------------------------------------------------------------------------------

INSERTED = REC['inserted']


@pytest.mark.parametrize('entry', INSERTED, ids=[e['family'] + '-' + str(e['protonum']) for e in INSERTED])
def test_encode_ct_attrs_round_trip(entry):
    attrs = codec.encode_ct_attrs(entry)
    af = socket.AF_INET if entry['family'] == 'ipv4' else socket.AF_INET6
    back = codec.decode_ct(attrs, 0, len(attrs), af)
    for key in ('family', 'protonum', 'src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id', 'mark',
                'timeout', 'state', 'labels'):
        assert back.get(key) == entry.get(key), key
    assert back['zone'] == entry.get('zone', 0)
    assert set(back['status']) == set(entry['status']) | {'CONFIRMED'}
    # the default reply tuple is the inverse of the original, as the kernel recorded it
    recorded = find(family=entry['family'], protonum=entry['protonum'], src=entry['src'])
    for key in ('reply_src', 'reply_dst', 'reply_sport', 'reply_dport', 'reply_icmp_type', 'reply_icmp_code',
                'reply_icmp_id'):
        assert back.get(key) == recorded.get(key), key


@pytest.mark.parametrize('entry', INSERTED, ids=[e['family'] + '-' + str(e['protonum']) for e in INSERTED])
def test_encode_ct_attrs_read_by_pyroute2(entry):
    """pyroute2 parses the CT_NEW message we build into the same fields."""
    pytest.importorskip('pyroute2')
    from pyroute2.netlink.nfnetlink.nfctsocket import nfct_msg
    import pyroute2_reference

    data = nw.nfnl_message(nw.NFNL_SUBSYS_CTNETLINK, nw.IPCTNL_MSG_CT_NEW, nw.NLM_F_REQUEST, 1,
                           socket.AF_INET if entry['family'] == 'ipv4' else socket.AF_INET6,
                           attrs=codec.encode_ct_attrs(entry))
    msg = nfct_msg(data)
    msg.decode()
    flat = pyroute2_reference.flat_entry(msg)
    for key in ('family', 'protonum', 'src', 'dst', 'sport', 'dport', 'icmp_id', 'mark', 'timeout', 'state', 'labels'):
        assert flat.get(key) == entry.get(key), key


@pytest.mark.parametrize('family,tup', [
    ('ipv4', {'src': '192.0.2.1', 'dst': '198.51.100.2', 'protonum': 6, 'sport': 1, 'dport': 65535}),
    ('ipv6', {'src': '2001:db8::1', 'protonum': 17, 'dport': 53}),
    ('ipv4', {'protonum': 1, 'icmp_type': 8, 'icmp_code': 0, 'icmp_id': 77}),
    ('ipv6', {'dst': '2001:db8::2', 'protonum': 58, 'icmp_type': 128, 'icmp_code': 0, 'icmp_id': 9}),
    ('ipv4', {'src': '203.0.113.9', 'zone': 5}),
])
def test_encode_tuple_round_trip(family, tup):
    af = socket.AF_INET if family == 'ipv4' else socket.AF_INET6
    data = codec.encode_tuple(vocab.CTA_TUPLE_ORIG, family, tup)
    back = codec.decode_ct(data, 0, len(data), af)
    expected = dict(tup)
    if 'zone' in expected:
        expected['tuple_zone'] = expected.pop('zone')
    got = dict((k, v) for k, v in back.items() if k in expected)
    assert got == expected


def test_key_order():
    """Entries with ports list protocol, tuples, zone, the fixed attributes, NAT, then the rest; others keep the
    kernel's order (what conntrack_info has always written)."""
    for entry in ENTRIES:
        keys = list(entry)
        if 'sport' in entry:
            head = [k for k in codec.PORTS_KEY_ORDER if k in entry]
            assert keys[:len(head)] == head, keys
        else:
            assert keys[:3] == ['family', 'zone', 'src'], keys
    dnat = find(proto='udp', family='ipv4')
    assert list(dnat).index('dnat') == list(dnat).index('timeout') + 1


# --- one encoder per structure ----------------------------------------------------------------------

@pytest.mark.parametrize('protonum,state', [(6, 'ESTABLISHED'), (132, 'COOKIE_WAIT'), (33, 'OPEN')])
def test_protoinfo_round_trip(protonum, state):
    attr = codec.encode_protoinfo(protonum, state)
    entry = {}
    codec.decode_ct_attrs(attr, 0, len(attr), entry)
    assert entry == {'state': state}


def test_sctp_protoinfo_carries_both_verification_tags():
    attr = codec.encode_protoinfo(132, 'ESTABLISHED', 0x11223344, 0x55667788)
    inner = list(nw.iter_attrs(attr, 8, len(attr)))
    assert [t for t, _p, _e in inner] == [vocab.CTA_PROTOINFO_SCTP_STATE, vocab.CTA_PROTOINFO_SCTP_VTAG_ORIGINAL,
                                          vocab.CTA_PROTOINFO_SCTP_VTAG_REPLY]
    assert attr[inner[1][1]:inner[1][2]] == b'\x11\x22\x33\x44'
    # encode_ct_attrs writes the same attribute for the entry's state
    entry = {'family': 'ipv4', 'protonum': 132, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'state': 'ESTABLISHED', 'vtag_orig': 0x11223344, 'vtag_reply': 0x55667788}
    assert attr in codec.encode_ct_attrs(entry)


@pytest.mark.parametrize('family,nat', [('ipv4', {'ip': '203.0.113.7', 'port': 8080}), ('ipv6', {'ip': '2001:db8::7'})])
def test_nat_round_trip(family, nat):
    attrs = codec.encode_nat({'family': family, 'nat_dst': nat})
    entry = {}
    codec.decode_ct_attrs(attrs, 0, len(attrs), entry)
    want = {'min_ip': nat['ip'], 'max_ip': nat['ip']}
    if 'port' in nat:
        want.update(min_port=nat['port'], max_port=nat['port'])
    assert entry == {'nat_dst': want}
    assert codec.encode_nat({'family': family}) == b''


def test_labels_round_trip():
    bits = codec.label_bits([0, 1, 70, 127])
    attrs = codec.encode_labels(bits, mask=(1 << 128) - 1)
    (ltype, lp, lend), (mtype, mp, mend) = nw.iter_attrs(attrs, 0, len(attrs))
    assert (ltype, mtype) == (vocab.CTA_LABELS, vocab.CTA_LABELS_MASK)
    assert codec.decode_labels(attrs, lp, lend) == [0, 1, 70, 127]
    assert codec.decode_labels(attrs, mp, mend) == list(range(128))
    assert codec.decode_labels(b'\0' * 16, 0, 16) == []


def test_expect_identity():
    exp = {'family': 'ipv4', 'zone': 3, 'id': 99,
           'tuple': {'src': '192.0.2.2', 'dst': '192.0.2.1', 'proto': 'tcp', 'protonum': 6, 'sport': 0, 'dport': 50000}}
    attrs = codec.encode_expect_identity(exp)
    types = [t for t, _p, _e in nw.iter_attrs(attrs, 0, len(attrs))]
    assert types == [vocab.CTA_EXPECT_TUPLE, vocab.CTA_EXPECT_ZONE, vocab.CTA_EXPECT_ID]
    assert codec.decode_expect(attrs, 0, len(attrs), socket.AF_INET)['tuple'] == exp['tuple']


def test_tcp_window_flags_encode_and_decode_side_by_side():
    attr = codec.encode_protoinfo(6, 'ESTABLISHED', tcp_flags=codec.TCP_FLAGS_CREATED)
    # CTA_PROTOINFO payload: the decoder reads both directions' flags back
    assert codec.decode_tcp_flags(attr, 4, len(attr)) == (0x0a, 0x0a)
    entry = {}
    codec.decode_protoinfo(attr, 4, len(attr), entry)
    assert entry == {'state': 'ESTABLISHED'}
    assert codec.encode_tcp_flags(vocab.CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, 0x08, 0xff) == b'\x06\x00\x04\x00\x08\xff\x00\x00'
    # without flags (and for SCTP, which has none) nothing but the state and the tags
    plain = codec.encode_protoinfo(6, 'ESTABLISHED')
    assert codec.decode_tcp_flags(plain, 4, len(plain)) == (None, None)
    assert len(codec.encode_protoinfo(132, 'ESTABLISHED', tcp_flags=0x0a)) == 32


@pytest.mark.parametrize('state, flags', [('TIME_WAIT', 0x0e), ('CLOSE', 0x0e), ('SYN_SENT2', 0x0e),
                                          ('ESTABLISHED', 0x0a), ('SYN_SENT', 0x0a), ('FIN_WAIT', 0x0a)])
def test_closing_states_add_close_init_as_conntrack_i(state, flags):
    attr = codec.encode_protoinfo(6, state, tcp_flags=codec.TCP_FLAGS_CREATED)
    assert codec.decode_tcp_flags(attr, 4, len(attr)) == (flags, flags)


def test_created_tcp_entries_carry_the_window_flags_of_conntrack_i():
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'state': 'SYN_SENT', 'timeout': 5}
    attrs = codec.encode_ct_attrs(entry)
    assert codec.encode_protoinfo(6, 'SYN_SENT', tcp_flags=0x0a) in attrs
    assert codec.encode_protoinfo(6, 'SYN_SENT') in codec.encode_ct_attrs(dict(entry, tcp_flags=0))
