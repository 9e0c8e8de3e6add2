"""Netlink framing: attribute encoding, the datagram iterator on recorded and constructed bytes, errors."""
import errno
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw

import ctrecorded  # noqa: E402


@pytest.mark.parametrize('payload,padded', [(b'', 4), (b'\x01', 8), (b'\x01\x02\x03\x04', 8), (b'x' * 5, 12)])
def test_nla_padding(payload, padded):
    data = nw.nla(7, payload)
    assert len(data) == padded
    assert struct.unpack_from('=HH', data) == (4 + len(payload), 7)


def test_attribute_encoders():
    assert nw.nla_u8(1, 6) == struct.pack('=HHB3x', 5, 1, 6)
    assert nw.nla_be16(2, 0x1234) == struct.pack('=HH', 6, 2) + b'\x12\x34\0\0'
    assert nw.nla_be32(3, -1) == struct.pack('=HH', 8, 3) + b'\xff' * 4  # masked to 32 bits
    assert nw.nla_str(6, 'ftp') == struct.pack('=HH', 8, 6) + b'ftp\0'
    nested = nw.nla_nested(1, nw.nla_u8(1, 6), nw.nla_be16(2, 80))
    assert struct.unpack_from('=HH', nested) == (4 + 8 + 8, 1 | nw.NLA_F_NESTED)
    assert list(nw.iter_attrs(nested, 4, len(nested))) == [(1, 8, 9), (2, 16, 18)]


def test_string_readers():
    data = nw.nla(1, b'x') + nw.nla_str(6, 'ftp') + nw.nla(7, b'abc\0junk')
    assert nw.first_string(data, 0, len(data), 6) == 'ftp'
    assert nw.first_string(data, 0, len(data), 7) == 'abc'
    assert nw.first_string(data, 0, len(data), 9) is None
    assert nw.cstring(b'no terminator', 0, 13) == 'no terminator'


def test_nfnl_message():
    data = nw.nfnl_message(nw.NFNL_SUBSYS_CTNETLINK, nw.IPCTNL_MSG_CT_GET, nw.NLM_F_REQUEST | nw.NLM_F_DUMP, 77,
                           family=2, version=nw.NFNETLINK_V1, attrs=nw.nla_be32(8, 1))
    assert nw.HDR.unpack_from(data) == (len(data), 0x101, 0x301, 77, 0)
    assert nw.NFGEN.unpack_from(data, nw.NLMSG_HDRLEN) == (2, 1, 0)
    assert data[nw.NFNL_HDRLEN:] == nw.nla_be32(8, 1)


# --- the datagram iterator --------------------------------------------------------------------------

def error(seq, code, request=b'\0' * 16):
    body = nw.ERR.pack(-code) + request
    return nw.HDR.pack(16 + len(body), nw.NLMSG_ERROR, 0, seq, 0) + body


def done(seq):
    return nw.HDR.pack(20, nw.NLMSG_DONE, nw.NLM_F_MULTI, seq, 0) + b'\0' * 4


def test_iter_messages_walks_every_recorded_datagram_like_the_struct_walk():
    """On every recorded reply (dump, expect dump, statistics) the iterator sees what a plain struct walk sees."""
    for key in ('dump', 'expect', 'stats_cpu', 'stats'):
        walked = []
        for data in ctrecorded.datagrams(key):
            for mtype, flags, seq, start, end, code in nw.iter_messages(data, len(data)):
                walked.append((mtype, flags, seq, data[start - 16:end]))
                if mtype == nw.NLMSG_DONE:
                    assert code == 0
                elif mtype >= nw.NFNL_MSG_MIN:
                    assert code is None
        assert walked == ctrecorded.messages(ctrecorded.REC[key])


def test_iter_messages_payload_offsets_and_codes():
    entry = nw.nfnl_message(1, 0, nw.NLM_F_MULTI, 5, family=10, attrs=nw.nla_be32(3, 8))
    datagram = entry + error(4, 0) + error(5, errno.ENOENT) + done(5)
    got = list(nw.iter_messages(datagram, len(datagram)))
    assert got[0] == (0x100, nw.NLM_F_MULTI, 5, 16, len(entry), None)
    assert datagram[got[0][3]] == 10  # the nfgenmsg family
    assert [(m[0], m[2], m[5]) for m in got[1:]] == [(nw.NLMSG_ERROR, 4, 0), (nw.NLMSG_ERROR, 5, errno.ENOENT),
                                                     (nw.NLMSG_DONE, 5, 0)]


def test_iter_messages_stops_at_a_header_that_does_not_fit():
    good = done(1)
    assert len(list(nw.iter_messages(good + good, 2 * len(good)))) == 2
    # only n bytes count: a message cut by n is not yielded
    assert len(list(nw.iter_messages(good + good, 2 * len(good) - 1))) == 1
    # a length below the header size ends the walk (it could never advance)
    broken = nw.HDR.pack(8, nw.NLMSG_DONE, 0, 1, 0)
    assert list(nw.iter_messages(broken + good, len(broken + good))) == []
    assert list(nw.iter_messages(b'\0' * 10, 10)) == []


def test_ends_only_for_the_own_sequence_number():
    entry = nw.nfnl_message(1, 0, nw.NLM_F_MULTI, 9)
    assert not nw.ends(entry, len(entry), 9)
    assert not nw.ends(entry + done(8), len(entry) + 20, 9)
    assert nw.ends(entry + done(9), len(entry) + 20, 9)
    assert nw.ends(error(9, errno.EPERM), 36, 9)
    recorded = ctrecorded.datagrams('dump')
    seq = ctrecorded.REC['dump_seq']
    assert [nw.ends(d, len(d), seq) for d in recorded] == [False] * (len(recorded) - 1) + [True]


# --- errors -------------------------------------------------------------------------------------------

def test_netlink_error_text():
    err = nw.NetlinkError(errno.ENOENT, 'reading the entry')
    assert err.msg == 'reading the entry failed: no such entry (ENOENT)' and err.errno == errno.ENOENT
    assert 'EHOSTDOWN' in nw.NetlinkError(errno.EHOSTDOWN).msg


def test_receive_error():
    assert 'receive buffer overrun' in nw.receive_error(errno.ENOBUFS).msg
    assert nw.receive_error(errno.EINTR).msg.startswith('netlink receive failed: ')
