"""Unit tests of bulk selection: which filters are checked on the raw address bytes, and the selection batch
on constructed dumps (the delete requests it copies, the sample it keeps)."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctselect as cts
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import delete_request_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_OPTIONS, Filter

from ctrecorded import dumped  # noqa: E402


def flt(**given):
    params = dict((k, None) for k in FILTER_OPTIONS)
    params.update(given)
    return Filter.from_params(params)


def test_raw_net_checks_only_for_address_residuals():
    assert cts.raw_net_checks(flt(mark=1)) is None
    assert cts.raw_net_checks(flt(proto='tcp', state=['ESTABLISHED'], src='192.0.2.0/24')) is None
    assert cts.raw_net_checks(flt(proto='sctp', dport=5, src='192.0.2.0/24')) is None
    assert cts.raw_net_checks(flt(src='192.0.2.0/24', proto='tcp', dport=80))


@pytest.mark.parametrize('release,raw', [('5.15.0', False), ('6.6.30', False), ('6.8.0', True), ('6.18.0', True)])
def test_raw_net_checks_need_a_kernel_that_filters_the_rest(release, raw):
    """Before 6.8 the dump ignores CTA_ZONE: a CIDR + zone filter must check the zone in Python too."""
    assert (cts.raw_net_checks(flt(src='192.0.2.0/24', zone=5), release) is not None) is raw


def test_raw_net_checks_not_with_exclusions():
    guarded = flt(src='192.0.2.0/24')
    guarded.exclude(Filter.port_guard(None, 6, [(443, 443)]))
    assert cts.raw_net_checks(guarded) is None


@pytest.mark.parametrize('zone', [0, 7])
def test_selection_batch_matches_cidrs_on_the_bytes_and_copies_the_delete(zone):
    """A CIDR filter: matching entries become the CT_DELETE the attribute walk builds, the others b''."""
    inside = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.77', 'dst': '198.51.100.1', 'sport': 1, 'dport': 80}
    outside = dict(inside, src='198.51.100.77')
    icmp = {'family': 'ipv4', 'protonum': 1, 'src': '192.0.2.78', 'dst': '198.51.100.1', 'icmp_type': 8,
            'icmp_code': 0, 'icmp_id': 9}
    datagram = dumped(inside, zone) + dumped(outside, zone) + dumped(icmp, zone)
    sample = []
    batch = cts._selection_batch(flt(src='192.0.2.0/24'), False, sample, 10, True)
    out = []
    assert batch(datagram, len(datagram), 7, out) is None
    first = dumped(inside, zone)
    third = dumped(icmp, zone)
    assert out == [delete_request_of(first, 20, len(first), vocab.AF_INET), b'',
                   delete_request_of(third, 20, len(third), vocab.AF_INET)]
    assert [e['src'] for e in sample] == ['192.0.2.77', '192.0.2.78'] and sample[0]['zone'] == zone
    # a condition only Python checks (a reply-direction port): decoded, tested, and the request still copied
    # at fixed offsets, the same bytes
    by_reply = cts._selection_batch(flt(proto='tcp', reply_dport=1), False, [], 0, True)
    out = []
    by_reply(datagram, len(datagram), 7, out)
    assert out == [delete_request_of(first, 20, len(first), vocab.AF_INET), delete_request_of(dumped(outside, zone), 20,
                   len(dumped(outside, zone)), vocab.AF_INET), b'']
    counting = cts._selection_batch(flt(src='192.0.2.0/24'), False, [], 0, False)
    out = []
    counting(datagram, len(datagram), 7, out)
    assert out == [1, 0, 1]
