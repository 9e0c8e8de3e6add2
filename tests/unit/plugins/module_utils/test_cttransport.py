"""The transport on recorded datagrams: the Connection's requests and dumps, and the receivers.

A fake socket (tests/unit/fixtures/ctrecorded.py) answers each request with the datagrams recorded from the
kernel, so dumps, statistics and errors run through the real Connection, the thread receiver and the
forked receiver process (with and without shared decoding).
"""
import json
import os
import signal
import socket
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctlayout as layout
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

from ctrecorded import ENTRIES, REC, FakeNetlinkSocket  # noqa: E402


@pytest.fixture
def fake_socket(monkeypatch):
    FakeNetlinkSocket.sent = []
    monkeypatch.setattr(transport.socket, 'socket', FakeNetlinkSocket)
    return FakeNetlinkSocket


def test_dump_streams_every_entry(fake_socket):
    with transport.Connection() as conn:
        got = list(conn.dump())
    assert got == ENTRIES
    request = fake_socket.sent[0]
    _len, mtype, flags, _seq, _pid = struct.unpack_from('=IHHII', request)
    assert mtype == (nw.NFNL_SUBSYS_CTNETLINK << 8) | nw.IPCTNL_MSG_CT_GET
    assert flags == nw.NLM_F_REQUEST | nw.NLM_F_DUMP
    assert request[16] == 0  # AF_UNSPEC: both families


def test_threaded_dump_streams_every_entry(fake_socket):
    with transport.Connection() as conn:
        assert list(conn.dump(threaded=True)) == ENTRIES
    with transport.Connection() as conn:
        texts = [t for items in conn.dump_batches(batch=layout.batch_json, threaded=True) for t in items]
    assert [json.loads(text) for text in texts] == ENTRIES


@pytest.mark.parametrize('batch', ['batch_json', 'batch_brief', 'dicts'])
def test_shared_decoding_gives_the_same_entries(fake_socket, batch):
    """With ``share`` the receiver process decodes every other datagram: the entries are the same."""
    batch = layout.batch_dict if batch == 'dicts' else getattr(layout, batch)

    def flat(batches):
        out = []
        for items in batches:
            if isinstance(items, transport.Joined):
                texts = [json.dumps(e) for e in json.loads('[%s]' % items[0])]
                assert len(texts) == items.entries
                out.extend(texts)
            else:
                out.extend(items)
        return out

    with transport.Connection() as conn:
        alone = flat(conn.dump_batches(batch=batch))
    with transport.Connection() as conn:
        shared = flat(conn.dump_batches(batch=batch, threaded=True, share=True))
    assert shared == alone and len(alone) == len(ENTRIES)


def test_threaded_dump_reports_a_receive_error(monkeypatch):
    class Overrun(FakeNetlinkSocket):
        def recv_into(self, buf, size=0):
            raise OSError(105, 'No buffer space available')

    monkeypatch.setattr(transport.socket, 'socket', Overrun)
    with transport.Connection() as conn:
        with pytest.raises(ConntrackError) as exc:
            list(conn.dump(threaded=True))
    assert 'receive buffer overrun' in exc.value.msg


def test_dump_expect(fake_socket):
    with transport.Connection() as conn:
        got = list(conn.dump_expect())
    assert len(got) == 1
    exp = got[0]
    exp.pop('id')
    assert exp == {
        'family': 'ipv4', 'helper': 'ftp', 'timeout': 299, 'flags': [], 'class': 0,
        'tuple': {'src': '192.0.2.1', 'dst': '192.0.2.1', 'sport': 0, 'dport': 50000, 'proto': 'tcp',
                  'protonum': 6},
        'mask': {'src': '255.255.255.255', 'dst': '255.255.255.255', 'sport': 0, 'dport': 65535},
        'master': {'src': '192.0.2.1', 'dst': '192.0.2.1', 'sport': 48372, 'dport': 21, 'proto': 'tcp',
                   'protonum': 6},
        'zone': 0,
    }
    # the same expectation as conntrack -L expect shows it
    line = REC['conntrack_expect'].split()
    assert line[0] == '299' and 'dport=50000' in line and 'helper=ftp' in line
    assert 'master-src=192.0.2.1' in line and 'dport=21' in line


def test_stats(fake_socket):
    with transport.Connection() as conn:
        per_cpu = conn.stats_cpu()
        totals = conn.stats_global()
    assert [row['cpu'] for row in per_cpu] == [0, 1]
    assert per_cpu[1]['insert'] == 4
    assert set(per_cpu[0]) == set(vocab.STATS_KEYS) | {'cpu'}
    assert totals == {'count': 9, 'max': 262144}
    # conntrack -S, recorded at the same moment, agrees
    for cpu, line in enumerate(REC['conntrack_stats'].splitlines()):
        values = dict(token.split('=') for token in line.split() if '=' in token)
        assert int(values['cpu']) == cpu
        for key in vocab.STATS_KEYS:
            assert per_cpu[cpu][key] == int(values[key]), key


def test_dump_error_is_a_conntrack_error(monkeypatch):
    """An NLMSG_ERROR answer to a dump becomes a ConntrackError naming what failed."""
    class Refusing(FakeNetlinkSocket):
        def sendall(self, data):
            seq = struct.unpack_from('=IHHII', data)[3]
            err = struct.pack('=i', -95) + data[:16]
            self.queue.append(struct.pack('=IHHII', 16 + len(err), nw.NLMSG_ERROR, 0, seq, 0) + err)

    monkeypatch.setattr(transport.socket, 'socket', Refusing)
    with transport.Connection() as conn:
        with pytest.raises(ConntrackError) as exc:
            list(conn.dump(socket.AF_INET, nw.nla_be32(vocab.CTA_MARK, 1)))
    assert 'this kernel cannot filter conntrack dumps' in exc.value.msg
    with transport.Connection() as conn:
        with pytest.raises(ConntrackError) as exc:
            list(conn.dump())
    assert exc.value.msg.startswith('listing the conntrack table failed: this kernel does not support')


def test_no_fork_while_another_thread_runs(fake_socket):
    """With another thread alive the dump is received by a thread, not a forked process."""
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with transport.Connection() as conn:
            receiver = transport._receiver(conn, 1)
            try:
                assert isinstance(receiver, transport._Receiver)
            finally:
                receiver.stop()
    finally:
        stop.set()
        other.join()
    with transport.Connection() as conn:
        assert list(conn.dump(threaded=True)) == ENTRIES


def test_dump_with_a_decoder(fake_socket):
    with transport.Connection() as conn:
        assert list(conn.dump(decode=codec.decode_ct)) == ENTRIES
    with transport.Connection() as conn:
        assert list(conn.dump(decode=lambda buf, off, end, family: family)) == [
            socket.AF_INET6 if e['family'] == 'ipv6' else socket.AF_INET for e in ENTRIES]


def test_request_returns_the_replies_and_names_the_action(fake_socket):
    with transport.Connection() as conn:
        replies = conn.request(nw.NFNL_SUBSYS_CTNETLINK, nw.IPCTNL_MSG_CT_GET_STATS, nw.NLM_F_REQUEST)
    assert [mtype for mtype, _f, _p in replies] == [(1 << 8) | nw.IPCTNL_MSG_CT_GET_STATS]


def _in_the_child(parent, action):
    """A batch decoder that runs ``action`` when the receiver process (not this one) calls it."""
    def batch(buf, n, seq, out):
        if os.getpid() != parent:
            action()
        return layout.batch_json(buf, n, seq, out)
    batch.texts = True
    return batch


def test_a_failing_receiver_process_says_why(fake_socket):
    """An exception in the receiver process reaches the parent with its text, not as a bare 'ended'."""
    def boom():
        raise ValueError('decoder bug')

    with transport.Connection() as conn:
        with pytest.raises(ConntrackError) as exc:
            list(conn.dump_batches(batch=_in_the_child(os.getpid(), boom), threaded=True, share=True))
    assert exc.value.msg.startswith('the netlink receiver process failed: ValueError: decoder bug (at '), exc.value.msg
    assert 'in boom)' in exc.value.msg


def test_a_killed_receiver_process_says_how_it_ended(fake_socket):
    with transport.Connection() as conn:
        with pytest.raises(ConntrackError) as exc:
            list(conn.dump_batches(batch=_in_the_child(os.getpid(), lambda: os.kill(os.getpid(), signal.SIGKILL)),
                                   threaded=True, share=True))
    assert exc.value.msg == 'the netlink receiver process ended before the dump did (killed by signal %d)' % (
        signal.SIGKILL)
