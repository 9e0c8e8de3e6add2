# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctnetlink: the conntrack netlink protocol, with a lean codec for bulk work.

Requests are small and encoded here with ``struct``; replies are streamed, a
datagram at a time, so a table of 10^5-10^6 entries can be listed, summarised or
filtered without holding it. ``decode_ct`` turns one conntrack message into one
flat dict (the general decoder, and the reference); the batch decoders
(``batch_json``, ``batch_brief``) make the JSON text of a listing, or the few
values a summary counts, straight from the bytes of the common layouts, and a
receiver process takes the kernel's side of a dump (and a share of the
decoding) to the other CPU. pyroute2 is the library of record for the protocol:
the tests check this codec against pyroute2's message classes on the same kernel
data, and pyroute2's import (~0.3 s, ~30 MB) is kept off the hot paths.

Entry dicts use the names of the filter options (``src``, ``dst``, ``sport``,
``reply_src``, ...), so what a user filters on and what they read back match.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import marshal
import os
import socket
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

# --- netlink --------------------------------------------------------------------------------
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

NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_CTNETLINK_EXP = 2
NFNETLINK_V0 = 0
NFNETLINK_V1 = 1

IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
IPCTNL_MSG_CT_GET_CTRZERO = 3
IPCTNL_MSG_CT_GET_STATS_CPU = 4
IPCTNL_MSG_CT_GET_STATS = 5
IPCTNL_MSG_EXP_NEW = 0
IPCTNL_MSG_EXP_GET = 1
IPCTNL_MSG_EXP_DELETE = 2
IPCTNL_MSG_EXP_GET_STATS_CPU = 3

# CTA_* (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_HELP = 1, 2, 3, 4, 5
CTA_NAT_SRC, CTA_TIMEOUT, CTA_MARK, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY = 6, 7, 8, 9, 10
CTA_USE, CTA_ID, CTA_NAT_DST, CTA_TUPLE_MASTER, CTA_SEQ_ADJ_ORIG, CTA_SEQ_ADJ_REPLY = 11, 12, 13, 14, 15, 16
CTA_SECMARK, CTA_ZONE, CTA_SECCTX, CTA_TIMESTAMP, CTA_MARK_MASK, CTA_LABELS = 17, 18, 19, 20, 21, 22
CTA_LABELS_MASK, CTA_SYNPROXY, CTA_FILTER, CTA_STATUS_MASK = 23, 24, 25, 26
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_TUPLE_ZONE = 1, 2, 3
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE = 7, 8, 9
CTA_PROTOINFO_TCP, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_SCTP = 1, 2, 3
CTA_PROTOINFO_TCP_STATE, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, CTA_PROTOINFO_TCP_WSCALE_REPLY = 1, 2, 3
CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, CTA_PROTOINFO_TCP_FLAGS_REPLY = 4, 5
CTA_PROTOINFO_DCCP_STATE = 1
CTA_PROTOINFO_SCTP_STATE = 1
CTA_HELP_NAME = 1
CTA_COUNTERS_PACKETS, CTA_COUNTERS_BYTES, CTA_COUNTERS32_PACKETS, CTA_COUNTERS32_BYTES = 1, 2, 3, 4
CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP = 1, 2
CTA_NAT_V4_MINIP, CTA_NAT_V4_MAXIP, CTA_NAT_PROTO, CTA_NAT_V6_MINIP, CTA_NAT_V6_MAXIP = 1, 2, 3, 4, 5
CTA_PROTONAT_PORT_MIN, CTA_PROTONAT_PORT_MAX = 1, 2
CTA_SECCTX_NAME = 1
CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS = 1, 2
# CTA_FILTER_FLAG(x): which tuple fields a kernel-side filter compares
FILTER_IP_SRC, FILTER_IP_DST, FILTER_TUPLE_ZONE, FILTER_PROTO_NUM = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FILTER_PROTO_SRC_PORT, FILTER_PROTO_DST_PORT = 1 << 4, 1 << 5
FILTER_ICMP_TYPE, FILTER_ICMP_CODE, FILTER_ICMP_ID = 1 << 6, 1 << 7, 1 << 8
FILTER_ICMPV6_TYPE, FILTER_ICMPV6_CODE, FILTER_ICMPV6_ID = 1 << 9, 1 << 10, 1 << 11

CTA_EXPECT_MASTER, CTA_EXPECT_TUPLE, CTA_EXPECT_MASK, CTA_EXPECT_TIMEOUT = 1, 2, 3, 4
CTA_EXPECT_ID, CTA_EXPECT_HELP_NAME, CTA_EXPECT_ZONE, CTA_EXPECT_FLAGS = 5, 6, 7, 8
CTA_EXPECT_CLASS, CTA_EXPECT_NAT, CTA_EXPECT_FN = 9, 10, 11

CTA_STATS_NAMES = {
    2: 'found', 4: 'invalid', 8: 'insert', 9: 'insert_failed', 10: 'drop', 11: 'early_drop',
    12: 'error', 13: 'search_restart', 14: 'clash_resolve', 15: 'chaintoolong',
}
STATS_KEYS = ('found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error',
              'search_restart', 'clash_resolve', 'chaintoolong')
CTA_STATS_GLOBAL_ENTRIES, CTA_STATS_GLOBAL_MAX_ENTRIES = 1, 2
CTA_STATS_EXP_NAMES = {1: 'new', 2: 'create', 3: 'delete'}

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
FAMILY_NAMES = {AF_INET: 'ipv4', AF_INET6: 'ipv6'}

PROTO_NAMES = {1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 58: 'icmpv6',
               132: 'sctp', 136: 'udplite'}
PORT_PROTOS = frozenset((6, 17, 33, 132, 136))
ICMP_PROTOS = frozenset((1, 58))

# enum tcp_conntrack, sctp_conntrack, ct_dccp_states
TCP_STATES = ('NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK',
              'TIME_WAIT', 'CLOSE', 'SYN_SENT2')
SCTP_STATES = ('NONE', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED', 'SHUTDOWN_SENT',
               'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT', 'HEARTBEAT_ACKED')
DCCP_STATES = ('NONE', 'REQUEST', 'RESPOND', 'PARTOPEN', 'OPEN', 'CLOSEREQ', 'CLOSING', 'TIMEWAIT',
               'IGNORE', 'INVALID')

# enum ip_conntrack_status bits, in bit order
STATUS_BITS = ('EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT', 'DST_NAT', 'SEQ_ADJUST',
               'SRC_NAT_DONE', 'DST_NAT_DONE', 'DYING', 'FIXED_TIMEOUT', 'TEMPLATE', 'NAT_CLASH',
               'HELPER', 'OFFLOAD', 'HW_OFFLOAD')
STATUS_VALUES = dict((name, 1 << bit) for bit, name in enumerate(STATUS_BITS))
# the bits the kernel lets userspace set on create/update (IPS_UNCHANGEABLE_MASK is the rest)
STATUS_SETTABLE = ('EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT', 'DST_NAT',
                   'SEQ_ADJUST', 'FIXED_TIMEOUT')

_HDR = struct.Struct('=IHHII')       # nlmsghdr
_NFGEN = struct.Struct('=BBH')       # nfgenmsg (res_id is big endian, always 0 here)
_NLA = struct.Struct('=HH')          # nlattr
_BE16 = struct.Struct('>H')
_BE32 = struct.Struct('>I')
_BE64 = struct.Struct('>Q')
_ERR = struct.Struct('=i')

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


# --- encoding --------------------------------------------------------------------------------

def nla(atype, payload):
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return _NLA.pack(length, atype) + payload + b'\0' * ((4 - length % 4) % 4)


def nla_nested(atype, *children):
    return nla(atype | NLA_F_NESTED, b''.join(children))


def nla_u8(atype, value):
    return nla(atype, struct.pack('B', value))


def nla_be16(atype, value):
    return nla(atype, _BE16.pack(value))


def nla_be32(atype, value):
    return nla(atype, _BE32.pack(value & 0xffffffff))


def nla_str(atype, value):
    return nla(atype, value.encode() + b'\0')


def encode_tuple(atype, family, tup):
    """Encode a tuple dict (``src``, ``dst``, ``proto``, ports or ICMP fields, ``zone``) as CTA_TUPLE_*."""
    parts = []
    ip = []
    fam_af = AF_INET if family == 'ipv4' else AF_INET6
    src_t, dst_t = (CTA_IP_V4_SRC, CTA_IP_V4_DST) if fam_af == AF_INET else (CTA_IP_V6_SRC, CTA_IP_V6_DST)
    if tup.get('src') is not None:
        ip.append(nla(src_t, socket.inet_pton(fam_af, tup['src'])))
    if tup.get('dst') is not None:
        ip.append(nla(dst_t, socket.inet_pton(fam_af, tup['dst'])))
    if ip:
        parts.append(nla_nested(CTA_TUPLE_IP, *ip))
    proto = tup.get('protonum')
    if proto is not None:
        pr = [nla_u8(CTA_PROTO_NUM, proto)]
        if tup.get('sport') is not None:
            pr.append(nla_be16(CTA_PROTO_SRC_PORT, tup['sport']))
        if tup.get('dport') is not None:
            pr.append(nla_be16(CTA_PROTO_DST_PORT, tup['dport']))
        if proto in ICMP_PROTOS:
            id_t, type_t, code_t = ((CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE) if proto == 1
                                    else (CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE))
            if tup.get('icmp_id') is not None:
                pr.append(nla_be16(id_t, tup['icmp_id']))
            if tup.get('icmp_type') is not None:
                pr.append(nla_u8(type_t, tup['icmp_type']))
            if tup.get('icmp_code') is not None:
                pr.append(nla_u8(code_t, tup['icmp_code']))
        parts.append(nla_nested(CTA_TUPLE_PROTO, *pr))
    if tup.get('zone') is not None:
        parts.append(nla_be16(CTA_TUPLE_ZONE, tup['zone']))
    return nla_nested(atype, *parts)


# --- decoding --------------------------------------------------------------------------------

_ntop = socket.inet_ntop
_unpack_nla = _NLA.unpack_from
_unpack_be16 = _BE16.unpack_from
_unpack_be32 = _BE32.unpack_from
_unpack_be64 = _BE64.unpack_from

_STATUS_CACHE = {}


def status_names(value):
    """Status bit names for a CTA_STATUS value (cached: a table has few distinct values)."""
    names = _STATUS_CACHE.get(value)
    if names is None:
        names = [name for bit, name in enumerate(STATUS_BITS) if value & (1 << bit)]
        _STATUS_CACHE[value] = names
    return names


def status_value(names):
    value = 0
    for name in names:
        value |= STATUS_VALUES[name]
    return value


def _decode_tuple(buf, off, end, entry, prefix):
    """Decode a CTA_TUPLE_* payload into ``entry`` with keys ``<prefix>src`` etc. Returns the protonum."""
    protonum = None
    while off + 4 <= end:
        alen, atype = _unpack_nla(buf, off)
        if alen < 4:
            break
        atype &= NLA_TYPE_MASK
        pend = off + alen
        if atype == CTA_TUPLE_IP:
            p = off + 4
            while p + 4 <= pend:
                blen, btype = _unpack_nla(buf, p)
                if blen < 4:
                    break
                btype &= NLA_TYPE_MASK
                if btype == CTA_IP_V4_SRC:
                    entry[prefix + 'src'] = _ntop(AF_INET, buf[p + 4:p + 8])
                elif btype == CTA_IP_V4_DST:
                    entry[prefix + 'dst'] = _ntop(AF_INET, buf[p + 4:p + 8])
                elif btype == CTA_IP_V6_SRC:
                    entry[prefix + 'src'] = _ntop(AF_INET6, buf[p + 4:p + 20])
                elif btype == CTA_IP_V6_DST:
                    entry[prefix + 'dst'] = _ntop(AF_INET6, buf[p + 4:p + 20])
                p += (blen + 3) & ~3
        elif atype == CTA_TUPLE_PROTO:
            p = off + 4
            while p + 4 <= pend:
                blen, btype = _unpack_nla(buf, p)
                if blen < 4:
                    break
                btype &= NLA_TYPE_MASK
                if btype == CTA_PROTO_NUM:
                    protonum = buf[p + 4]
                elif btype == CTA_PROTO_SRC_PORT:
                    entry[prefix + 'sport'] = _unpack_be16(buf, p + 4)[0]
                elif btype == CTA_PROTO_DST_PORT:
                    entry[prefix + 'dport'] = _unpack_be16(buf, p + 4)[0]
                elif btype in (CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMPV6_TYPE):
                    entry[prefix + 'icmp_type'] = buf[p + 4]
                elif btype in (CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMPV6_CODE):
                    entry[prefix + 'icmp_code'] = buf[p + 4]
                elif btype in (CTA_PROTO_ICMP_ID, CTA_PROTO_ICMPV6_ID):
                    entry[prefix + 'icmp_id'] = _unpack_be16(buf, p + 4)[0]
                p += (blen + 3) & ~3
        elif atype == CTA_TUPLE_ZONE:
            entry[prefix + 'tuple_zone'] = _unpack_be16(buf, off + 4)[0]
        off += (alen + 3) & ~3
    return protonum


def iter_attrs(buf, off, end):
    """Yield (type, payload offset, payload end) of each attribute in buf[off:end].

    The cold paths (counters, NAT, strings, statistics, expectations) use it; the per-entry hot
    loops of decode_ct and _decode_tuple walk inline, which is measurably faster.
    """
    while off + 4 <= end:
        alen, atype = _unpack_nla(buf, off)
        if alen < 4:
            return
        yield atype & NLA_TYPE_MASK, off + 4, off + alen
        off += (alen + 3) & ~3


def _decode_counters(buf, off, end):
    packets = nbytes = 0
    for atype, p, _pend in iter_attrs(buf, off, end):
        if atype == CTA_COUNTERS_PACKETS:
            packets = _unpack_be64(buf, p)[0]
        elif atype == CTA_COUNTERS_BYTES:
            nbytes = _unpack_be64(buf, p)[0]
        elif atype == CTA_COUNTERS32_PACKETS:
            packets = _unpack_be32(buf, p)[0]
        elif atype == CTA_COUNTERS32_BYTES:
            nbytes = _unpack_be32(buf, p)[0]
    return packets, nbytes


_PROTOINFO_STATES = {CTA_PROTOINFO_TCP: TCP_STATES, CTA_PROTOINFO_SCTP: SCTP_STATES, CTA_PROTOINFO_DCCP: DCCP_STATES}


def _decode_protoinfo(buf, off, end, entry):
    for atype, p, pend in iter_attrs(buf, off, end):
        names = _PROTOINFO_STATES.get(atype)
        if names is None:
            continue
        for btype, q, _qend in iter_attrs(buf, p, pend):
            if btype == 1:  # CTA_PROTOINFO_{TCP,DCCP,SCTP}_STATE
                value = buf[q]
                entry['state'] = names[value] if value < len(names) else str(value)


_NAT_ADDRS = {CTA_NAT_V4_MINIP: ('min_ip', AF_INET, 4), CTA_NAT_V4_MAXIP: ('max_ip', AF_INET, 4),
              CTA_NAT_V6_MINIP: ('min_ip', AF_INET6, 16), CTA_NAT_V6_MAXIP: ('max_ip', AF_INET6, 16)}


def _decode_nat(buf, off, end):
    nat = {}
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype in _NAT_ADDRS:
            key, af, size = _NAT_ADDRS[atype]
            nat[key] = _ntop(af, bytes(buf[p:p + size]))
        elif atype == CTA_NAT_PROTO:
            for btype, q, _qend in iter_attrs(buf, p, pend):
                if btype == CTA_PROTONAT_PORT_MIN:
                    nat['min_port'] = _unpack_be16(buf, q)[0]
                elif btype == CTA_PROTONAT_PORT_MAX:
                    nat['max_port'] = _unpack_be16(buf, q)[0]
    return nat


def _cstring(buf, p, pend):
    return bytes(buf[p:pend]).split(b'\0', 1)[0].decode('ascii', 'replace')


def _first_string(buf, off, end, want):
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype == want:
            return _cstring(buf, p, pend)
    return None


def _hdr_be(length, atype):
    """A nlattr header as the big-endian u32 the fast-path structs read it as."""
    return int.from_bytes(_NLA.pack(length, atype), 'big')


def _fast_layout(addr_len):
    """Structs for the common layout of both tuples with ports (TCP/UDP/SCTP/DCCP/UDPlite):
    TUPLE{IP{SRC,DST},PROTO{NUM,SPORT,DPORT}} twice, as every kernel since 2.6 emits it."""
    ip_len = 4 + 2 * (4 + addr_len)
    tuple_len = 4 + ip_len + 28
    src_t = CTA_IP_V4_SRC if addr_len == 4 else CTA_IP_V6_SRC
    hdr_fmt = ''
    val_fmt = ''
    expect = []
    for tup in (CTA_TUPLE_ORIG, CTA_TUPLE_REPLY):
        hdr_fmt += 'III%dxI%dxII4xI4xI4x' % (addr_len, addr_len)
        val_fmt += '12x%ds4x%ds8xB7xH6xH2x' % (addr_len, addr_len)
        expect += [_hdr_be(tuple_len, tup | NLA_F_NESTED), _hdr_be(ip_len, CTA_TUPLE_IP | NLA_F_NESTED),
                   _hdr_be(4 + addr_len, src_t), _hdr_be(4 + addr_len, src_t + 1),
                   _hdr_be(28, CTA_TUPLE_PROTO | NLA_F_NESTED), _hdr_be(5, CTA_PROTO_NUM),
                   _hdr_be(6, CTA_PROTO_SRC_PORT), _hdr_be(6, CTA_PROTO_DST_PORT)]
    return struct.Struct('>' + hdr_fmt), struct.Struct('>' + val_fmt), tuple(expect), 2 * tuple_len


_FAST = {AF_INET: _fast_layout(4), AF_INET6: _fast_layout(16)}
_FAST_HDR = dict((fam, layout[0].unpack_from) for fam, layout in _FAST.items())
_FAST_VAL = dict((fam, layout[1].unpack_from) for fam, layout in _FAST.items())
_FAST_EXPECT = dict((fam, layout[2]) for fam, layout in _FAST.items())
_FAST_LEN = dict((fam, layout[3]) for fam, layout in _FAST.items())
# the attributes that follow the tuples on every entry, in the kernel's order (ctnetlink_fill_info):
# STATUS, MARK, ID, USE, TIMEOUT -- optionally preceded by ZONE
_TAIL = struct.Struct('>IIIIIIIIII').unpack_from
_TAIL_HDRS = (_hdr_be(8, CTA_STATUS), _hdr_be(8, CTA_MARK), _hdr_be(8, CTA_ID), _hdr_be(8, CTA_USE),
              _hdr_be(8, CTA_TIMEOUT))
_HDR_ZONE = _hdr_be(6, CTA_ZONE)
_ZONE = struct.Struct('>IH').unpack_from
_HDR_TCP_STATE = _hdr_be(5, CTA_PROTOINFO_TCP_STATE)
# the nested CTA_PROTOINFO_TCP header, type only: its length depends on the kernel (44 or 48 bytes seen)
_TYPE_PROTOINFO_TCP = _hdr_be(0, CTA_PROTOINFO_TCP | NLA_F_NESTED)
_PROTOINFO_TCP_STATE = struct.Struct('>4xIIB').unpack_from

_ADDR_CACHE = {}


def _addr(af, raw):
    text = _ADDR_CACHE.get(raw)
    if text is None:
        if len(_ADDR_CACHE) > 65536:
            _ADDR_CACHE.clear()
        text = _ADDR_CACHE[raw] = _ntop(af, raw)
    return text


def decode_ct(buf, off, end, family):
    """Decode one IPCTNL_MSG_CT_NEW payload (attributes after nfgenmsg) into a flat entry dict."""
    fast_len = _FAST_LEN.get(family)
    if fast_len is not None and off + fast_len <= end and _FAST_HDR[family](buf, off) == _FAST_EXPECT[family]:
        src, dst, num, sport, dport, rsrc, rdst, _rnum, rsport, rdport = _FAST_VAL[family](buf, off)
        af = family
        entry = {'family': 'ipv4' if af == AF_INET else 'ipv6', 'proto': PROTO_NAMES.get(num) or str(num),
                 'protonum': num, 'src': _addr(af, src), 'dst': _addr(af, dst), 'sport': sport, 'dport': dport,
                 'reply_src': _addr(af, rsrc), 'reply_dst': _addr(af, rdst), 'reply_sport': rsport,
                 'reply_dport': rdport, 'zone': 0}
        off += fast_len
        protonum = num
        status = 0
        if off + 48 <= end:
            zone = 0
            hdr, zone_value = _ZONE(buf, off)
            if hdr == _HDR_ZONE:
                zone = zone_value
                off += 8
            h1, status, h2, mark, h3, ct_id, h4, use, h5, timeout = _TAIL(buf, off)
            if (h1, h2, h3, h4, h5) == _TAIL_HDRS:
                entry['zone'] = zone
                entry['status'] = status_names(status)
                entry['mark'] = mark
                entry['id'] = ct_id
                entry['use'] = use
                entry['timeout'] = timeout
                off += 40
                if status & _NAT_BITS:
                    add_nat(entry, status)
                # what remains: PROTOINFO, counters, timestamps, helper, labels, SYNPROXY...
                status = 0
            else:
                status = 0
                if zone:
                    entry['zone'] = zone
    else:
        entry = {'family': FAMILY_NAMES.get(family, str(family)), 'zone': 0}
        protonum = None
        status = 0
    while off + 4 <= end:
        alen, atype = _unpack_nla(buf, off)
        if alen < 4:
            break
        atype &= NLA_TYPE_MASK
        pend = off + alen
        if atype == CTA_STATUS:
            status = _unpack_be32(buf, off + 4)[0]
            entry['status'] = status_names(status)
        elif atype == CTA_MARK:
            entry['mark'] = _unpack_be32(buf, off + 4)[0]
        elif atype == CTA_ID:
            entry['id'] = _unpack_be32(buf, off + 4)[0]
        elif atype == CTA_USE:
            entry['use'] = _unpack_be32(buf, off + 4)[0]
        elif atype == CTA_TIMEOUT:
            entry['timeout'] = _unpack_be32(buf, off + 4)[0]
        elif atype == CTA_PROTOINFO:
            if alen >= 16:
                hdr, shdr, state = _PROTOINFO_TCP_STATE(buf, off)
                if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE:
                    entry['state'] = TCP_STATES[state] if state < 10 else str(state)
                else:
                    _decode_protoinfo(buf, off + 4, pend, entry)
        elif atype == CTA_ZONE:
            entry['zone'] = _unpack_be16(buf, off + 4)[0]
        elif atype == CTA_SYNPROXY:
            pass
        elif atype == CTA_TUPLE_ORIG:
            protonum = _decode_tuple(buf, off + 4, pend, entry, '')
            entry['protonum'] = protonum
            entry['proto'] = PROTO_NAMES.get(protonum) or str(protonum)
        elif atype == CTA_TUPLE_REPLY:
            _decode_tuple(buf, off + 4, pend, entry, 'reply_')
        elif atype == CTA_COUNTERS_ORIG:
            entry['packets'], entry['bytes'] = _decode_counters(buf, off + 4, pend)
        elif atype == CTA_COUNTERS_REPLY:
            entry['reply_packets'], entry['reply_bytes'] = _decode_counters(buf, off + 4, pend)
        elif atype == CTA_HELP:
            entry['helper'] = _first_string(buf, off + 4, pend, CTA_HELP_NAME)
        elif atype == CTA_TIMESTAMP:
            for btype, p, _pend in iter_attrs(buf, off + 4, pend):
                if btype == CTA_TIMESTAMP_START:
                    entry['timestamp_start'] = _unpack_be64(buf, p)[0]
                elif btype == CTA_TIMESTAMP_STOP:
                    entry['timestamp_stop'] = _unpack_be64(buf, p)[0]
        elif atype == CTA_LABELS:
            raw = bytes(buf[off + 4:pend])
            bits = int.from_bytes(raw, 'little')
            if bits:
                entry['labels'] = [i for i in range(len(raw) * 8) if bits >> i & 1]
        elif atype == CTA_SECMARK:
            entry['secmark'] = _unpack_be32(buf, off + 4)[0]
        elif atype == CTA_SECCTX:
            entry['secctx'] = _first_string(buf, off + 4, pend, CTA_SECCTX_NAME)
        elif atype == CTA_NAT_SRC:
            entry['nat_src'] = _decode_nat(buf, off + 4, pend)
        elif atype == CTA_NAT_DST:
            entry['nat_dst'] = _decode_nat(buf, off + 4, pend)
        elif atype == CTA_TUPLE_MASTER:
            master = {}
            _decode_tuple(buf, off + 4, pend, master, '')
            entry['master'] = master
        off += (alen + 3) & ~3
    if protonum is None:
        entry.setdefault('proto', 'unknown')
    if status & _NAT_BITS:
        add_nat(entry, status)
    return entry


_NAT_BITS = STATUS_VALUES['SRC_NAT'] | STATUS_VALUES['DST_NAT']


# --- bulk decoders: JSON text and brief records ---------------------------------------------
# A listing of 10^5-10^6 entries spends most of its time building dicts and then encoding them. The
# batch decoders below (batch_json, batch_brief) write an entry's JSON text, or the few values a summary
# counts, straight from the unpacked bytes of the common layouts; decode_ct_json and decode_ct_brief are
# what they give for any entry (the general decoder, used for every other shape and as the reference).

_JSON_HEAD = ('{"family": "%s", "proto": %s, "protonum": %d, "src": "%s", "dst": "%s", "sport": %d, '
              '"dport": %d, "reply_src": "%s", "reply_dst": "%s", "reply_sport": %d, "reply_dport": %d, '
              '"zone": %d, "status": %s, "mark": %d, "id": %d, "use": %d, "timeout": %d')
_JSON_STATUS = {}
_JSON_PROTO = {}
_JSON_TCP_STATE = tuple(', "state": "%s"' % name for name in TCP_STATES)


def _json_status(value):
    text = _JSON_STATUS.get(value)
    if text is None:
        text = _JSON_STATUS[value] = json.dumps(status_names(value))
    return text


def _json_proto(num):
    text = _JSON_PROTO.get(num)
    if text is None:
        text = _JSON_PROTO[num] = json.dumps(PROTO_NAMES.get(num) or str(num))
    return text


def decode_ct_json(buf, off, end, family):
    """The JSON text of one IPCTNL_MSG_CT_NEW payload, as ``batch_json`` writes it."""
    return json.dumps(decode_ct(buf, off, end, family))


_AF_OF = {'ipv4': AF_INET, 'ipv6': AF_INET6}
_PROTO_NUMBERS = dict((name, num) for num, name in PROTO_NAMES.items())


def brief_of(entry):
    """The brief record of an entry dict (see decode_ct_brief)."""
    status = entry.get('status') or ()
    af = _AF_OF.get(entry.get('family'), 0)
    num = entry.get('protonum')
    if num is None:
        num = _PROTO_NUMBERS.get(entry.get('proto'))
    src, dst, dport = entry.get('src'), entry.get('dst'), entry.get('dport')
    return ((af, num, entry.get('state'), entry.get('zone', 0), status if isinstance(status, int) else status_value(status)),
            socket.inet_pton(af, src) if af and src else src, socket.inet_pton(af, dst) if af and dst else dst,
            None if dport is None or num is None else num << 16 | dport)


def decode_ct_brief(buf, off, end, family):
    """What a summary counts of one entry, cheap to make and to count, as ``batch_brief`` makes it:
    ((family AF, protonum, state name or None, zone, status value), src bytes, dst bytes, protonum << 16 | dport
    or None). Addresses stay bytes: only the top ones are ever written as text."""
    return brief_of(decode_ct(buf, off, end, family))


_PROTOINFO_PROTOS = frozenset((6, 33, 132))


# --- batch decoders: every message of a datagram in one call ----------------------------------
# The fixed part of a common entry (both tuples -- addresses with ports, or with ICMP id/type/code --,
# the optional zone, then STATUS/MARK/ID/USE/TIMEOUT) has a constant layout per family and kind. Its
# attribute headers are checked all at once (the bytes as one integer, masked, against the layout's
# constant headers) and its values unpacked with one struct; an entry of any other shape goes to the
# general decoder.

def _layout(addr_len, icmp, zone):
    """(size, mask, expect, unpack of the values) of one fixed layout."""
    src_t = CTA_IP_V4_SRC if addr_len == 4 else CTA_IP_V6_SRC
    ip_len = 4 + 2 * (4 + addr_len)
    proto_len = 36 if icmp else 28
    tuple_len = 4 + ip_len + proto_len
    items = []  # (struct code, header (len, type) or None for a value)
    for tup in (CTA_TUPLE_ORIG, CTA_TUPLE_REPLY):
        items += [('I', (tuple_len, tup | NLA_F_NESTED)), ('I', (ip_len, CTA_TUPLE_IP | NLA_F_NESTED)),
                  ('I', (4 + addr_len, src_t)), ('%ds' % addr_len, None), ('I', (4 + addr_len, src_t + 1)),
                  ('%ds' % addr_len, None), ('I', (proto_len, CTA_TUPLE_PROTO | NLA_F_NESTED)),
                  ('I', (5, CTA_PROTO_NUM)), ('B3x', None)]
        if icmp:
            base = CTA_PROTO_ICMP_ID if addr_len == 4 else CTA_PROTO_ICMPV6_ID
            items += [('I', (6, base)), ('H2x', None), ('I', (5, base + 1)), ('B3x', None),
                      ('I', (5, base + 2)), ('B3x', None)]
        else:
            items += [('I', (6, CTA_PROTO_SRC_PORT)), ('H2x', None), ('I', (6, CTA_PROTO_DST_PORT)), ('H2x', None)]
    if zone:
        items += [('I', (6, CTA_ZONE)), ('H2x', None)]
    for atype in (CTA_STATUS, CTA_MARK, CTA_ID, CTA_USE, CTA_TIMEOUT):
        items += [('I', (8, atype)), ('I', None)]
    values = struct.Struct('>' + ''.join('4x' if h else code for code, h in items))
    mask = b''.join(b'\xff' * 4 if h else b'\0' * struct.calcsize('>' + code) for code, h in items)
    expect = b''.join(_NLA.pack(*h) if h else b'\0' * struct.calcsize('>' + code) for code, h in items)
    return values.size, int.from_bytes(mask, 'big'), int.from_bytes(expect, 'big'), values.unpack_from


# (family, icmp, zone) -> layout; where to find the protocol number and the zone header
_LAYOUTS = dict(((af, icmp, zone), _layout(4 if af == AF_INET else 16, icmp, zone))
                for af in (AF_INET, AF_INET6) for icmp in (False, True) for zone in (False, True))
_NUM_AT = {AF_INET: 4 + 20 + 8, AF_INET6: 4 + 44 + 8}
_ZONE_AT = dict(((af, icmp), 2 * (4 + (20 if af == AF_INET else 44) + (36 if icmp else 28)))
                for af in (AF_INET, AF_INET6) for icmp in (False, True))
_BE32_AT = _BE32.unpack_from
_FAMILY_NAME = {AF_INET: 'ipv4', AF_INET6: 'ipv6'}
_HDR_SYNPROXY = _hdr_be(28, CTA_SYNPROXY | NLA_F_NESTED)


def _batch(decode_fast, fallback):
    """A batch decoder: ``decode(buf, n, seq, out)`` appends what ``decode_fast(values, family, icmp, zoned,
    buf, rest, end)`` (or, for an entry outside the fixed layouts or refused by it, or for every entry when
    ``decode_fast`` is None, ``fallback(buf, off, end, family)``) makes of every entry of the datagram
    ``buf[:n]`` to ``out``. Returns None while the dump goes
    on, 0 at its end, an errno when the kernel answered with an error."""
    hdr_of = _HDR.unpack_from
    from_bytes = int.from_bytes
    layouts = _LAYOUTS
    num_at = _NUM_AT
    zone_at = _ZONE_AT
    icmp_protos = ICMP_PROTOS
    zone_hdr = _HDR_ZONE
    be32 = _BE32_AT

    def decode(buf, n, seq, out):
        append = out.append
        off = 0
        while off + 16 <= n:
            mlen, mtype, _mflags, mseq, _pid = hdr_of(buf, off)
            if mlen < 16 or off + mlen > n:
                break
            if mseq == seq:
                if mtype >= 0x100:
                    family = buf[off + 16]
                    start = off + 20
                    end = off + mlen
                    item = None
                    at = num_at.get(family) if decode_fast is not None else None
                    if at is not None and start + at < end:
                        icmp = buf[start + at] in icmp_protos
                        zat = start + zone_at[family, icmp]
                        zoned = zat + 4 <= end and be32(buf, zat)[0] == zone_hdr
                        size, mask, expect, unpack = layouts[family, icmp, zoned]
                        if start + size <= end and from_bytes(buf[start:start + size], 'big') & mask == expect:
                            item = decode_fast(unpack(buf, start), family, icmp, zoned, buf, start + size, end)
                    append(fallback(buf, start, end, family) if item is None else item)
                elif mtype == NLMSG_DONE:
                    return 0
                elif mtype == NLMSG_ERROR:
                    return -_ERR.unpack_from(buf, off + 16)[0]
            off += (mlen + 3) & ~3
        return None
    return decode


_ADDR_GET = _ADDR_CACHE.get
_JSON_ICMP_HEAD = ('{"family": "%s", "zone": %d, "src": "%s", "dst": "%s", "icmp_id": %d, "icmp_type": %d, '
                   '"icmp_code": %d, "protonum": %d, "proto": %s, "reply_src": "%s", "reply_dst": "%s", '
                   '"reply_icmp_id": %d, "reply_icmp_type": %d, "reply_icmp_code": %d, "status": %s, "mark": %d, '
                   '"id": %d, "use": %d, "timeout": %d')


def _json_rest(parts, buf, p, end):
    """Append the JSON of the attributes after the fixed part; False when one needs the general decoder."""
    for atype, q, qend in iter_attrs(buf, p, end):
        if atype == CTA_PROTOINFO:
            hdr, shdr, state = _PROTOINFO_TCP_STATE(buf, q - 4) if qend - q >= 12 else (0, 0, 0)
            if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE and state < 10:
                parts.append(_JSON_TCP_STATE[state])
            else:
                info = {}
                _decode_protoinfo(buf, q, qend, info)
                if 'state' in info:
                    parts.append(', "state": %s' % json.dumps(info['state']))
        elif atype == CTA_COUNTERS_ORIG:
            parts.append(', "packets": %d, "bytes": %d' % _decode_counters(buf, q, qend))
        elif atype == CTA_COUNTERS_REPLY:
            parts.append(', "reply_packets": %d, "reply_bytes": %d' % _decode_counters(buf, q, qend))
        elif atype == CTA_TIMESTAMP:
            for btype, r, _rend in iter_attrs(buf, q, qend):
                if btype == CTA_TIMESTAMP_START:
                    parts.append(', "timestamp_start": %d' % _unpack_be64(buf, r)[0])
                elif btype == CTA_TIMESTAMP_STOP:
                    parts.append(', "timestamp_stop": %d' % _unpack_be64(buf, r)[0])
        elif atype != CTA_SYNPROXY:
            return False
    return True


def _json_fast(v, family, icmp, zoned, buf, p, end):
    """The JSON text of an entry of a fixed layout from its unpacked values, or None."""
    t = (12 if icmp else 10) + zoned  # where STATUS starts in the values
    status = v[t]
    if status & _NAT_BITS:
        return None  # the snat/dnat descriptions: the general decoder
    get = _ADDR_GET
    num = v[2]
    if icmp:
        rs, rd = v[6], v[7]
        text = _JSON_ICMP_HEAD % (
            _FAMILY_NAME[family], v[12] if zoned else 0, get(v[0]) or _addr(family, v[0]),
            get(v[1]) or _addr(family, v[1]), v[3], v[4], v[5], num, _JSON_PROTO.get(num) or _json_proto(num),
            get(rs) or _addr(family, rs), get(rd) or _addr(family, rd), v[9], v[10], v[11],
            _JSON_STATUS.get(status) or _json_status(status), v[t + 1], v[t + 2], v[t + 3], v[t + 4])
    else:
        rs, rd = v[5], v[6]
        text = _JSON_HEAD % (
            _FAMILY_NAME[family], _JSON_PROTO.get(num) or _json_proto(num), num, get(v[0]) or _addr(family, v[0]),
            get(v[1]) or _addr(family, v[1]), v[3], v[4], get(rs) or _addr(family, rs),
            get(rd) or _addr(family, rd), v[8], v[9], v[10] if zoned else 0,
            _JSON_STATUS.get(status) or _json_status(status), v[t + 1], v[t + 2], v[t + 3], v[t + 4])
    if p + 4 > end:
        return text + '}'
    # the usual rest, inline: TCP protoinfo and/or SYNPROXY, and nothing else
    alen, atype = _unpack_nla(buf, p)
    atype &= NLA_TYPE_MASK
    q = p + ((alen + 3) & ~3)
    if atype == CTA_PROTOINFO:
        if alen >= 16 and (q + 4 > end or (q + 28 == end and _BE32_AT(buf, q)[0] == _HDR_SYNPROXY)):
            hdr, shdr, state = _PROTOINFO_TCP_STATE(buf, p)
            if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE and state < 10:
                return text + _JSON_TCP_STATE[state] + '}'
    elif atype == CTA_SYNPROXY and q + 4 > end:
        return text + '}'
    parts = [text]
    if not _json_rest(parts, buf, p, end):
        return None
    parts.append('}')
    return ''.join(parts)


def _state_in(buf, p, end):
    """The protocol state (name) in the attributes buf[p:end] (CTA_PROTOINFO), or None."""
    for atype, q, qend in iter_attrs(buf, p, end):
        if atype == CTA_PROTOINFO:
            info = {}
            _decode_protoinfo(buf, q, qend, info)
            return info.get('state')
    return None


def _brief_fast(v, family, icmp, zoned, buf, p, end):
    """The brief record (see decode_ct_brief) of an entry of a fixed layout from its values."""
    t = (12 if icmp else 10) + zoned
    num = v[2]
    state = None
    if num == 6 and p + 16 <= end:
        hdr, shdr, value = _PROTOINFO_TCP_STATE(buf, p)
        if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE:
            state = TCP_STATES[value] if value < 10 else str(value)
        else:
            state = _state_in(buf, p, end)
    elif num in _PROTOINFO_PROTOS:
        state = _state_in(buf, p, end)
    return (family, num, state, v[t - 1] if zoned else 0, v[t]), v[0], v[1], None if icmp else num << 16 | v[4]


def plain_batch(decode):
    """A batch decoder (see _batch) that calls ``decode(buf, payload_offset, end, family)`` on every entry."""
    return _batch(None, decode)


batch_json = _batch(_json_fast, decode_ct_json)
batch_json.texts = True  # its items are JSON texts (a receiver process joins them: see _ProcessReceiver)
batch_brief = _batch(_brief_fast, decode_ct_brief)


def add_nat(entry, status):
    """Describe the translation of a NATed entry from its tuples (the kernel does not dump CTA_NAT_*):
    DNAT sent the original destination to the reply source; SNAT rewrote the original source to the
    reply destination."""
    if status & STATUS_VALUES['DST_NAT']:
        dnat = {'from': entry.get('dst'), 'to': entry.get('reply_src')}
        if entry.get('dport') is not None:
            dnat.update(from_port=entry.get('dport'), to_port=entry.get('reply_sport'))
        entry['dnat'] = dnat
    if status & STATUS_VALUES['SRC_NAT']:
        snat = {'from': entry.get('src'), 'to': entry.get('reply_dst')}
        if entry.get('sport') is not None:
            snat.update(from_port=entry.get('sport'), to_port=entry.get('reply_dport'))
        entry['snat'] = snat


def decode_expect(buf, off, end, family):
    """Decode one IPCTNL_MSG_EXP_NEW payload into a dict."""
    exp = {'family': FAMILY_NAMES.get(family, str(family))}
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype in (CTA_EXPECT_MASTER, CTA_EXPECT_TUPLE, CTA_EXPECT_MASK):
            tup = {}
            proto = _decode_tuple(buf, p, pend, tup, '')
            if proto is not None and atype != CTA_EXPECT_MASK:
                tup['proto'] = PROTO_NAMES.get(proto) or str(proto)
                tup['protonum'] = proto
            exp[{CTA_EXPECT_MASTER: 'master', CTA_EXPECT_TUPLE: 'tuple', CTA_EXPECT_MASK: 'mask'}[atype]] = tup
        elif atype == CTA_EXPECT_TIMEOUT:
            exp['timeout'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_ID:
            exp['id'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_HELP_NAME:
            exp['helper'] = _cstring(buf, p, pend)
        elif atype == CTA_EXPECT_ZONE:
            exp['zone'] = _unpack_be16(buf, p)[0]
        elif atype == CTA_EXPECT_FLAGS:
            flags = _unpack_be32(buf, p)[0]
            exp['flags'] = [name for bit, name in enumerate(('PERMANENT', 'INACTIVE', 'USERSPACE'))
                            if flags & (1 << bit)]
        elif atype == CTA_EXPECT_CLASS:
            exp['class'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_FN:
            exp['fn'] = _cstring(buf, p, pend)
    exp.setdefault('zone', 0)
    exp.setdefault('flags', [])
    return exp


def _decode_stats(buf, off, end, names):
    stats = {}
    for atype, p, pend in iter_attrs(buf, off, end):
        name = names.get(atype)
        if name is not None and pend - p >= 4:
            stats[name] = _unpack_be32(buf, p)[0]
    return stats


# --- the socket -------------------------------------------------------------------------------

def receive_error(code):
    """The ConntrackError for a failed recv() on a conntrack socket (errno ``code``)."""
    if code == errno.ENOBUFS:
        return ConntrackError('the kernel dropped netlink messages (receive buffer overrun): '
                              'the table changed too fast to be read completely; try again')
    return ConntrackError('netlink receive failed: %s' % os.strerror(code))


class _Receiver(object):
    """Receives the datagrams of one dump in a second thread, into a small ring of buffers.

    ``next()`` returns (buffer, length); the caller hands the buffer back with ``release()`` once it
    has decoded it. The thread stops by itself after the datagram that ends the dump (DONE or an
    error for ``seq``), or when ``stop()`` is called.
    """

    RING = 8

    def __init__(self, conn, seq):
        import queue
        import threading

        self.conn = conn
        self.seq = seq
        self.free = queue.Queue()
        self.full = queue.Queue()
        for _i in range(self.RING):
            self.free.put(bytearray(conn.CHUNK))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name='ctnetlink-recv')
        self.thread.daemon = True
        self.thread.start()

    @staticmethod
    def ends(buf, n, seq):
        """True when the datagram ``buf[:n]`` ends the dump ``seq`` (DONE or an error for it)."""
        off = 0
        while off + 16 <= n:
            mlen, mtype, _f, mseq, _p = _HDR.unpack_from(buf, off)
            if mlen < 16:
                return True
            if mseq == seq and mtype in (NLMSG_DONE, NLMSG_ERROR):
                return True
            off += (mlen + 3) & ~3
        return False

    def _run(self):
        import queue

        sock = self.conn.sock
        chunk = self.conn.CHUNK
        while not self.stopping.is_set():
            try:
                buf = self.free.get(timeout=0.2)
            except queue.Empty:
                continue
            if self.stopping.is_set():
                return
            try:
                n = sock.recv_into(buf, chunk)
            except Exception as exc:  # pylint: disable=broad-except
                # handed to the consumer, which raises it: a dead reader must not leave it waiting
                self.full.put((exc, 0))
                return
            self.full.put((buf, n))
            if self.ends(buf, n, self.seq):
                return

    def next(self):
        buf, n = self.full.get()
        if isinstance(buf, OSError):
            raise receive_error(buf.errno)
        if isinstance(buf, Exception):
            raise buf
        return buf, n

    def release(self, buf):
        self.free.put(buf)

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            # a buffer for a thread waiting for one; a thread inside recv() ends with the dump
            self.free.put(bytearray(0))
            self.thread.join(1.0)


class Decoded(list):
    """Items a receiver process decoded itself (see _ProcessReceiver)."""


class Joined(list):
    """JSON texts a receiver process decoded and joined with ', ' (``[text]``); ``entries`` says how many."""

    def __init__(self, text, entries):
        super(Joined, self).__init__((text,))
        self.entries = entries


class _ProcessReceiver(object):
    """Receives the datagrams of one dump in a child process and hands them over through a pipe.

    The kernel builds each dump datagram inside recv(); in a child process that work runs on another
    CPU while this process decodes, with no lock between the two (a receiving thread would need the
    GIL after every datagram). The child copies each datagram, prefixed with its length, into the pipe
    and ends after the one that ends the dump. ``next()`` returns (datagram, length).

    ``share``: a batch decoder without side effects whose items are plain data (str, bytes, int, tuple,
    dict, list, None). The child then decodes every other datagram itself and sends the items (marshal)
    instead of the bytes (JSON texts, of a batch decoder whose ``texts`` is true, joined into one: a
    ``Joined``), so both CPUs decode;
    ``next()`` returns (``Decoded`` items or ``Joined``, code) for those, ``code`` being what the batch
    decoder returned.
    """

    # the child decodes one datagram in SHARE_EVERY: it also does the kernel's work (inside recv())
    SHARE_EVERY = 2
    _HDR = struct.Struct('=iiI')  # length (negative: -errno), kind (0 bytes, 1 items, 2 + n: n joined texts), code
    _NO_CODE = 0xffffffff

    def __init__(self, conn, seq, share=None):
        self.seq = seq
        rfd, wfd = os.pipe()
        try:
            import fcntl
            fcntl.fcntl(wfd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups; best effort
        except (ImportError, OSError):
            pass
        try:
            pid = os.fork()
        except OSError:
            os.close(rfd)
            os.close(wfd)
            raise
        if pid == 0:  # the child: receive, forward, and leave without running any clean-up of the parent's
            code = 0
            try:
                os.close(rfd)
                self._forward(conn.sock, conn.CHUNK, wfd, share)
            except BaseException:  # pylint: disable=broad-except
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        self.pid = pid
        self.rfd = rfd
        self.pending = bytearray()
        self.pos = 0

    def _forward(self, sock, chunk, wfd, share):
        buf = bytearray(chunk)
        view = memoryview(buf)
        ends = _Receiver.ends
        pack = self._HDR.pack
        write = self._write_all
        turn = 0
        while True:
            try:
                n = sock.recv_into(buf, chunk)
            except OSError as exc:
                write(wfd, pack(-exc.errno, -1, self._NO_CODE))
                return
            turn += 1
            if share is not None and turn % self.SHARE_EVERY == 0:
                items = []
                code = share(buf, n, self.seq, items)
                if getattr(share, 'texts', False):  # JSON texts: joined here, written out as they are
                    data = ', '.join(items).encode('utf-8')
                    head = pack(len(data), 2 + len(items), self._NO_CODE if code is None else code)
                else:
                    data = marshal.dumps(items)
                    head = pack(len(data), 1, self._NO_CODE if code is None else code)
                write(wfd, head + data)
                if code is not None:
                    return
            else:
                write(wfd, pack(n, 0, self._NO_CODE))
                write(wfd, view[:n])
                if ends(buf, n, self.seq):
                    return

    @staticmethod
    def _write_all(fd, data):
        data = memoryview(data)
        while data:
            data = data[os.write(fd, data):]

    def _fill(self, size):
        while len(self.pending) - self.pos < size:
            if self.pos > (1 << 20):
                del self.pending[:self.pos]
                self.pos = 0
            data = os.read(self.rfd, 1 << 20)
            if not data:
                raise ConntrackError('the netlink receiver process ended before the dump did')
            self.pending += data

    def next(self):
        size = self._HDR.size
        self._fill(size)
        n, kind, code = self._HDR.unpack_from(self.pending, self.pos)
        self.pos += size
        if n < 0:
            raise receive_error(-n)
        self._fill(n)
        data = bytes(self.pending[self.pos:self.pos + n])
        self.pos += n
        code = None if code == self._NO_CODE else code
        if kind == 1:
            return Decoded(marshal.loads(data)), code
        if kind >= 2:
            return Joined(data.decode('utf-8'), kind - 2), code
        return data, n

    def release(self, buf):
        pass

    def stop(self):
        if self.pid:
            os.close(self.rfd)
            try:
                os.kill(self.pid, 9)  # done already, or abandoned mid-dump: either way it has no more to do
            except OSError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None


def _receiver(conn, seq, share=None):
    """A receiver in a child process where fork() works and this process runs no other thread (a fork
    while another thread may hold a lock is unsafe); else in a thread (which shares no decoding)."""
    import threading

    if hasattr(os, 'fork') and threading.active_count() == 1:
        try:
            return _ProcessReceiver(conn, seq, share)
        except OSError:
            pass
    return _Receiver(conn, seq)


class Connection(object):
    """A ctnetlink socket in the current network namespace.

    One request at a time; replies are streamed. Use as a context manager.
    """

    RCVBUF = 4 << 20
    CHUNK = 1 << 20

    def __init__(self):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
                raise ConntrackError('this kernel has no nfnetlink (netfilter netlink) support: '
                                     'conntrack over netlink is not available')
            raise ConntrackError('cannot open a netfilter netlink socket: %s' % exc.strerror)
        self.sock.bind((0, 0))
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root) first, then the capped one
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, self.RCVBUF)
                break
            except OSError:
                continue
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.seq = int.from_bytes(os.urandom(2), 'big')
        self.buf = bytearray(self.CHUNK)
        self.view = memoryview(self.buf)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # requests --------------------------------------------------------------------------------
    def message(self, subsys, msg, flags, family=0, version=NFNETLINK_V0, attrs=b''):
        """Encode one nfnetlink message; return (bytes, seq)."""
        self.seq = (self.seq + 1) & 0xffffffff
        payload = _NFGEN.pack(family, version, 0) + attrs
        return _HDR.pack(16 + len(payload), (subsys << 8) | msg, flags, self.seq, 0) + payload, self.seq

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConntrackError('cannot send a netlink request: %s' % exc.strerror)

    def _recv(self):
        try:
            return self.sock.recv_into(self.buf, self.CHUNK)
        except OSError as exc:
            raise receive_error(exc.errno)

    def messages(self, seq, flags=NLM_F_REQUEST | NLM_F_DUMP):
        """Yield (msg_type, family, buffer, payload_offset, end) for every reply to ``seq``.

        ``flags`` are those of the request: a dump ends at NLMSG_DONE, a request with NLM_F_ACK at
        its ACK, any other request after its one reply (the kernel may flag that single reply
        NLM_F_MULTI without a DONE, as it does for IPCTNL_MSG_CT_GET_STATS). Errors raise
        NetlinkError with the errno (ENOENT included: callers decide whether it is normal).
        """
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        ack = flags & NLM_F_ACK
        buf = self.buf
        while True:
            n = self._recv()
            off = 0
            while off + 16 <= n:
                mlen, mtype, mflags, mseq, _pid = _HDR.unpack_from(buf, off)
                if mlen < 16 or off + mlen > n:
                    break
                if mseq != seq:
                    off += (mlen + 3) & ~3
                    continue
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code = -_ERR.unpack_from(buf, off + 16)[0]
                    if code:
                        raise NetlinkError(code)
                    return  # ACK
                if mtype >= 0x100:
                    yield mtype, buf[off + 16], buf, off + 20, off + mlen
                    if not dump and not ack:
                        return
                off += (mlen + 3) & ~3

    def request(self, subsys, msg, flags, family=0, version=NFNETLINK_V0, attrs=b'', action='request'):
        """Send one request and return the list of decoded raw replies (for small answers)."""
        data, seq = self.message(subsys, msg, flags, family, version, attrs)
        self.send(data)
        try:
            return [(mtype, fam, bytes(buf[poff:end])) for mtype, fam, buf, poff, end in self.messages(seq, flags)]
        except NetlinkError as exc:
            raise NetlinkError(exc.errno, action)

    # dumps ---------------------------------------------------------------------------------
    def dump(self, family=0, attrs=b'', zero=False, decode=decode_ct, threaded=False):
        """Stream the conntrack table (or the part the kernel-side filter in ``attrs`` lets through):
        ``decode(buf, payload_offset, end, family)`` of every entry."""
        for items in self.dump_batches(family, attrs, zero, plain_batch(decode), threaded):
            yield from items

    def dump_batches(self, family=0, attrs=b'', zero=False, batch=None, threaded=False, share=False):
        """Stream the table as lists, one per datagram, of what the batch decoder ``batch`` (``batch_json``,
        ``batch_brief``, ``plain_batch(decode)``) makes of its entries.

        ``threaded``: receive in a second process (or thread). The kernel fills each dump datagram inside
        recv(), so the kernel's walk of the table overlaps with the decoding here. ``share``: the receiver
        process decodes every other datagram too (only for a batch decoder without side effects whose items
        are plain data, such as ``batch_json``, ``batch_brief``, ``plain_batch(decode_ct)``).
        """
        msg = IPCTNL_MSG_CT_GET_CTRZERO if zero else IPCTNL_MSG_CT_GET
        data, seq = self.message(NFNL_SUBSYS_CTNETLINK, msg, NLM_F_REQUEST | NLM_F_DUMP, family, NFNETLINK_V0, attrs)
        self.send(data)
        batch = batch or plain_batch(decode_ct)
        datagrams = _receiver(self, seq, batch if share else None) if threaded else None
        try:
            while True:
                if datagrams is None:
                    buf = self.buf
                    n = self._recv()
                else:
                    buf, n = datagrams.next()
                    if isinstance(buf, (Decoded, Joined)):  # decoded by the receiver process; n: the batch's code
                        if getattr(buf, 'entries', len(buf)):
                            yield buf
                        if n is not None:
                            if n:
                                raise NetlinkError(n)
                            return
                        continue
                items = []
                code = batch(buf, n, seq, items)
                if datagrams is not None:
                    datagrams.release(buf)
                if items:
                    yield items
                if code is not None:
                    if code:
                        raise NetlinkError(code)
                    return
        except NetlinkError as exc:
            if exc.errno == errno.EOPNOTSUPP and attrs:
                raise ConntrackError('this kernel cannot filter conntrack dumps by these fields '
                                     '(needs Linux 5.8+ for tuple filters): %s' % exc.msg)
            raise NetlinkError(exc.errno, 'listing the conntrack table')
        finally:
            if datagrams is not None:
                datagrams.stop()

    def dump_expect(self, family=0):
        data, seq = self.message(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET, NLM_F_REQUEST | NLM_F_DUMP, family)
        self.send(data)
        try:
            for _mtype, fam, buf, poff, end in self.messages(seq):
                yield decode_expect(buf, poff, end, fam)
        except NetlinkError as exc:
            raise NetlinkError(exc.errno, 'listing the expectation table')

    def stats_cpu(self):
        """Per-CPU conntrack statistics (conntrack -S), as a list of dicts with a ``cpu`` key."""
        replies = self.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP,
                               action='reading conntrack statistics')
        out = []
        for _mtype, _fam, payload in replies:
            stats = dict((key, 0) for key in STATS_KEYS)
            stats.update(_decode_stats(payload, 0, len(payload), CTA_STATS_NAMES))
            out.append(stats)
        # res_id carries the CPU number, but we dropped it with the header; CPUs come in order
        for cpu, stats in enumerate(out):
            stats['cpu'] = cpu
        return out

    def stats_global(self):
        """Entry count and limit as the kernel reports them (conntrack -C)."""
        replies = self.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST,
                               action='reading the conntrack count')
        names = {CTA_STATS_GLOBAL_ENTRIES: 'count', CTA_STATS_GLOBAL_MAX_ENTRIES: 'max'}
        for _mtype, _fam, payload in replies:
            return _decode_stats(payload, 0, len(payload), names)
        return {}

    def stats_expect_cpu(self):
        replies = self.request(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP,
                               action='reading expectation statistics')
        return [_decode_stats(payload, 0, len(payload), CTA_STATS_EXP_NAMES) for _m, _f, payload in replies]


# --- creating entries ---------------------------------------------------------------------------

_PROTOINFO_STATE = {6: (CTA_PROTOINFO_TCP, TCP_STATES), 132: (CTA_PROTOINFO_SCTP, SCTP_STATES),
                    33: (CTA_PROTOINFO_DCCP, DCCP_STATES)}


def reply_of(entry):
    """The reply tuple of an entry without NAT: the original, inverted (as conntrack -I does)."""
    reply = {'src': entry.get('dst'), 'dst': entry.get('src'), 'protonum': entry['protonum']}
    if entry.get('sport') is not None:
        reply['sport'] = entry.get('dport')
        reply['dport'] = entry.get('sport')
    if entry['protonum'] in ICMP_PROTOS:
        # echo request 8 -> reply 0 (ICMPv6 128 -> 129); other types keep their type
        itype = entry.get('icmp_type')
        reply['icmp_type'] = {8: 0, 13: 14, 15: 16, 17: 18, 128: 129}.get(itype, itype)
        reply['icmp_code'] = entry.get('icmp_code')
        reply['icmp_id'] = entry.get('icmp_id')
    return reply


def encode_ct_attrs(entry):
    """CTA_* attributes creating/updating ``entry`` (flat dict as decode_ct returns, plus ``status`` names).

    Needs family, protonum, src/dst and ports or ICMP fields; the reply tuple defaults to the inverse
    of the original. ``status`` gets CONFIRMED added: the kernel refuses to create others (EBUSY).
    """
    family = entry['family']
    orig = dict((k, entry.get(k)) for k in ('src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id'))
    orig['protonum'] = entry['protonum']
    if entry.get('reply_src') is not None:
        reply = dict((k[6:], entry.get(k)) for k in ('reply_src', 'reply_dst', 'reply_sport', 'reply_dport',
                                                     'reply_icmp_type', 'reply_icmp_code', 'reply_icmp_id'))
        reply['protonum'] = entry['protonum']
    else:
        reply = reply_of(entry)
    attrs = [encode_tuple(CTA_TUPLE_ORIG, family, orig), encode_tuple(CTA_TUPLE_REPLY, family, reply)]
    status = entry.get('status')
    if status is not None:
        value = status if isinstance(status, int) else status_value(status)
        attrs.append(nla_be32(CTA_STATUS, value | STATUS_VALUES['CONFIRMED']))
    if entry.get('timeout') is not None:
        attrs.append(nla_be32(CTA_TIMEOUT, entry['timeout']))
    if entry.get('state') is not None and entry['protonum'] in _PROTOINFO_STATE:
        container, names = _PROTOINFO_STATE[entry['protonum']]
        info = [nla_u8(1, names.index(entry['state']))]
        if entry['protonum'] == 132:  # SCTP: the kernel wants both verification tags (CTA_PROTOINFO_SCTP_VTAG_*)
            info += [nla_be32(2, entry.get('vtag_orig', 0)), nla_be32(3, entry.get('vtag_reply', 0))]
        attrs.append(nla_nested(CTA_PROTOINFO, nla_nested(container, *info)))
    if entry.get('mark') is not None:
        attrs.append(nla_be32(CTA_MARK, entry['mark']))
    if entry.get('zone'):
        attrs.append(nla_be16(CTA_ZONE, entry['zone']))
    if entry.get('labels'):
        bits = 0
        for bit in entry['labels']:
            bits |= 1 << bit
        attrs.append(nla(CTA_LABELS, bits.to_bytes(16, 'little')))
    return b''.join(attrs)


def create_many(conn, entries, batch_bytes=1 << 16):
    """Create many entries fast: CT_NEW messages packed into large datagrams, without per-entry ACKs.

    Returns the number of failures (the kernel reports only errors when no ACK is asked). Used by the
    lab, the tests and the benchmarks to build large tables.
    """
    failures = [0]
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
    sock = conn.sock

    def drain(block):
        sock.setblocking(block)
        try:
            while True:
                try:
                    n = sock.recv_into(conn.buf, conn.CHUNK)
                except (BlockingIOError, InterruptedError):
                    return
                off = 0
                while off + 16 <= n:
                    mlen, mtype = _HDR.unpack_from(conn.buf, off)[:2]
                    if mtype == NLMSG_ERROR and _ERR.unpack_from(conn.buf, off + 16)[0]:
                        failures[0] += 1
                    off += (mlen + 3) & ~3
                if block:
                    return
        finally:
            sock.setblocking(True)

    chunk = []
    size = 0
    for entry in entries:
        af = AF_INET if entry['family'] == 'ipv4' else AF_INET6
        data, _seq = conn.message(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, flags, af, NFNETLINK_V0,
                                  encode_ct_attrs(entry))
        chunk.append(data)
        size += len(data)
        if size >= batch_bytes:
            conn.send(b''.join(chunk))
            chunk, size = [], 0
            drain(False)
    if chunk:
        conn.send(b''.join(chunk))
    # a final request with an ACK marks the end of the kernel's answers
    data, seq = conn.message(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST | NLM_F_ACK)
    conn.send(data)
    while True:
        n = sock.recv_into(conn.buf, conn.CHUNK)
        off = 0
        done = False
        while off + 16 <= n:
            mlen, mtype, _f, mseq, _p = _HDR.unpack_from(conn.buf, off)
            if mtype == NLMSG_ERROR:
                if mseq == seq:
                    done = True
                elif _ERR.unpack_from(conn.buf, off + 16)[0]:
                    failures[0] += 1
            off += (mlen + 3) & ~3
        if done:
            return failures[0]
