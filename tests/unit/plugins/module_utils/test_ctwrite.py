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


@pytest.mark.parametrize('zone', [0, 7])
def test_delete_request_fast_path_equals_the_attribute_walk(zone, monkeypatch):
    """The fixed-offset copy of the common layout builds the same request as the attribute walk."""
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'state': 'ESTABLISHED', 'timeout': 5, 'status': [], 'zone': zone}
    orig = nl.encode_tuple(nl.CTA_TUPLE_ORIG, 'ipv4', {'src': '192.0.2.1', 'dst': '192.0.2.2', 'protonum': 6,
                                                       'sport': 1, 'dport': 2})
    reply = nl.encode_tuple(nl.CTA_TUPLE_REPLY, 'ipv4', nl.reply_of(entry))
    payload = orig + reply + (nl.nla_be16(nl.CTA_ZONE, zone) if zone else b'') + nl.nla_be32(nl.CTA_STATUS, 8) + \
        nl.nla_be32(nl.CTA_MARK, 0) + nl.nla_be32(nl.CTA_ID, 0xabcdef) + nl.nla_be32(nl.CTA_USE, 1) + \
        nl.nla_be32(nl.CTA_TIMEOUT, 5)
    fast = ctw._delete_of(payload, 0, len(payload), nl.AF_INET)
    monkeypatch.setattr(ctw, '_FAST_LEN', {})
    assert fast == ctw._delete_of(payload, 0, len(payload), nl.AF_INET)


def test_raw_net_matcher_only_for_address_residuals():
    assert ctw.raw_net_matcher(flt(mark=1)) is None
    assert ctw.raw_net_matcher(flt(proto='tcp', state=['ESTABLISHED'], src='192.0.2.0/24')) is None
    assert ctw.raw_net_matcher(flt(proto='sctp', dport=5, src='192.0.2.0/24')) is None
    match = ctw.raw_net_matcher(flt(src='192.0.2.0/24', proto='tcp', dport=80))
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.77', 'dst': '198.51.100.1', 'sport': 1, 'dport': 80}
    # what every dump carries after the tuples
    tail = b''.join(nl.nla_be32(atype, 1)
                    for atype in (nl.CTA_STATUS, nl.CTA_MARK, nl.CTA_ID, nl.CTA_USE, nl.CTA_TIMEOUT))
    payload = nl.encode_tuple(nl.CTA_TUPLE_ORIG, 'ipv4', entry) + nl.encode_tuple(nl.CTA_TUPLE_REPLY, 'ipv4',
                                                                                  nl.reply_of(entry)) + tail
    assert match(payload, 0, len(payload), nl.AF_INET) is True
    entry['src'] = '198.51.100.77'
    payload = nl.encode_tuple(nl.CTA_TUPLE_ORIG, 'ipv4', entry) + nl.encode_tuple(nl.CTA_TUPLE_REPLY, 'ipv4',
                                                                                  nl.reply_of(entry)) + tail
    assert match(payload, 0, len(payload), nl.AF_INET) is False
    assert match(payload, 0, len(payload), nl.AF_INET6) is None  # not the layout: decode in full


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
