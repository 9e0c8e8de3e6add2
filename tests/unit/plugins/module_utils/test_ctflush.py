"""Unit tests of select/flush's pure parts: kernel-flush eligibility, request encoding, raw matchers,
the selection batch."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctflush as ctf
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import delete_request_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_OPTIONS, Filter

from ctrecorded import dumped  # noqa: E402


def flt(**given):
    params = dict((k, None) for k in FILTER_OPTIONS)
    params.update(given)
    return Filter.from_params(params)


def params(**given):
    out = dict((k, None) for k in FILTER_OPTIONS)
    out.update(table='conntrack', all=False, max_delete=None, sample_size=10, helper=None, method='auto')
    out.update(given)
    return out


@pytest.mark.parametrize('given, ok', [
    ({}, True), ({'mark': 0}, True), ({'family': 'ipv6', 'zone': 3}, True), ({'status': ['UNREPLIED']}, True),
    ({'proto': 'tcp'}, False), ({'src': '192.0.2.1'}, False), ({'proto': 'tcp', 'state': ['ESTABLISHED']}, False),
    ({'dst': '2001:db8::/32'}, False),
])
def test_kernel_flushable(given, ok):
    assert ctf.kernel_flushable(flt(**given), '6.18.0') is ok
    assert ctf.kernel_flushable(flt(**given), '6.1.0') is False  # zone filters arrived in 6.8: never older


def test_flush_request_attrs_mark_zero_is_a_filter():
    family, attrs = ctf.flush_request_attrs(flt(mark=0, family='ipv4'))
    assert family == vocab.AF_INET
    assert attrs == nw.nla_be32(vocab.CTA_MARK, 0) + nw.nla_be32(vocab.CTA_MARK_MASK, 0xffffffff)


def test_raw_net_checks_only_for_address_residuals():
    assert ctf.raw_net_checks(flt(mark=1)) is None
    assert ctf.raw_net_checks(flt(proto='tcp', state=['ESTABLISHED'], src='192.0.2.0/24')) is None
    assert ctf.raw_net_checks(flt(proto='sctp', dport=5, src='192.0.2.0/24')) is None
    assert ctf.raw_net_checks(flt(src='192.0.2.0/24', proto='tcp', dport=80))


@pytest.mark.parametrize('release,raw', [('5.15.0', False), ('6.6.30', False), ('6.8.0', True), ('6.18.0', True)])
def test_raw_net_checks_need_a_kernel_that_filters_the_rest(release, raw):
    """Before 6.8 the dump ignores CTA_ZONE: a CIDR + zone filter must check the zone in Python too."""
    assert (ctf.raw_net_checks(flt(src='192.0.2.0/24', zone=5), release) is not None) is raw


def test_raw_net_checks_not_with_exclusions():
    guarded = flt(src='192.0.2.0/24')
    guarded.exclude(Filter.port_guard(None, 6, [(443, 443)]))
    assert ctf.raw_net_checks(guarded) is None


@pytest.mark.parametrize('zone', [0, 7])
def test_selection_batch_matches_cidrs_on_the_bytes_and_copies_the_delete(zone):
    """A CIDR filter: matching entries become the CT_DELETE the attribute walk builds, the others b''."""
    inside = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.77', 'dst': '198.51.100.1', 'sport': 1, 'dport': 80}
    outside = dict(inside, src='198.51.100.77')
    icmp = {'family': 'ipv4', 'protonum': 1, 'src': '192.0.2.78', 'dst': '198.51.100.1', 'icmp_type': 8,
            'icmp_code': 0, 'icmp_id': 9}
    datagram = dumped(inside, zone) + dumped(outside, zone) + dumped(icmp, zone)
    sample = []
    batch = ctf._selection_batch(flt(src='192.0.2.0/24'), False, sample, 10, True)
    out = []
    assert batch(datagram, len(datagram), 7, out) is None
    first = dumped(inside, zone)
    third = dumped(icmp, zone)
    assert out == [delete_request_of(first, 20, len(first), vocab.AF_INET), b'',
                   delete_request_of(third, 20, len(third), vocab.AF_INET)]
    assert [e['src'] for e in sample] == ['192.0.2.77', '192.0.2.78'] and sample[0]['zone'] == zone
    # a condition only Python checks (a reply-direction port): decoded, tested, and the request still copied
    # at fixed offsets, the same bytes
    by_reply = ctf._selection_batch(flt(proto='tcp', reply_dport=1), False, [], 0, True)
    out = []
    by_reply(datagram, len(datagram), 7, out)
    assert out == [delete_request_of(first, 20, len(first), vocab.AF_INET), delete_request_of(dumped(outside, zone), 20,
                   len(dumped(outside, zone)), vocab.AF_INET), b'']
    counting = ctf._selection_batch(flt(src='192.0.2.0/24'), False, [], 0, False)
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
        ctf.validate_flush(params(**given))
    for word in words:
        assert word in info.value.msg


def test_validate_flush_accepts():
    assert ctf.validate_flush(params(all=True)).empty
    assert ctf.validate_flush(params(table='expect', helper='ftp')).empty
    assert ctf.validate_flush(params(table='expect', proto='tcp', dport=21)).given == {'proto': 'tcp', 'dport': 21}
