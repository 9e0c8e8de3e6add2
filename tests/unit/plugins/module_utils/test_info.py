"""conntrack_info's engine without a kernel: summaries, top counters, validation and the result shape.

The kernel is replaced by plain lists of entry dicts (monkeypatched readers), so these tests run
anywhere; tests/integration/test_conntrack_info.py runs the same code against the real kernel.
"""
import json
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctlayout as layout
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Joined
from ansible_collections.netfilter.conntrack.plugins.module_utils import _info as info
from ansible_collections.netfilter.conntrack.plugins.module_utils import _procfs as procfs
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError, MissingLibraryError

import ctrecorded  # noqa: E402

TABLE = [
    {'family': 'ipv4', 'proto': 'tcp', 'protonum': 6, 'src': '192.0.2.1', 'dst': '198.51.100.1', 'sport': 1000,
     'dport': 443, 'state': 'ESTABLISHED', 'status': ['SEEN_REPLY', 'ASSURED', 'CONFIRMED'], 'zone': 0, 'mark': 0},
    {'family': 'ipv4', 'proto': 'tcp', 'protonum': 6, 'src': '192.0.2.1', 'dst': '198.51.100.2', 'sport': 1001,
     'dport': 443, 'state': 'SYN_SENT', 'status': ['CONFIRMED'], 'zone': 0, 'mark': 1},
    {'family': 'ipv4', 'proto': 'udp', 'protonum': 17, 'src': '192.0.2.2', 'dst': '198.51.100.1', 'sport': 5000,
     'dport': 53, 'status': ['SEEN_REPLY', 'CONFIRMED'], 'zone': 3, 'mark': 0},
    {'family': 'ipv6', 'proto': 'sctp', 'protonum': 132, 'src': '2001:db8::1', 'dst': '2001:db8::2', 'sport': 1,
     'dport': 2, 'state': 'ESTABLISHED', 'status': ['CONFIRMED'], 'zone': 0, 'mark': 0},
    {'family': 'ipv6', 'proto': 'icmpv6', 'protonum': 58, 'src': '2001:db8::1', 'dst': '2001:db8::2',
     'icmp_type': 128, 'icmp_code': 0, 'icmp_id': 1, 'status': ['SEEN_REPLY', 'CONFIRMED'], 'zone': 0, 'mark': 0},
]


def summarise(entries, top=10):
    summary = info.Summary(top)
    summary.consume(layout.brief_of(entry) for entry in entries)
    return summary.result()


def test_summary_counts():
    result = summarise(TABLE)
    assert result == {
        'total': 5,
        'by_family': {'ipv4': 3, 'ipv6': 2},
        'by_proto': {'tcp': 2, 'udp': 1, 'sctp': 1, 'icmpv6': 1},
        'by_state': {'ESTABLISHED': 1, 'SYN_SENT': 1, 'sctp/ESTABLISHED': 1},
        'by_zone': {'0': 4, '3': 1},
        'by_status': {'ASSURED': 1, 'UNREPLIED': 2},
        'top_sources': [{'src': '2001:db8::1', 'count': 2}, {'src': '192.0.2.1', 'count': 2},
                        {'src': '192.0.2.2', 'count': 1}],
        'top_destinations': [{'dst': '2001:db8::2', 'count': 2}, {'dst': '198.51.100.1', 'count': 2},
                             {'dst': '198.51.100.2', 'count': 1}],
        'top_dports': [{'dport': 'tcp/443', 'count': 2}, {'dport': 'udp/53', 'count': 1},
                       {'dport': 'sctp/2', 'count': 1}],
        'approximate': False,
    }


def test_summary_top_n_and_empty():
    assert len(summarise(TABLE, top=1)['top_sources']) == 1
    empty = summarise([])
    assert empty['total'] == 0 and empty['top_sources'] == [] and empty['by_family'] == {}


def test_summary_add_and_consume_agree():
    one = info.Summary(10)
    for entry in TABLE:
        one.add(entry)
    assert one.result() == summarise(TABLE)


def test_top_counter_exact_below_capacity():
    counter = info.TopCounter(capacity=3)
    counter.counts.update({'a': 5, 'b': 3, 'c': 3, 'd': 1, 'e': 1, 'f': 1})
    counter.prune()  # 6 keys = 2 x capacity: still exact
    assert not counter.approximate
    assert counter.top(3, 'key') == [{'key': 'a', 'count': 5}, {'key': 'c', 'count': 3}, {'key': 'b', 'count': 3}]


def test_top_counter_prunes_to_capacity_and_flags_it():
    counter = info.TopCounter(capacity=2)
    counter.counts.update({'a': 9, 'b': 8, 'c': 1, 'd': 1, 'e': 1})
    counter.prune()
    assert counter.approximate
    assert counter.counts == {'a': 9, 'b': 8}


def test_summary_is_bounded_on_many_keys(monkeypatch):
    """Many distinct sources: memory stays bounded and the heavy hitter is still on top."""
    monkeypatch.setattr(info.Summary, 'PRUNE_EVERY', 100)
    summary = info.Summary(3)
    summary.sources.capacity = summary.destinations.capacity = summary.dports.capacity = 50
    entries = [{'family': 'ipv4', 'proto': 'udp', 'src': '10.%d.%d.1' % (i // 256, i % 256), 'dst': '192.0.2.1',
                'dport': 53, 'status': []} for i in range(1000)]
    entries += [{'family': 'ipv4', 'proto': 'udp', 'src': '192.0.2.99', 'dst': '192.0.2.1', 'dport': 53,
                 'status': []}] * 30
    for entry in entries:
        summary.add(entry)
        assert len(summary.sources.counts) <= 2 * 50 + 100
    result = summary.result()
    assert result['total'] == 1030
    assert result['approximate'] is True
    assert result['top_sources'][0] == {'src': '192.0.2.99', 'count': 30}
    assert result['top_dports'] == [{'dport': 'udp/53', 'count': 1030}]


# --- validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params,option,words', [
    ({'limit': -1}, 'limit', 'limit -1 is negative'),
    ({'top': 0}, 'top', 'top 0 must be at least 1'),
    ({'query': 'entries[?'}, 'query', "query 'entries[?' is not a valid JMESPath expression"),
    ({'query': '!!'}, 'query', 'is not a valid JMESPath expression'),
    ({'proto': 'tcp', 'dport': 99999}, 'dport', 'dport 99999 is out of range: ports are 0-65535'),
    ({'family': 'ipv4', 'dst': '2001:db8::1'}, 'dst', 'addresses and family must agree'),
])
def test_validate_bad_input(params, option, words):
    with pytest.raises(ConntrackError) as exc:
        info.validate(params)
    assert exc.value.option == option
    assert words in exc.value.msg


def test_validate_good_input():
    flt = info.validate({'limit': 0, 'top': 1, 'query': 'summary.top_dports[0]', 'proto': 'udp', 'dport': 53})
    assert flt.given == {'proto': 'udp', 'dport': 53}


def test_query_without_jmespath(monkeypatch):
    monkeypatch.setattr(info, 'have_library', lambda name: name != 'jmespath')
    with pytest.raises(MissingLibraryError) as exc:
        info.validate({'query': 'count'})
    assert exc.value.library == 'jmespath'


# --- backend choice -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('requested', ['auto', 'netlink'])
def test_netlink_needs_no_pyroute2(monkeypatch, requested):
    """The ctnetlink codec is the standard library's: a host without pyroute2 still reads over netlink."""
    monkeypatch.setattr(info, 'have_library', lambda name: False)
    assert info.choose_backend(requested) == ('netlink', None)


def test_query_runtime_errors_name_the_option():
    for expression in ('sort(@)', 'abs(backend)'):
        query = info.compile_query(expression)
        with pytest.raises(ConntrackError) as exc:
            info.run_query(query, expression, {'backend': 'netlink', 'count': 1})
        assert exc.value.option == 'query' and 'failed on the result' in exc.value.msg


@pytest.mark.parametrize('expression', ['(' * 3000 + 'a' + ')' * 3000, '[' * 5000, '!' * 5000 + 'a'],
                         ids=['parens', 'brackets', 'nots'])
def test_deeply_nested_queries_are_a_query_error(expression):
    with pytest.raises(ConntrackError) as exc:
        query = info.compile_query(expression)
        info.run_query(query, expression, {'a': 1})
    assert exc.value.option == 'query' and len(exc.value.msg) < 600


def test_backend_procfs_is_honoured():
    assert info.choose_backend('procfs') == ('procfs', None)


# --- gather on a fake /proc ---------------------------------------------------------------------------------

@pytest.fixture
def fake_proc(monkeypatch):
    monkeypatch.setattr(info, 'conntrack_available', lambda: True)
    monkeypatch.setattr(procfs, 'count', lambda: 5)
    monkeypatch.setattr(procfs, 'maximum', lambda: 200)
    monkeypatch.setattr(procfs, 'buckets', lambda: 64)
    per_cpu = [dict(cpu=0, drop=2, early_drop=1), dict(cpu=1, drop=3, insert_failed=4)]
    monkeypatch.setattr(procfs, 'stats_per_cpu', lambda: per_cpu)
    monkeypatch.setattr(procfs, 'sysctls', lambda: {'net.netfilter.nf_conntrack_max': 200})
    monkeypatch.setattr(procfs, 'kernel_facts', lambda initial: {'initial_namespace': initial})
    monkeypatch.setattr(procfs, 'entries', lambda: iter([dict(e) for e in TABLE]))
    monkeypatch.setattr(procfs, 'expectations', lambda: [{'timeout': 1, 'tuple': {}, 'flags': []}])


def params(**kw):
    base = dict((k, v.get('default')) for k, v in info.INFO_ARGSPEC.items())
    base['backend'] = 'procfs'
    base.update(kw)
    return base


def test_gather_always_part(fake_proc):
    result, warnings = info.gather(params(), namespace='ns1', initial_namespace=False)
    assert warnings == []
    assert (result['count'], result['max'], result['usage_percent'], result['buckets']) == (5, 200, 2.5, 64)
    assert result['stats']['drop'] == 5 and result['stats']['insert_failed'] == 4
    assert result['stats']['early_drop'] == 1 and result['stats']['found'] == 0
    assert result['backend'] == 'procfs' and result['namespace'] == 'ns1'
    assert result['kernel'] == {'initial_namespace': False}
    assert result['filter'] == {}
    assert 'entries' not in result and 'summary' not in result and 'matched' not in result


def test_gather_entries_with_filter_and_limit(fake_proc):
    result, _w = info.gather(params(entries=True, summary=True, limit=1, proto='tcp'))
    assert result['matched'] == 2
    assert result['truncated'] is True
    assert [e['sport'] for e in result['entries']] == [1000]
    assert result['summary']['total'] == 2 and result['summary']['by_proto'] == {'tcp': 2}
    assert result['filter'] == {'proto': 'tcp'}


def test_gather_streamed_listing(fake_proc):
    result, _w = info.gather(params(entries=True, limit=0, family='ipv6'))
    stream = result['entries']
    assert stream.text  # JSON texts, written as they come
    listed = [json.loads(e) for chunk in stream.chunks() for e in chunk]
    assert [e['proto'] for e in listed] == ['sctp', 'icmpv6']
    assert stream.trailer() == {'matched': 2, 'truncated': False}


def test_gather_query(fake_proc):
    result, _w = info.gather(params(summary=True, query='summary.by_family'))
    assert result == {'backend': 'procfs', 'namespace': None, 'query': 'summary.by_family',
                      'query_result': {'ipv4': 3, 'ipv6': 2}}


def test_gather_query_on_entries(fake_proc):
    result, _w = info.gather(params(entries=True, query="entries[?state=='SYN_SENT'].dst"))
    assert result['query_result'] == ['198.51.100.2']


def test_gather_expectations_procfs(fake_proc):
    result, _w = info.gather(params(expectations=True))
    assert result['expectations'] == [{'timeout': 1, 'tuple': {}, 'flags': []}]


def test_gather_without_conntrack(monkeypatch):
    monkeypatch.setattr(info, 'conntrack_available', lambda: False)
    with pytest.raises(ConntrackError) as exc:
        info.gather(params(), namespace='ns1')
    assert 'connection tracking is not active in this network namespace' in exc.value.msg


def test_gather_validates_before_reading(monkeypatch):
    def boom():
        raise AssertionError('the kernel was read before validation')
    monkeypatch.setattr(info, 'conntrack_available', boom)
    with pytest.raises(ConntrackError):
        info.gather(params(proto='nope'))


def test_gather_procfs_without_proc_table(fake_proc, monkeypatch):
    monkeypatch.setattr(procfs, 'entries', lambda: None)
    with pytest.raises(ConntrackError) as exc:
        info.gather(params(entries=True, summary=True))
    assert exc.value.option == 'backend' and 'use backend: netlink' in exc.value.msg
    assert 'pyroute2' not in exc.value.msg  # no library would help: the kernel lacks the file


def test_gather_procfs_without_proc_expect_table(fake_proc, monkeypatch):
    monkeypatch.setattr(procfs, 'expectations', lambda: None)
    with pytest.raises(ConntrackError) as exc:
        info.gather(params(expectations=True))
    assert exc.value.option == 'backend' and 'nf_conntrack_expect' in exc.value.msg


def test_entry_stream_counts_joined_batches_and_cuts_them_at_the_limit():
    texts = [json.dumps({'id': i}) for i in range(5)]
    batches = [[texts[0]], Joined(', '.join(texts[1:4]), 3), [texts[4]]]
    stream = info.EntryStream(iter(batches), limit=2, text=True)
    written = [t for chunk in stream.chunks() for t in chunk]
    assert [json.loads(t)['id'] for t in written] == [0, 1]
    assert stream.trailer() == {'matched': 5, 'truncated': True}


def test_limited_listing_counts_past_the_limit_without_decoding():
    """A listing with a limit decodes datagrams until the limit is reached, then only counts entries."""
    decoded = []

    def counting_json(buf, off, end, family):
        decoded.append(1)
        return layout.decode_ct_json(buf, off, end, family)

    data = ctrecorded.datagrams()[0]
    seq = struct.unpack_from('=IHHII', data)[3]
    run = info._limited(layout.plain_batch(counting_json), 2)
    first, second = [], []
    run(data, len(data), seq, first)
    run(data, len(data), seq, second)  # the same datagram again: past the limit now
    assert len(first) == len(second) > 2
    assert [json.loads(text) for text in first] == ctrecorded.ENTRIES[:len(first)]
    assert second == [0] * len(second) and len(decoded) == len(first)
