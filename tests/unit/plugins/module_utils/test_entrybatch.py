"""Unit tests of conntrack_entry's ``entries`` (validation, planning, batching, races, undo) against a fake
ctnetlink that keeps a table and answers datagrams of many requests the way the kernel does: in order, an
error (with the request's sequence number) for a refused request, an ACK only where NLM_F_ACK asks."""
import errno
import socket
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _entrybatch as eb
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct, encode_ct_attrs
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import EntrySpec

from ctrecorded import ENTRIES  # noqa: E402

TCP = dict(proto='tcp', src='192.0.2.1', dst='192.0.2.2', sport=40000, dport=443, state='ESTABLISHED',
           status=['SEEN_REPLY', 'ASSURED'], timeout=600)


def tcp(i, **extra):
    item = dict(TCP, sport=40000 + i)
    item.update(extra)
    return item


class FakeKernel(object):
    """A socket.socket stand-in holding a conntrack table (one per test: ``FakeKernel.table``)."""

    table = {}
    refuse = {}      # src address -> errno for creates
    on_create = None  # called before each create (a race: insert an entry meanwhile)
    datagrams = []

    def __init__(self, *args):
        self.queue = []

    def bind(self, address):
        pass

    def setsockopt(self, *args):
        pass

    def close(self):
        pass

    @staticmethod
    def key(entry, prefix=''):
        return eb.tuple_key(entry['family'], entry.get('protonum'), entry.get('zone'), entry, prefix)

    def find(self, entry):
        prefix = 'reply_' if entry.get('src') is None else ''
        want = self.key(entry, prefix)
        for stored in FakeKernel.table.values():
            if self.key(stored) == want or self.key(stored, 'reply_') == want:
                return stored
        return None

    def answer(self, mtype, flags, seq, code, entry=None):
        if entry is not None:
            attrs = encode_ct_attrs(entry) + nw.nla_be32(vocab.CTA_ID, entry['id'])
            self.queue.append(nw.nfnl_message(1, nw.IPCTNL_MSG_CT_NEW, 0, seq, vocab.af_of(entry['family']), attrs=attrs))
        if code or flags & nw.NLM_F_ACK:
            self.queue.append(struct.pack('=IHHIIi', 36, nw.NLMSG_ERROR, 0, seq, 0, -code) + b'\0' * 16)

    def sendall(self, data):
        FakeKernel.datagrams.append(len(data))
        for mtype, flags, seq, start, end, _code in list(nw.iter_messages(data, len(data))):
            msg = mtype & 0xff
            family = data[start]
            entry = decode_ct(data, start + 4, end, family)
            if mtype == (1 << 8) | nw.IPCTNL_MSG_CT_GET_STATS:
                self.queue.append(nw.nfnl_message(1, nw.IPCTNL_MSG_CT_GET_STATS, 0, seq, 0, attrs=nw.nla_be32(
                    vocab.CTA_STATS_GLOBAL_ENTRIES, len(FakeKernel.table))))
                continue
            if msg == nw.IPCTNL_MSG_CT_GET and flags & nw.NLM_F_DUMP == nw.NLM_F_DUMP:
                for stored in FakeKernel.table.values():
                    self.answer(mtype, 0, seq, 0, stored)
                self.queue.append(struct.pack('=IHHIIi', 20, nw.NLMSG_DONE, nw.NLM_F_MULTI, seq, 0, 0))
                continue
            current = self.find(entry)
            code = 0
            reply = None
            if msg == nw.IPCTNL_MSG_CT_GET:
                reply = current
                code = 0 if current else errno.ENOENT
            elif msg == nw.IPCTNL_MSG_CT_DELETE:
                if current is None or entry.get('id') not in (None, current['id']):
                    code = errno.ENOENT
                else:
                    del FakeKernel.table[current['id']]
            elif flags & nw.NLM_F_CREATE:
                if FakeKernel.on_create:
                    FakeKernel.on_create(entry)
                    current = self.find(entry)
                if current is not None:
                    code = errno.EEXIST
                elif entry['src'] in FakeKernel.refuse:
                    code = FakeKernel.refuse[entry['src']]
                else:
                    entry['id'] = len(FakeKernel.datagrams) * 1000 + seq % 1000
                    entry.setdefault('mark', 0)
                    entry['status'] = [name for name in entry['status'] if name != 'CONFIRMED'] + ['CONFIRMED']
                    FakeKernel.table[entry['id']] = entry
            elif current is None:
                code = errno.ENOENT
            else:
                for key in ('mark', 'timeout', 'state', 'labels'):
                    if key in entry:
                        current[key] = entry[key]
            self.answer(mtype, flags, seq, code, reply)

    send = sendall

    def recv_into(self, buf, size=0):
        data = self.queue.pop(0)
        buf[:len(data)] = data
        return len(data)


@pytest.fixture
def kernel(monkeypatch):
    monkeypatch.setattr(socket, 'socket', FakeKernel)
    FakeKernel.table = {}
    FakeKernel.refuse = {}
    FakeKernel.on_create = None
    FakeKernel.datagrams = []
    return FakeKernel


def specs_of(items, **params):
    params['entries'] = items
    return eb.validate_entries(params)


# --- validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('index, item, option, text', [
    (3, dict(TCP, dport=70000), 'entries[3].dport', 'entries[3].dport 70000 is out of range'),
    (1, dict((k, v) for k, v in TCP.items() if k != 'proto'), 'entries[1].proto', 'proto is required'),
    (0, dict(TCP, state='BOGUS'), 'entries[0].state', 'is not a tcp state'),
    (2, dict(TCP, proto='udp', state='ESTABLISHED'), 'entries[2].state', 'has no connection state'),
    (0, dict(TCP, state='ESTABLISHED', tcp_state='TIME_WAIT'), 'entries[0].state', 'disagree'),
    (1, dict(TCP, src='192.0.2.300'), 'entries[1].src', 'not an IPv4 or IPv6 address'),
    (0, dict(TCP, timeout=-1), 'entries[0].timeout', 'out of range'),
])
def test_item_errors_name_the_item_and_option(index, item, option, text):
    items = [tcp(i) for i in range(5)]
    items[index] = item
    with pytest.raises(ConntrackError) as info:
        specs_of(items)
    assert info.value.option == option and text in info.value.msg and 'entries[%d]' % index in info.value.msg


def test_duplicates_and_task_level_options_are_refused():
    with pytest.raises(ConntrackError, match=r'entries\[2\] names the same entry as entries\[0\]'):
        specs_of([tcp(0), tcp(1), tcp(0)])
    with pytest.raises(ConntrackError, match='with entries, give the entry options in each item') as info:
        specs_of([tcp(0)], mark=5)
    assert info.value.option == 'mark'
    assert specs_of([tcp(0)], zone=0, timeout_policy='on_create')  # the defaults are no option given


def test_item_state_is_presence_or_the_protocol_state():
    present, absent, listed = specs_of([tcp(0, state='present'), tcp(1, state='absent'), tcp(2)], state='absent')
    got = (present.state, absent.state, listed.state, listed.tcp_state)
    assert got == ('present', 'absent', 'absent', 'ESTABLISHED')
    assert specs_of([tcp(0, state='listen')])[0].tcp_state == 'SYN_SENT2'
    # a listing (TCP items carry the protocol state) with the task's state absent is deleted whole
    assert [s.state for s in specs_of([tcp(0), tcp(1, proto='udp', state=None)], state='absent')] == ['absent'] * 2


def test_recorded_entries_are_items_as_they_are():
    """Every entry of the recorded dump (TCP, UDP, ICMP, ICMPv6, SCTP, a DNATed flow, zone, mark, labels, a
    helper, counters, timestamps) validates unchanged, and would be created as it was listed."""
    specs = eb.validate_entries({'entries': [dict(e) for e in ENTRIES]})
    assert len(specs) == len(ENTRIES)
    for entry, spec in zip(ENTRIES, specs):
        made = spec.predicted()
        for key in ('family', 'proto', 'src', 'dst', 'sport', 'dport', 'reply_src', 'reply_dst', 'reply_sport',
                    'reply_dport', 'icmp_type', 'icmp_code', 'icmp_id', 'reply_icmp_type', 'reply_icmp_code',
                    'reply_icmp_id', 'zone', 'mark', 'state', 'labels'):
            assert made.get(key) == entry.get(key), (key, entry, made)
        assert set(made['status']) <= set(entry['status'])
        nat = set(entry['status']) & {'SRC_NAT', 'DST_NAT'}
        assert nat <= set(made['status'])
        if nat:
            assert spec.nat and not spec.reply  # the kernel computes the reply tuple from the translation


# --- planning and writing -----------------------------------------------------------------------------

def test_create_then_nothing_to_do_with_one_ack_per_datagram(kernel, monkeypatch):
    monkeypatch.setattr(eb, 'BATCH_BYTES', 2048)
    items = [tcp(i) for i in range(60)]
    result = eb.ensure_entries(specs_of(items))
    assert (result['changed'], result['created'], result['unchanged'], result['total']) == (True, 60, 0, 60)
    assert len(kernel.table) == 60
    batches = result['batches']
    assert batches['datagrams'] > 1 and batches['acks'] == batches['datagrams']
    assert all(size <= 2048 + 200 for size in kernel.datagrams)
    again = eb.ensure_entries(specs_of(items), use_dump=False)  # read with batched GETs this time
    assert (again['changed'], again['created'], again['unchanged']) == (False, 0, 60)
    assert again['batches'] == {'datagrams': 0, 'acks': 0}
    assert '# created 0, updated 0, deleted 0, unchanged 60' in again['diff']['after']


def test_check_mode_counts_and_writes_nothing(kernel):
    eb.ensure_entries(specs_of([tcp(0), tcp(1)]))
    items = [tcp(0, mark=7), tcp(1, state='absent'), tcp(2)]
    result = eb.ensure_entries(specs_of(items), check_mode=True)
    assert (result['created'], result['updated'], result['deleted'], result['unchanged']) == (1, 1, 1, 0)
    assert 'batches' not in result and len(kernel.table) == 2
    assert [(s['index'], s['action']) for s in result['sample']] == [(0, 'updated'), (1, 'deleted'), (2, 'created')]
    result = eb.ensure_entries(specs_of(items))
    assert (result['created'], result['updated'], result['deleted']) == (1, 1, 1)
    assert sorted(e['sport'] for e in kernel.table.values()) == [40000, 40002]
    assert [e['mark'] for e in kernel.table.values() if e['sport'] == 40000] == [7]
    assert result['sample'][0] == {'index': 0, 'action': 'updated', 'changes': ['mark']}


def test_a_missing_timeout_fails_before_anything_is_sent(kernel):
    items = [tcp(0), dict((k, v) for k, v in tcp(1).items() if k != 'timeout')]
    with pytest.raises(ConntrackError) as info:
        eb.ensure_entries(specs_of(items))
    assert info.value.option == 'entries[1].timeout' and 'nothing was changed' in info.value.msg
    assert info.value.details['failed_entries'][0]['option'] == 'entries[1].timeout'
    assert kernel.table == {} and len(kernel.datagrams) == 2  # the count and the dump: nothing written


def test_a_refusal_mid_batch_undoes_the_task(kernel):
    eb.ensure_entries(specs_of([tcp(0)]))
    before = dict((k, dict(v)) for k, v in kernel.table.items())
    kernel.refuse = {'192.0.2.9': errno.EINVAL}
    items = [tcp(0, mark=3), tcp(1), tcp(2), dict(tcp(3), src='192.0.2.9'), tcp(4)]
    with pytest.raises(ConntrackError) as info:
        eb.ensure_entries(specs_of(items))
    assert info.value.option == 'entries[3]' and 'entries[3]' in info.value.msg
    assert 'rejected the entry as invalid' in info.value.msg and 'was undone' in info.value.msg
    assert info.value.details['undone'] is True
    assert [e['sport'] for e in kernel.table.values()] == [40000]  # the creates undone
    assert list(kernel.table.values())[0]['mark'] == list(before.values())[0]['mark']  # the update undone


def test_an_entry_that_appears_meanwhile_is_no_error(kernel):
    racer = dict(family='ipv4', protonum=6, proto='tcp', src='192.0.2.1', dst='192.0.2.2', sport=40001, dport=443,
                 reply_src='192.0.2.2', reply_dst='192.0.2.1', reply_sport=443, reply_dport=40001, zone=0, mark=0,
                 status=['SEEN_REPLY', 'CONFIRMED'], state='ESTABLISHED', timeout=100, id=1)

    def race(entry):
        if entry['sport'] == 40001 and 1 not in kernel.table:
            kernel.table[1] = dict(racer)
    kernel.on_create = race
    result = eb.ensure_entries(specs_of([tcp(0), tcp(1, mark=9), tcp(2)]))
    assert (result['created'], result['updated'], result['unchanged']) == (2, 1, 0)
    assert kernel.table[1]['mark'] == 9 and len(kernel.table) == 3


def test_deleting_what_is_gone_is_no_change(kernel):
    eb.ensure_entries(specs_of([tcp(0), tcp(1)]))
    result = eb.ensure_entries(specs_of([tcp(0), tcp(1), tcp(2)], state='absent'))
    assert (result['deleted'], result['unchanged'], result['changed']) == (2, 1, True)
    assert kernel.table == {}


def test_the_module_form_chooses_single_or_entries():
    form, specs = eb.validate_task({'entries': [tcp(0)], 'state': 'present'})
    assert form == 'entries' and isinstance(specs[0], EntrySpec)
    form, spec = eb.validate_task(dict(TCP, tcp_state='ESTABLISHED', state='present'))
    assert form == 'entry' and spec.tcp_state == 'ESTABLISHED'
