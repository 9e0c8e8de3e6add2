"""Unit tests of conntrack_flush's pure parts: kernel-flush eligibility, its request, option validation."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctflush as ctf
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
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
