"""Unit tests of the write path's pure parts: kernel-flush eligibility, request encoding, raw matchers."""
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctnetlink as nl
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_OPTIONS, Filter


def flt(**given):
    params = dict((k, None) for k in FILTER_OPTIONS)
    params.update(given)
    return Filter.from_params(params)


def params(**given):
    out = dict((k, None) for k in FILTER_OPTIONS)
    out.update(table='conntrack', all=False, max_delete=None, sample_size=10, helper=None, method='auto')
    out.update(given)
    return out


@pytest.mark.parametrize('release, want', [('6.18.44-fc', (6, 18)), ('5.10.0-21-amd64', (5, 10)), ('6.8', (6, 8)),
                                           ('garbage', (0, 0))])
def test_kernel_version(release, want):
    assert ctw.kernel_version(release) == want


@pytest.mark.parametrize('given, ok', [
    ({}, True), ({'mark': 0}, True), ({'family': 'ipv6', 'zone': 3}, True), ({'status': ['UNREPLIED']}, True),
    ({'proto': 'tcp'}, False), ({'src': '192.0.2.1'}, False), ({'proto': 'tcp', 'state': ['ESTABLISHED']}, False),
    ({'dst': '2001:db8::/32'}, False),
])
def test_kernel_flushable(given, ok):
    assert ctw.kernel_flushable(flt(**given), '6.18.0') is ok
    assert ctw.kernel_flushable(flt(**given), '6.1.0') is False  # zone filters arrived in 6.8: never older


def test_flush_request_attrs_mark_zero_is_a_filter():
    family, attrs = ctw.flush_request_attrs(flt(mark=0, family='ipv4'))
    assert family == nl.AF_INET
    assert attrs == nl.nla_be32(nl.CTA_MARK, 0) + nl.nla_be32(nl.CTA_MARK_MASK, 0xffffffff)


def test_delete_request_copies_tuple_zone_and_id():
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'state': 'ESTABLISHED', 'timeout': 5, 'status': [], 'zone': 7}
    orig = nl.encode_tuple(nl.CTA_TUPLE_ORIG, 'ipv4', {'src': '192.0.2.1', 'dst': '192.0.2.2', 'protonum': 6,
                                                       'sport': 1, 'dport': 2})
    reply = nl.encode_tuple(nl.CTA_TUPLE_REPLY, 'ipv4', nl.reply_of(entry))
    payload = orig + reply + nl.nla_be16(nl.CTA_ZONE, 7) + nl.nla_be32(nl.CTA_STATUS, 8) + \
        nl.nla_be32(nl.CTA_MARK, 0) + nl.nla_be32(nl.CTA_ID, 0xabcdef)
    request = ctw._delete_of(payload, 0, len(payload), nl.AF_INET)
    length, mtype, flags = struct.unpack_from('=IHH', request)
    assert length == len(request) and mtype == (1 << 8) | nl.IPCTNL_MSG_CT_DELETE and flags == nl.NLM_F_REQUEST
    body = request[20:]
    assert body == orig + nl.nla_be16(nl.CTA_ZONE, 7) + nl.nla_be32(nl.CTA_ID, 0xabcdef)


def dumped(entry, zone=0, seq=7):
    """One CT_NEW message as a dump carries it (tuples, zone, status, mark, id, use, timeout)."""
    payload = nl.encode_tuple(nl.CTA_TUPLE_ORIG, entry['family'], entry) + \
        nl.encode_tuple(nl.CTA_TUPLE_REPLY, entry['family'], nl.reply_of(entry))
    if zone:
        payload += nl.nla_be16(nl.CTA_ZONE, zone)
    payload += b''.join(nl.nla_be32(atype, value) for atype, value in (
        (nl.CTA_STATUS, 8), (nl.CTA_MARK, 0), (nl.CTA_ID, 0xabcdef), (nl.CTA_USE, 1), (nl.CTA_TIMEOUT, 5)))
    body = struct.pack('=BBH', nl.AF_INET if entry['family'] == 'ipv4' else nl.AF_INET6, 0, 0) + payload
    return struct.pack('=IHHII', 16 + len(body), (1 << 8) | nl.IPCTNL_MSG_CT_NEW, nl.NLM_F_MULTI, seq, 0) + body


def test_raw_net_checks_only_for_address_residuals():
    assert ctw.raw_net_checks(flt(mark=1)) is None
    assert ctw.raw_net_checks(flt(proto='tcp', state=['ESTABLISHED'], src='192.0.2.0/24')) is None
    assert ctw.raw_net_checks(flt(proto='sctp', dport=5, src='192.0.2.0/24')) is None
    assert ctw.raw_net_checks(flt(src='192.0.2.0/24', proto='tcp', dport=80))


@pytest.mark.parametrize('release,raw', [('5.15.0', False), ('6.6.30', False), ('6.8.0', True), ('6.18.0', True)])
def test_raw_net_checks_need_a_kernel_that_filters_the_rest(release, raw):
    """Before 6.8 the dump ignores CTA_ZONE: a CIDR + zone filter must check the zone in Python too."""
    assert (ctw.raw_net_checks(flt(src='192.0.2.0/24', zone=5), release) is not None) is raw


def test_raw_net_checks_not_with_exclusions():
    guarded = flt(src='192.0.2.0/24')
    guarded.exclude(Filter.port_guard(None, 6, [(443, 443)]))
    assert ctw.raw_net_checks(guarded) is None


@pytest.mark.parametrize('zone', [0, 7])
def test_selection_batch_matches_cidrs_on_the_bytes_and_copies_the_delete(zone):
    """A CIDR filter: matching entries become the CT_DELETE the attribute walk builds, the others b''."""
    inside = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.77', 'dst': '198.51.100.1', 'sport': 1, 'dport': 80}
    outside = dict(inside, src='198.51.100.77')
    icmp = {'family': 'ipv4', 'protonum': 1, 'src': '192.0.2.78', 'dst': '198.51.100.1', 'icmp_type': 8,
            'icmp_code': 0, 'icmp_id': 9}
    datagram = dumped(inside, zone) + dumped(outside, zone) + dumped(icmp, zone)
    sample = []
    batch = ctw._selection_batch(flt(src='192.0.2.0/24'), False, sample, 10, True)
    out = []
    assert batch(datagram, len(datagram), 7, out) is None
    first = dumped(inside, zone)
    third = dumped(icmp, zone)
    assert out == [ctw._delete_of(first, 20, len(first), nl.AF_INET), b'',
                   ctw._delete_of(third, 20, len(third), nl.AF_INET)]
    assert [e['src'] for e in sample] == ['192.0.2.77', '192.0.2.78'] and sample[0]['zone'] == zone
    # a condition only Python checks (a reply-direction port): decoded, tested, and the request still copied
    # at fixed offsets, the same bytes
    by_reply = ctw._selection_batch(flt(proto='tcp', reply_dport=1), False, [], 0, True)
    out = []
    by_reply(datagram, len(datagram), 7, out)
    assert out == [ctw._delete_of(first, 20, len(first), nl.AF_INET), ctw._delete_of(dumped(outside, zone), 20,
                   len(dumped(outside, zone)), nl.AF_INET), b'']
    counting = ctw._selection_batch(flt(src='192.0.2.0/24'), False, [], 0, False)
    out = []
    counting(datagram, len(datagram), 7, out)
    assert out == [1, 0, 1]


@pytest.mark.parametrize('given, words', [
    ({}, ['no filter', 'all: true']),
    ({'all': True, 'mark': 1}, ['cannot be combined']),
    ({'max_delete': -2, 'mark': 1}, ['max_delete']),
    ({'helper': 'ftp'}, ['table: expect']),
    ({'table': 'expect', 'status': ['ASSURED']}, ['status', 'expect table']),
    ({'table': 'expect'}, ['expectation table', 'all: true']),
])
def test_validate_flush(given, words):
    with pytest.raises(ConntrackError) as info:
        ctw.validate_flush(params(**given))
    for word in words:
        assert word in info.value.msg


def test_validate_flush_accepts():
    assert ctw.validate_flush(params(all=True)).empty
    assert ctw.validate_flush(params(table='expect', helper='ftp')).empty
    assert ctw.validate_flush(params(table='expect', proto='tcp', dport=21)).given == {'proto': 'tcp', 'dport': 21}


def test_errors_are_plain():
    import errno
    err = ctw._explain(nl.NetlinkError(errno.EEXIST), 'creating the entry')
    assert 'already exists' in err.msg and 'EEXIST' in err.msg and err.errno == errno.EEXIST
