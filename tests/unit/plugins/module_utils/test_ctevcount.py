"""_ctevcount on recorded and constructed event messages: types, the fast path against decode_ct, filters,
destroyed flows' durations and counters, expectation events."""
import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctevcount as evc
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter

import ctevrecorded as rec

ALL = list(evc.EVENT_TYPES)


def counted(flt=None, exact=False, sample=0, datagrams=None):
    counter = evc.EventCounter(flt or Filter.from_params({}), exact, top=5, sample=sample)
    for data in rec.datagrams() if datagrams is None else datagrams:
        counter.consume(data, len(data))
    return counter


@pytest.mark.parametrize('mtype, flags, kind', [
    (0x100, nw.NLM_F_CREATE | nw.NLM_F_EXCL, evc.NEW),
    (0x100, 0, evc.UPDATE),
    (0x100, nw.NLM_F_CREATE, evc.UPDATE),  # both flags say new, one is not enough
    (0x102, 0, evc.DESTROY),
    (0x200, nw.NLM_F_CREATE | nw.NLM_F_EXCL, evc.NEW),  # expectations: the same numbers
    (0x202, 0, evc.DESTROY),
    (0x101, 0, None),
    (0x104, 0, None),
])
def test_event_type(mtype, flags, kind):
    assert evc.event_type(mtype, flags) == kind


def test_recorded_counts():
    result = counted().result(ALL, 2.0)
    # 6 UDP (v4+v6), 2 TCP connections, 1 inserted entry in zone 7; 5 updates of each TCP connection;
    # the 6 UDP entries and the zone-7 entry deleted
    assert (result['new']['count'], result['update']['count'], result['destroy']['count']) == (9, 10, 7)
    assert result['new']['rate'] == 4.5
    assert result['new']['by_family'] == {'ipv4': 6, 'ipv6': 3}
    assert result['new']['by_proto'] == {'udp': 6, 'tcp': 3}
    assert result['new']['by_zone'] == {'0': 8, '7': 1}
    assert result['new']['by_state'] == {'SYN_SENT': 2, 'ESTABLISHED': 1}
    assert {'dport': 'tcp/8080', 'count': 1} in result['new']['top_dports']
    assert result['update']['by_state']['ESTABLISHED'] == 2


def test_fast_path_equals_the_general_decoder():
    """The fixed event layouts (exact) count what decode_ct + brief_of count (a filter forces that path)."""
    fast_counter = evc.EventCounter(Filter.from_params({}), True, top=5)
    slow_calls = []
    general = fast_counter._decoded
    fast_counter._decoded = lambda *args: slow_calls.append(args) or general(*args)
    for data in rec.datagrams():
        fast_counter.consume(data, len(data))
    assert slow_calls == []  # every recorded event has a fixed layout
    fast = fast_counter.result(ALL, 1.0)
    # an empty filter is exact by definition: force the decoded path with a predicate accepting everything
    slow_counter = evc.EventCounter(Filter.from_params({}), False, top=5)
    slow_counter.pred = lambda entry: True
    slow_counter.exact = False
    for data in rec.datagrams():
        slow_counter.consume(data, len(data))
    assert fast == slow_counter.result(ALL, 1.0)


def test_destroyed_flows_carry_durations_and_counters():
    destroy = counted().result(['destroy'], 1.0)['destroy']
    # accounting and timestamps were on: 6 UDP flows of one 10-byte datagram each (38 bytes on the wire over
    # IPv4, 58 over IPv6), and the inserted entry (counters 0)
    assert destroy['counters'] == {'flows': 7, 'packets': 6, 'bytes': 3 * 38 + 3 * 58, 'reply_packets': 0,
                                   'reply_bytes': 0, 'mean_bytes': round(288 / 7, 1)}
    assert destroy['duration']['flows'] == 7
    assert 0 < destroy['duration']['min'] <= destroy['duration']['mean'] <= destroy['duration']['max'] < 10


def test_constructed_durations():
    entry = {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 53}
    msgs = [rec.event(entry, 'destroy', rest=rec.counters_and_times(2, 100, 10 ** 9, 10 ** 9 + ns))
            for ns in (5 * 10 ** 8, 3 * 10 ** 9, 2 * 10 ** 10)]
    for exact in (True, False):
        counter = evc.EventCounter(Filter.from_params({}), exact)
        if not exact:
            counter.pred, counter.exact = (lambda e: True), False
        for msg in msgs:
            counter.consume(msg, len(msg))
        destroy = counter.result(['destroy'], 1.0)['destroy']
        assert destroy['duration'] == {'flows': 3, 'min': 0.5, 'max': 20.0, 'mean': round(23.5 / 3, 6),
                                       'histogram': {'under_1s': 1, 'under_10s': 1, 'under_1m': 1, 'under_10m': 0,
                                                     'longer': 0}}
        assert destroy['counters'] == {'flows': 3, 'packets': 6, 'bytes': 300, 'reply_packets': 0, 'reply_bytes': 0,
                                       'mean_bytes': 100.0}


@pytest.mark.parametrize('params', [
    {'proto': 'udp'}, {'family': 'ipv6'}, {'proto': 'tcp', 'dport': 8080}, {'zone': 7},
    {'src': '2001:db8::1'}, {'state': ['ESTABLISHED']}, {'proto': 'udp', 'family': 'ipv4'},
])
def test_filters_select_exactly_what_match_selects(params):
    flt = Filter.from_params(params)
    counter = counted(flt)
    expected = [0, 0, 0]
    for data in rec.datagrams():
        for mtype, mflags, _seq, start, end, _code in nw.iter_messages(data, len(data)):
            if mtype >> 8 != nw.NFNL_SUBSYS_CTNETLINK:
                continue
            if flt.match(decode_ct(data, start + 4, end, data[start])):
                expected[evc.event_type(mtype, mflags)] += 1
    assert [counter.count(kind) for kind in (evc.NEW, evc.UPDATE, evc.DESTROY)] == expected
    assert counter.received - counter.filtered_out == sum(expected)


def test_sample_keeps_decoded_events_and_counts_the_rest():
    counter = counted(sample=3)
    assert len(counter.sample) == 3
    assert [e['event'] for e in counter.sample] == ['new', 'new', 'new']
    assert counter.sample[0]['proto'] == 'udp' and counter.sample[0]['dport'] == 5301
    assert counter.received == 26


def test_expectation_events():
    counter = evc.ExpectCounter(sample=5)
    for data in rec.datagrams():
        counter.consume(data, len(data))
    result = counter.result(ALL, 1.0)
    assert result['new']['count'] == 2 and result['destroy']['count'] == 2 and result['update']['count'] == 0
    assert result['new']['by_helper'] == {'ftp': 2} and result['new']['by_proto'] == {'tcp': 2}
    assert counter.sample[0]['tuple']['dport'] == 50000 and counter.sample[0]['event'] == 'new'
    assert counter.other == 26  # the conntrack events on the same datagrams are not expectation events


def test_other_messages_and_truncated_datagrams_are_skipped():
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2}
    msg = rec.event(entry)
    done = nw.HDR.pack(20, nw.NLMSG_DONE, 0, 0, 0) + b'\0' * 4
    counter = evc.EventCounter(Filter.from_params({}), True)
    data = done + msg + msg[:30]
    counter.consume(data, len(data))
    assert counter.count(evc.NEW) == 1 and counter.other == 1


ADDRS = {'ipv4': st.sampled_from(['192.0.2.1', '198.51.100.7', '203.0.113.9']),
         'ipv6': st.sampled_from(['2001:db8::1', '2001:db8::2:1'])}


@st.composite
def events(draw):
    family = draw(st.sampled_from(['ipv4', 'ipv6']))
    proto = draw(st.sampled_from([6, 17, 132] + [1 if family == 'ipv4' else 58]))
    entry = {'family': family, 'protonum': proto, 'src': draw(ADDRS[family]), 'dst': draw(ADDRS[family])}
    if proto in (1, 58):
        entry.update(icmp_id=draw(st.integers(0, 65535)), icmp_type=8 if proto == 1 else 128, icmp_code=0)
    else:
        entry.update(sport=draw(st.integers(0, 65535)), dport=draw(st.integers(0, 65535)))
    return rec.event(entry, draw(st.sampled_from(ALL)), zone=draw(st.sampled_from([0, 0, 3])),
                     status=draw(st.sampled_from([8, 10, 14])))


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), min_size=1, max_size=20))
def test_fast_path_equals_the_general_decoder_on_generated_events(msgs):
    data = [bytes(m) for m in msgs]
    fast = evc.EventCounter(Filter.from_params({}), True)
    slow = evc.EventCounter(Filter.from_params({}), False)
    slow.pred, slow.exact = (lambda e: True), False
    for msg in data:
        fast.consume(msg, len(msg))
        slow.consume(msg, len(msg))
    assert fast.result(ALL, 1.0) == slow.result(ALL, 1.0)
