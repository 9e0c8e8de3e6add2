"""Unit tests of saving and restoring the saved form (``_ctrestore``) and of conntrack_entry's ``saved`` option,
against the fake ctnetlink of test_entrybatch (a table answering datagrams of many requests as the kernel does),
on the entries recorded from this kernel (NAT, labels, zones, accounting and timestamps among them)."""
import errno
import os
import socket
import sys

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctrestore as rs
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctsaved as sv
from ansible_collections.netfilter.conntrack.plugins.module_utils import _entrybatch as eb
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling test modules, also under ansible-test
from test_ctsaved import DUMPED, saved_messages, text_of  # noqa: E402  pylint: disable=wrong-import-position
# the fake kernel and its fixture (``kernel``: a fresh table per test)
from test_entrybatch import kernel  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

TEXT = text_of(saved_messages())


def parsed(text=TEXT):
    return rs.prepare(sv.parse(text))


def rows(table):
    # the fake kernel does not translate: a NAT entry's reply tuple is the real kernel's (integration tests)
    keys = ('family', 'proto', 'src', 'dst', 'sport', 'dport', 'zone', 'mark', 'labels')
    return sorted(tuple(str(entry.get(k)) for k in keys) for entry in table.values())


def recorded_rows():
    entries = [decode_ct(*item) for item in DUMPED]
    return rows(dict(enumerate(entries)))


def test_restore_creates_every_entry_then_changes_nothing(kernel):
    total = len(DUMPED)
    result = rs.restore(parsed())
    assert (result['changed'], result['created'], result['unchanged'], result['total']) == (True, total, 0, total)
    assert result['batches']['acks'] == result['batches']['datagrams'] >= 1
    assert len(kernel.table) == total
    assert rows(kernel.table) == recorded_rows()  # tuples, zones, marks, labels (sent in the update after)
    assert '# created %d, updated 0, deleted 0, unchanged 0' % total in result['diff']['after']
    assert [item['index'] for item in result['sample']] == list(range(min(total, eb.SAMPLE)))

    again = rs.restore(parsed())
    assert (again['changed'], again['created'], again['unchanged']) == (False, 0, total)
    assert len(kernel.table) == total


def test_the_nat_entries_are_created_with_their_translation(kernel):
    saved = parsed()
    nat = [i for i, m in enumerate(saved.messages) if m[4] & rs.IPS_NAT]
    assert nat and sorted(saved.nat) == nat
    for index in nat:
        assert b'' != saved.nat[index] != saved.attrs(index)  # CTA_NAT_SRC/CTA_NAT_DST, not the reply tuple alone


def test_check_mode_counts_and_sends_no_write(kernel):
    total = len(DUMPED)
    result = rs.restore(parsed(), check_mode=True)
    assert (result['changed'], result['created'], result['unchanged']) == (True, total, 0)
    assert kernel.table == {} and 'batches' not in result
    rs.restore(parsed())
    result = rs.restore(parsed(), check_mode=True)
    assert (result['changed'], result['created'], result['unchanged']) == (False, 0, total)


def test_check_mode_counts_a_tuple_given_twice_once(kernel):
    raw = saved_messages()
    first = raw[:sv.walk(raw)[0][1]]
    result = rs.restore(parsed(text_of(first + first)), check_mode=True)
    assert (result['created'], result['unchanged']) == (1, 1)
    result = rs.restore(parsed(text_of(first + first)))
    assert (result['created'], result['unchanged']) == (1, 1) and len(kernel.table) == 1


def test_a_refused_entry_fails_the_task_and_the_created_are_deleted_again(kernel):
    entries = [decode_ct(*item) for item in DUMPED]
    victim = next(i for i, e in enumerate(entries) if i > 0 and e.get('src'))
    kernel.refuse = {entries[victim]['src']: errno.EINVAL}
    with pytest.raises(ConntrackError) as info:
        rs.restore(parsed())
    exc = info.value
    assert exc.option == 'saved[%d]' % victim
    assert exc.msg.startswith('saved[%d]: restoring ' % victim) and 'deleted again' in exc.msg, exc.msg
    assert exc.details['undone'] is True
    assert [item['option'] for item in exc.details['failed_entries']] == [
        'saved[%d]' % i for i, e in enumerate(entries) if e.get('src') == entries[victim]['src']]
    assert kernel.table == {}


def test_an_entry_that_was_there_is_kept_when_the_task_fails(kernel):
    entries = [decode_ct(*item) for item in DUMPED]
    raw = saved_messages()
    messages = sv.walk(raw)
    rs.restore(parsed(text_of(raw[:messages[0][1]])))  # the first entry exists before the restore
    before = rows(kernel.table)
    kernel.refuse = {entries[-1]['src']: errno.ENOMEM}
    with pytest.raises(ConntrackError):
        rs.restore(parsed())
    assert rows(kernel.table) == before


def test_the_writes_go_hundreds_per_datagram_with_one_ack_each(kernel, monkeypatch):
    monkeypatch.setattr(eb, 'BATCH_BYTES', 512)
    result = rs.restore(parsed())
    assert result['batches']['datagrams'] > 2
    assert result['batches']['acks'] == result['batches']['datagrams']
    assert max(kernel.datagrams) < 512 + 400 and len(kernel.table) == len(DUMPED)


def test_an_empty_saved_table_changes_nothing(kernel):
    result = rs.restore(parsed(sv.encode(b'', 0)))
    assert (result['changed'], result['created'], result['total']) == (False, 0, 0)


def test_save_reads_the_table_into_the_saved_form_that_restores_it(kernel):
    from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection

    rs.restore(parsed())
    before = rows(kernel.table)
    with Connection() as conn:
        text, count = rs.save(conn, threaded=False)
    assert count == len(DUMPED) and sv.parse(text).count == count
    kernel.table = {}
    assert rs.restore(parsed(text))['created'] == count
    assert rows(kernel.table) == before


# --- conntrack_entry's validation of saved ----------------------------------------------------------------

class NoSocket(object):
    def __init__(self, *args):
        raise AssertionError('validation opened a socket')


@pytest.mark.parametrize('params, option, text', [
    (dict(saved=TEXT, proto='tcp'), 'proto', 'with saved, the entries are the saved ones'),
    (dict(saved=TEXT, mark=3), 'mark', 'give no entry option'),
    (dict(saved=TEXT, state='absent'), 'state', 'state absent: saved restores entries'),
    (dict(saved='NFCT-SAVED 1 x'), 'saved', 'does not start with'),
    (dict(saved=TEXT[:-10]), 'saved', 'saved '),
])
def test_validation_names_the_option_before_anything_is_opened(monkeypatch, params, option, text):
    monkeypatch.setattr(socket, 'socket', NoSocket)
    with pytest.raises(ConntrackError) as info:
        eb.validate_task(dict(params))
    assert info.value.option == option and text in info.value.msg, info.value.msg


def test_validate_task_returns_the_saved_table_ready_to_send(monkeypatch):
    monkeypatch.setattr(socket, 'socket', NoSocket)
    form, saved = eb.validate_task({'saved': TEXT, 'state': 'present'})
    assert form == 'saved' and saved.count == len(DUMPED) and saved.nat is not None


def test_a_restore_that_would_pass_the_table_limit_is_refused_before_anything_is_sent(kernel, monkeypatch):
    total = len(DUMPED)
    monkeypatch.setattr(rs.procfs, 'count', lambda: 10)
    monkeypatch.setattr(rs.procfs, 'maximum', lambda: 10 + total - 1)
    with pytest.raises(ConntrackError) as info:
        rs.restore(parsed())
    assert info.value.option == 'saved' and 'would pass nf_conntrack_max %d' % (10 + total - 1) in info.value.msg
    assert kernel.table == {} and len(kernel.datagrams) == 1  # the dump of the keys, no write


def test_a_restore_near_the_limit_goes_on_when_what_is_missing_fits(kernel, monkeypatch):
    total = len(DUMPED)
    raw = saved_messages()
    rs.restore(parsed(text_of(raw[:sv.walk(raw)[0][1]])))  # one entry is there
    monkeypatch.setattr(rs.procfs, 'count', lambda: 1)
    monkeypatch.setattr(rs.procfs, 'maximum', lambda: total)  # 1 + total passes it, 1 + (total - 1) does not
    result = rs.restore(parsed())
    assert (result['created'], result['unchanged']) == (total - 1, 1) and len(kernel.table) == total


def test_a_socket_that_fails_mid_restore_is_reported_with_where_it_stopped(kernel, monkeypatch):
    monkeypatch.setattr(eb, 'BATCH_BYTES', 512)
    sent = []

    def failing(self, data):
        if len(sent) == 2:
            raise OSError(errno.ENOBUFS, 'No buffer space available')
        sent.append(len(data))
        return original(self, data)

    original = kernel.sendall
    monkeypatch.setattr(kernel, 'sendall', failing)
    with pytest.raises(ConntrackError) as info:
        rs.restore(parsed())
    assert info.value.option == 'saved'
    assert info.value.msg.startswith('saved: the restore stopped after 2 datagrams') and 'run the task again' in \
        info.value.msg, info.value.msg


def test_a_socket_that_fails_on_the_labels_deletes_the_created_entries_again(kernel, monkeypatch):
    saved = parsed()
    assert any(m[3].labels is not None for m in saved.messages), 'the recorded table has an entry with labels'
    original = kernel.sendall
    calls = []

    def failing(self, data):
        calls.append(len(data))
        if len(calls) == 2:  # the creates went in one datagram; the labels' update is the second
            raise OSError(errno.ENOBUFS, 'No buffer space available')
        return original(self, data)

    monkeypatch.setattr(kernel, 'sendall', failing)
    with pytest.raises(ConntrackError) as info:
        rs.restore(saved)
    assert info.value.option == 'saved' and info.value.details['undone'] is True
    assert 'their labels failed' in info.value.msg and 'deleted again' in info.value.msg, info.value.msg
    assert kernel.table == {}


def test_check_mode_keys_of_the_saved_form_are_those_of_the_dump():
    saved = parsed()
    for index, (start, end, family, _layout, _status) in enumerate(saved.messages):
        assert saved.keys(index) == rs.keys_of(saved.raw, start + 20, end, family)
