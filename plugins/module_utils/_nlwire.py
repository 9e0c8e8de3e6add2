# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink framing: nlmsghdr/nfgenmsg/nlattr, attribute encoders, the one datagram iterator, errors.

Nothing here knows conntrack: the nfnetlink subsystem and message numbers are the wire's, the CTA_*
attributes and their meaning are ``_ctvocab`` and ``_ctcodec``. Requests are small and encoded with
``struct``; a received datagram is walked with ``iter_messages``, which every reader of replies uses (the
batch decoders of ``_ctlayout`` inline the same walk for speed, on the same structs and constants).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

# --- netlink ---------------------------------------------------------------------------------------
NETLINK_NETFILTER = 12
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO, NLM_F_DUMP_INTR = 1, 2, 4, 8, 16
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3fff
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

# --- nfnetlink -------------------------------------------------------------------------------------
NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_CTNETLINK_EXP = 2
NFNETLINK_V0 = 0
NFNETLINK_V1 = 1
# an nfnetlink message type is (subsystem << 8) | message: every type below this one is a netlink control
# message (NOOP, ERROR, DONE, OVERRUN)
NFNL_MSG_MIN = NFNL_SUBSYS_CTNETLINK << 8

IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
IPCTNL_MSG_CT_GET_CTRZERO = 3
IPCTNL_MSG_CT_GET_STATS_CPU = 4
IPCTNL_MSG_CT_GET_STATS = 5
IPCTNL_MSG_CT_GET_DYING = 6
IPCTNL_MSG_CT_GET_UNCONFIRMED = 7
IPCTNL_MSG_EXP_NEW = 0
IPCTNL_MSG_EXP_GET = 1
IPCTNL_MSG_EXP_DELETE = 2
IPCTNL_MSG_EXP_GET_STATS_CPU = 3

# --- structs ---------------------------------------------------------------------------------------
HDR = struct.Struct('=IHHII')       # nlmsghdr: length, type, flags, seq, pid
NFGEN = struct.Struct('=BBH')       # nfgenmsg: family, version, res_id (big endian, always 0 here)
NLA = struct.Struct('=HH')          # nlattr: length, type
BE16 = struct.Struct('>H')
BE32 = struct.Struct('>I')
BE64 = struct.Struct('>Q')
ERR = struct.Struct('=i')           # nlmsgerr.error: -errno, 0 for an ACK
NLMSG_HDRLEN = HDR.size             # 16: where a message's payload starts
NFNL_HDRLEN = HDR.size + NFGEN.size  # 20: where an nfnetlink message's attributes start
NLA_HDRLEN = NLA.size               # 4

ERRNO_TEXT = {
    errno.ENOENT: 'no such entry',
    errno.EEXIST: 'the entry already exists',
    errno.EBUSY: 'the kernel refused the entry (an entry must be CONFIRMED to be created)',
    errno.EINVAL: 'the kernel rejected the request as invalid',
    errno.EOPNOTSUPP: 'this kernel does not support the request',
    errno.EPERM: 'operation not permitted (needs CAP_NET_ADMIN: run as root / become: true)',
    errno.ENOMEM: 'the kernel is out of memory for the request',
    errno.ENOSPC: 'the conntrack table is full',
    errno.EAFNOSUPPORT: 'address family not supported by the kernel',
}


class NetlinkError(ConntrackError):
    """The kernel answered a request with an error."""

    def __init__(self, code, action='request'):
        text = ERRNO_TEXT.get(code) or os.strerror(code)
        super(NetlinkError, self).__init__('%s failed: %s (%s)' % (action, text, errno.errorcode.get(code, code)))
        self.errno = code


def receive_error(code):
    """The ConntrackError for a failed recv() on a netlink socket (errno ``code``)."""
    if code == errno.ENOBUFS:
        return ConntrackError('the kernel dropped netlink messages (receive buffer overrun): '
                              'the table changed too fast to be read completely; try again')
    return ConntrackError('netlink receive failed: %s' % os.strerror(code))


# --- encoding --------------------------------------------------------------------------------------

def nla(atype, payload):
    """One netlink attribute, padded to 4 bytes."""
    length = NLA_HDRLEN + len(payload)
    return NLA.pack(length, atype) + payload + b'\0' * ((4 - length % 4) % 4)


def nla_nested(atype, *children):
    return nla(atype | NLA_F_NESTED, b''.join(children))


def nla_u8(atype, value):
    return nla(atype, struct.pack('B', value))


def nla_be16(atype, value):
    return nla(atype, BE16.pack(value))


def nla_be32(atype, value):
    return nla(atype, BE32.pack(value & 0xffffffff))


def nla_str(atype, value):
    return nla(atype, value.encode() + b'\0')


def nfnl_message(subsys, msg, flags, seq, family=0, version=NFNETLINK_V0, attrs=b''):
    """One nfnetlink message: nlmsghdr, nfgenmsg, then the attributes ``attrs`` (bytes)."""
    payload = NFGEN.pack(family, version, 0) + attrs
    return HDR.pack(NLMSG_HDRLEN + len(payload), (subsys << 8) | msg, flags, seq, 0) + payload


# --- decoding --------------------------------------------------------------------------------------
_unpack_hdr = HDR.unpack_from
_unpack_nla = NLA.unpack_from
_unpack_err = ERR.unpack_from


def iter_messages(buf, n):
    """Yield ``(type, flags, seq, payload offset, end, code)`` of every message of the datagram ``buf[:n]``.

    The payload is ``buf[payload offset:end]`` (for an nfnetlink message it starts with the nfgenmsg: the
    attributes start at ``payload offset + NFGEN.size``). ``code`` says what a control message means: 0 for
    NLMSG_DONE and for an ACK (an NLMSG_ERROR with errno 0), the errno of any other NLMSG_ERROR, None for
    every other message. The walk ends at the first header that does not fit the datagram.
    """
    off = 0
    while off + NLMSG_HDRLEN <= n:
        mlen, mtype, mflags, mseq, _pid = _unpack_hdr(buf, off)
        if mlen < NLMSG_HDRLEN or off + mlen > n:
            return
        code = None
        if mtype == NLMSG_DONE:
            code = 0
        elif mtype == NLMSG_ERROR:
            code = -_unpack_err(buf, off + NLMSG_HDRLEN)[0]
        yield mtype, mflags, mseq, off + NLMSG_HDRLEN, off + mlen, code
        off += (mlen + 3) & ~3


def ends(buf, n, seq):
    """True when the datagram ``buf[:n]`` holds the end of the answer to request ``seq`` (DONE, ACK, error)."""
    for _mtype, _flags, mseq, _start, _end, code in iter_messages(buf, n):
        if mseq == seq and code is not None:
            return True
    return False


def iter_attrs(buf, off, end):
    """Yield (type, payload offset, payload end) of each attribute in buf[off:end].

    The cold paths (counters, NAT, strings, statistics, expectations) use it; the per-entry hot loops of
    the conntrack decoders walk inline, which is measurably faster.
    """
    while off + NLA_HDRLEN <= end:
        alen, atype = _unpack_nla(buf, off)
        if alen < NLA_HDRLEN:
            return
        yield atype & NLA_TYPE_MASK, off + NLA_HDRLEN, off + alen
        off += (alen + 3) & ~3


def cstring(buf, p, pend):
    """The NUL-terminated string attribute payload buf[p:pend] as text."""
    return bytes(buf[p:pend]).split(b'\0', 1)[0].decode('ascii', 'replace')


def first_string(buf, off, end, want):
    """The string of the first attribute of type ``want`` in buf[off:end], or None."""
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype == want:
            return cstring(buf, p, pend)
    return None


def hdr_be(length, atype):
    """A nlattr header as the big-endian u32 that fixed-layout structs read it as."""
    return int.from_bytes(NLA.pack(length, atype), 'big')
