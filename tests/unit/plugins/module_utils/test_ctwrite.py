"""Unit tests of the single-entry operations: the requests they send (to a recording connection), their errors."""
import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw

IDENT = {'family': 'ipv4', 'protonum': 6, 'direction': 'orig', 'zone': 3,
         'tuple': {'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2}}


class Recorder(object):
    """Stands in for a Connection: records each request; ``fail`` is the errno it answers with."""

    def __init__(self, fail=None):
        self.requests = []
        self.fail = fail

    def request(self, subsys, msg, flags, family=0, version=0, attrs=b'', action='request'):
        self.requests.append((subsys, msg, flags, family, version, attrs, action))
        if self.fail:
            raise nw.NetlinkError(self.fail, action)
        return []


def types(attrs):
    return [atype for atype, _p, _e in nw.iter_attrs(attrs, 0, len(attrs))]


def test_identity_attrs():
    attrs = ctw.identity_attrs(IDENT)
    assert types(attrs) == [vocab.CTA_TUPLE_ORIG, vocab.CTA_ZONE]
    assert ctw.identity_attrs(dict(IDENT, direction='reply', zone=0)) == codec.encode_tuple(
        vocab.CTA_TUPLE_REPLY, 'ipv4', dict(IDENT['tuple'], protonum=6))


def test_create_and_update_write_the_same_protoinfo():
    conn = Recorder()
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'state': 'ESTABLISHED', 'timeout': 5}
    ctw.create_entry(conn, entry)
    ctw.update_entry(conn, IDENT, {'timeout': 9}, state='ESTABLISHED', protonum=6)
    created, updated = conn.requests[0][5], conn.requests[1][5]
    info = codec.encode_protoinfo(6, 'ESTABLISHED', tcp_flags=codec.TCP_FLAGS_CREATED)
    assert info in created and info in updated
    # BE_LIBERAL | SACK_PERM in both directions, flags and mask alike (what conntrack -I and -U send)
    assert b'\x06\x00\x04\x00\x0a\x0a' in info and b'\x06\x00\x05\x00\x0a\x0a' in info
    assert conn.requests[0][2] == nw.NLM_F_REQUEST | nw.NLM_F_ACK | nw.NLM_F_CREATE | nw.NLM_F_EXCL
    assert conn.requests[1][2] == nw.NLM_F_REQUEST | nw.NLM_F_ACK


def test_an_update_without_a_state_leaves_the_window_tracking_alone():
    conn = Recorder()
    ctw.update_entry(conn, IDENT, {'mark': 1})
    assert codec.decode_tcp_flags(conn.requests[0][5], 0, len(conn.requests[0][5])) == (None, None)


def test_create_writes_nat():
    conn = Recorder()
    entry = {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2,
             'nat_dst': {'ip': '203.0.113.1', 'port': 53}}
    ctw.create_entry(conn, entry)
    assert conn.requests[0][5].endswith(codec.encode_nat(entry))


def test_update_masks():
    conn = Recorder()
    ctw.update_entry(conn, IDENT, {'mark': 1, 'labels': 6})
    attrs = conn.requests[0][5]
    assert types(attrs)[2:] == [vocab.CTA_MARK, vocab.CTA_MARK_MASK, vocab.CTA_LABELS, vocab.CTA_LABELS_MASK]
    assert attrs.endswith(codec.encode_labels(6, (1 << 128) - 1))


def test_delete_entry_and_expectation():
    conn = Recorder()
    assert ctw.delete_entry(conn, IDENT, 77) is True
    assert conn.requests[0][:2] == (nw.NFNL_SUBSYS_CTNETLINK, nw.IPCTNL_MSG_CT_DELETE)
    assert types(conn.requests[0][5]) == [vocab.CTA_TUPLE_ORIG, vocab.CTA_ZONE, vocab.CTA_ID]
    exp = {'family': 'ipv4', 'zone': 0, 'id': 5, 'tuple': {'src': '192.0.2.2', 'dst': '192.0.2.1', 'protonum': 6,
                                                           'sport': 0, 'dport': 50000}}
    assert ctw.delete_expect(conn, exp) is True
    assert conn.requests[1][:2] == (nw.NFNL_SUBSYS_CTNETLINK_EXP, nw.IPCTNL_MSG_EXP_DELETE)
    assert conn.requests[1][5] == codec.encode_expect_identity(exp)
    # gone already: not an error
    assert ctw.delete_entry(Recorder(errno.ENOENT), IDENT) is False
    assert ctw.delete_expect(Recorder(errno.ENOENT), exp) is False


def test_refusals_are_explained():
    try:
        ctw.delete_entry(Recorder(errno.EINVAL), IDENT)
    except nw.NetlinkError as exc:
        assert 'check the tuple' in exc.msg
    try:
        ctw.delete_expect(Recorder(errno.EINVAL), {'family': 'ipv4', 'tuple': {'protonum': 6}})
    except nw.NetlinkError as exc:
        assert exc.msg == 'deleting an expectation failed: the kernel rejected the request as invalid (EINVAL)'


def test_errors_are_plain():
    err = ctw._explain(nw.NetlinkError(errno.EEXIST), 'creating the entry')
    assert 'already exists' in err.msg and 'EEXIST' in err.msg and err.errno == errno.EEXIST
