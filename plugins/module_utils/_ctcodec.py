# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The conntrack codec: each ctnetlink structure's encoder and decoder side by side, and decode_ct.

Structures, in this order: the tuple, the protocol info (state), NAT, counters, labels, timestamps, the
entry (``decode_ct``, ``encode_ct_attrs``), expectations and statistics. ``decode_ct`` is the general
decoder: any entry, attribute by attribute, into one flat dict. It is the reference the fixed-layout
decoders of ``_ctlayout`` are tested against (same dicts, same key order, same JSON text), and what they
hand every entry of another shape to.

Entry dicts use the names of the filter options (``src``, ``dst``, ``sport``, ``reply_src``, ...), so what
a user filters on and what they read back match. pyroute2 is the library of record for the protocol: the
tests check this codec against pyroute2's message classes on the same kernel data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    BE16, BE32, BE64, NLA, NLA_HDRLEN, NLA_TYPE_MASK, cstring, first_string, iter_attrs, nla, nla_be16,
    nla_be32, nla_nested, nla_u8)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, CTA_COUNTERS32_BYTES, CTA_COUNTERS32_PACKETS, CTA_COUNTERS_BYTES, CTA_COUNTERS_ORIG,
    CTA_COUNTERS_PACKETS, CTA_COUNTERS_REPLY, CTA_EXPECT_CLASS, CTA_EXPECT_FLAGS, CTA_EXPECT_FN,
    CTA_EXPECT_HELP_NAME, CTA_EXPECT_ID, CTA_EXPECT_MASK, CTA_EXPECT_MASTER, CTA_EXPECT_TIMEOUT, CTA_EXPECT_TUPLE,
    CTA_EXPECT_ZONE, CTA_HELP, CTA_HELP_NAME, CTA_ID, CTA_IP_V4_DST, CTA_IP_V4_SRC, CTA_IP_V6_DST, CTA_IP_V6_SRC,
    CTA_LABELS, CTA_LABELS_MASK, CTA_MARK, CTA_NAT_DST, CTA_NAT_PROTO, CTA_NAT_SRC, CTA_NAT_V4_MAXIP,
    CTA_NAT_V4_MINIP, CTA_NAT_V6_MAXIP, CTA_NAT_V6_MINIP, CTA_PROTOINFO, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_SCTP,
    CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, CTA_PROTOINFO_SCTP_VTAG_REPLY, CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL,
    CTA_PROTOINFO_TCP_FLAGS_REPLY, CTA_PROTOINFO_TCP_STATE,
    CTA_PROTONAT_PORT_MAX, CTA_PROTONAT_PORT_MIN, CTA_PROTO_DST_PORT, CTA_PROTO_ICMPV6_CODE, CTA_PROTO_ICMPV6_ID,
    CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_NUM,
    CTA_PROTO_SRC_PORT, CTA_SECCTX, CTA_SECCTX_NAME, CTA_SECMARK, CTA_STATUS, CTA_SYNPROXY, CTA_TIMEOUT,
    CTA_TIMESTAMP, CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP, CTA_TUPLE_IP, CTA_TUPLE_MASTER, CTA_TUPLE_ORIG,
    CTA_TUPLE_PROTO, CTA_TUPLE_REPLY, CTA_TUPLE_ZONE, CTA_USE, CTA_ZONE, EXPECT_FLAGS, FAMILY_NAMES, ICMP_PROTOS,
    NAT_BITS, PROTO_NAMES, PROTO_STATES, STATUS_VALUES, af_of, status_names, status_value)

_ntop = socket.inet_ntop
_unpack_nla = NLA.unpack_from
_unpack_be16 = BE16.unpack_from
_unpack_be32 = BE32.unpack_from
_unpack_be64 = BE64.unpack_from


# --- tuple -----------------------------------------------------------------------------------------

def encode_tuple(atype, family, tup):
    """Encode a tuple dict (``src``, ``dst``, ``protonum``, ports or ICMP fields, ``zone``) as CTA_TUPLE_*."""
    parts = []
    ip = []
    fam_af = af_of(family)
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


def decode_tuple(buf, off, end, entry, prefix):
    """Decode a CTA_TUPLE_* payload into ``entry`` with keys ``<prefix>src`` etc. Returns the protonum.

    Every entry has two tuples: the loops are inline (no iter_attrs), which is measurably faster."""
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


# --- protocol info: the TCP/SCTP/DCCP state --------------------------------------------------------
# protocol number -> its CTA_PROTOINFO_* container; the state attribute has the same number in each
PROTOINFO_CONTAINERS = {6: CTA_PROTOINFO_TCP, 132: CTA_PROTOINFO_SCTP, 33: CTA_PROTOINFO_DCCP}
_STATE_ATTR = CTA_PROTOINFO_TCP_STATE  # = CTA_PROTOINFO_SCTP_STATE = CTA_PROTOINFO_DCCP_STATE
_STATES_OF_CONTAINER = dict((container, PROTO_STATES[num]) for num, container in PROTOINFO_CONTAINERS.items())


# TCP window-tracking flags (IP_CT_TCP_FLAG_*, per direction). An entry created from userspace has seen none of
# the connection's segments, so its windows are unknown: BE_LIBERAL makes the kernel accept segments outside
# the window it would compute (only out-of-window RSTs stay INVALID), SACK_PERM lets it read SACK blocks.
# conntrack -I and -U send both, in both directions, under a mask of the same bits (the kernel's other bits
# are kept: seen[dir].flags = flags & mask | old & ~mask).
TCP_FLAG_WINDOW_SCALE, TCP_FLAG_SACK_PERM, TCP_FLAG_CLOSE_INIT, TCP_FLAG_BE_LIBERAL = 0x01, 0x02, 0x04, 0x08
TCP_FLAGS_CREATED = TCP_FLAG_BE_LIBERAL | TCP_FLAG_SACK_PERM
# conntrack -I/-U also mark an entry given one of these closing states as closed by its sender (CLOSE_INIT),
# so that a new SYN on the same tuple reopens the connection instead of being judged out of state.
TCP_CLOSE_INIT_STATES = frozenset(('TIME_WAIT', 'CLOSE', 'SYN_SENT2'))


def encode_protoinfo(protonum, state, vtag_orig=0, vtag_reply=0, tcp_flags=None):
    """CTA_PROTOINFO setting the state (a name) of a TCP/SCTP/DCCP entry. SCTP: the kernel wants both
    verification tags with the state. TCP with ``tcp_flags``: those window-tracking flags are set in both
    directions (CTA_PROTOINFO_TCP_FLAGS_ORIGINAL/REPLY, flags and mask alike)."""
    info = [nla_u8(_STATE_ATTR, PROTO_STATES[protonum].index(state))]
    if protonum == 132:
        info += [nla_be32(CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, vtag_orig), nla_be32(CTA_PROTOINFO_SCTP_VTAG_REPLY, vtag_reply)]
    elif protonum == 6 and tcp_flags:
        if state in TCP_CLOSE_INIT_STATES:
            tcp_flags |= TCP_FLAG_CLOSE_INIT
        info += [encode_tcp_flags(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, tcp_flags),
                 encode_tcp_flags(CTA_PROTOINFO_TCP_FLAGS_REPLY, tcp_flags)]
    return nla_nested(CTA_PROTOINFO, nla_nested(PROTOINFO_CONTAINERS[protonum], *info))


def encode_tcp_flags(atype, flags, mask=None):
    """CTA_PROTOINFO_TCP_FLAGS_*: struct nf_ct_tcp_flags {u8 flags; u8 mask}; the mask defaults to the flags."""
    return nla(atype, bytes((flags, flags if mask is None else mask)))


def decode_tcp_flags(buf, off, end):
    """(original, reply) window-tracking flags of a CTA_PROTOINFO payload (None where absent): the kernel dumps
    each direction's flags with a mask of 0."""
    flags = [None, None]
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype != CTA_PROTOINFO_TCP:
            continue
        for btype, q, qend in iter_attrs(buf, p, pend):
            if btype in (CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, CTA_PROTOINFO_TCP_FLAGS_REPLY) and qend - q >= 1:
                flags[btype - CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] = buf[q]
    return tuple(flags)


def decode_protoinfo(buf, off, end, entry):
    """The ``state`` of a CTA_PROTOINFO payload into ``entry`` (a name; the number as text if unknown)."""
    for atype, p, pend in iter_attrs(buf, off, end):
        names = _STATES_OF_CONTAINER.get(atype)
        if names is None:
            continue
        for btype, q, _qend in iter_attrs(buf, p, pend):
            if btype == _STATE_ATTR:
                value = buf[q]
                entry['state'] = names[value] if value < len(names) else str(value)


# --- NAT: CTA_NAT_SRC/DST (written on create), and the translation a dumped entry's tuples show ----------
_NAT_ADDRS = {CTA_NAT_V4_MINIP: ('min_ip', AF_INET, 4), CTA_NAT_V4_MAXIP: ('max_ip', AF_INET, 4),
              CTA_NAT_V6_MINIP: ('min_ip', AF_INET6, 16), CTA_NAT_V6_MAXIP: ('max_ip', AF_INET6, 16)}


def encode_nat(entry):
    """CTA_NAT_SRC/CTA_NAT_DST of ``entry``'s ``nat_src``/``nat_dst`` dicts (``ip``, optional ``port``)."""
    out = b''
    for key, atype in (('nat_src', CTA_NAT_SRC), ('nat_dst', CTA_NAT_DST)):
        nat = entry.get(key)
        if not nat:
            continue
        af = af_of(entry['family'])
        lo_t, hi_t = (CTA_NAT_V4_MINIP, CTA_NAT_V4_MAXIP) if af == AF_INET else (CTA_NAT_V6_MINIP, CTA_NAT_V6_MAXIP)
        parts = [nla(lo_t, socket.inet_pton(af, nat['ip'])), nla(hi_t, socket.inet_pton(af, nat['ip']))]
        if nat.get('port') is not None:
            parts.append(nla_nested(CTA_NAT_PROTO, nla_be16(CTA_PROTONAT_PORT_MIN, nat['port']),
                                    nla_be16(CTA_PROTONAT_PORT_MAX, nat['port'])))
        out += nla_nested(atype, *parts)
    return out


def decode_nat(buf, off, end):
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


# --- counters, labels, timestamps ------------------------------------------------------------------

def decode_counters(buf, off, end):
    """(packets, bytes) of a CTA_COUNTERS_* payload (64-bit or 32-bit counters)."""
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


LABEL_BITS = 128  # the kernel's label bitmap, little endian
LABEL_BYTES = LABEL_BITS // 8


def label_bits(labels):
    """The bitmap (int) of a list of label bit numbers."""
    bits = 0
    for bit in labels or ():
        bits |= 1 << bit
    return bits


def encode_labels(bits, mask=None):
    """CTA_LABELS of a bitmap, and with ``mask`` CTA_LABELS_MASK (which bits an update replaces)."""
    attrs = nla(CTA_LABELS, bits.to_bytes(LABEL_BYTES, 'little'))
    if mask is not None:
        attrs += nla(CTA_LABELS_MASK, mask.to_bytes(LABEL_BYTES, 'little'))
    return attrs


def decode_labels(buf, off, end):
    """The label bit numbers of a CTA_LABELS payload (an empty list when none is set)."""
    raw = bytes(buf[off:end])
    bits = int.from_bytes(raw, 'little')
    return [i for i in range(len(raw) * 8) if bits >> i & 1] if bits else []


def decode_timestamps(buf, off, end, entry):
    for btype, p, _pend in iter_attrs(buf, off, end):
        if btype == CTA_TIMESTAMP_START:
            entry['timestamp_start'] = _unpack_be64(buf, p)[0]
        elif btype == CTA_TIMESTAMP_STOP:
            entry['timestamp_stop'] = _unpack_be64(buf, p)[0]


# --- the entry --------------------------------------------------------------------------------------
# The key order of an entry with ports (TCP, UDP, SCTP, DCCP, UDP-Lite), as conntrack_info has always listed
# them: protocol, tuples, zone and the attributes every entry has, the NAT description, then the rest in the
# kernel's order. Every other entry lists its keys in the kernel's order (family and zone first, the NAT
# description last).
PORTS_KEY_ORDER = ('family', 'proto', 'protonum', 'src', 'dst', 'sport', 'dport', 'reply_src', 'reply_dst',
                   'reply_sport', 'reply_dport', 'zone', 'status', 'mark', 'id', 'use', 'timeout', 'dnat', 'snat')


def new_entry(family):
    """The skeleton every decoded entry starts from."""
    return {'family': FAMILY_NAMES.get(family, str(family)), 'zone': 0}


def decode_ct(buf, off, end, family):
    """Decode one IPCTNL_MSG_CT_NEW payload (attributes after nfgenmsg) into a flat entry dict."""
    entry = new_entry(family)
    status = decode_ct_attrs(buf, off, end, entry)
    entry.setdefault('proto', 'unknown')
    if status & NAT_BITS:
        add_nat(entry, status)
    if 'sport' in entry:
        ordered = dict((key, entry[key]) for key in PORTS_KEY_ORDER if key in entry)
        ordered.update(entry)
        return ordered
    return entry


def decode_ct_attrs(buf, off, end, entry):
    """Decode the CTA_* attributes in buf[off:end] into ``entry``: all of an entry's, or those after the
    fixed part a fixed-layout decoder has read. Returns the CTA_STATUS value found (0 when none)."""
    status = 0
    while off + 4 <= end:
        alen, atype = _unpack_nla(buf, off)
        if alen < 4:
            break
        atype &= NLA_TYPE_MASK
        p = off + NLA_HDRLEN
        pend = off + alen
        if atype == CTA_STATUS:
            status = _unpack_be32(buf, p)[0]
            entry['status'] = status_names(status)
        elif atype == CTA_MARK:
            entry['mark'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_ID:
            entry['id'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_USE:
            entry['use'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_TIMEOUT:
            entry['timeout'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_PROTOINFO:
            decode_protoinfo(buf, p, pend, entry)
        elif atype == CTA_ZONE:
            entry['zone'] = _unpack_be16(buf, p)[0]
        elif atype == CTA_SYNPROXY:
            pass
        elif atype == CTA_TUPLE_ORIG:
            protonum = decode_tuple(buf, p, pend, entry, '')
            entry['protonum'] = protonum
            entry['proto'] = PROTO_NAMES.get(protonum) or str(protonum)
        elif atype == CTA_TUPLE_REPLY:
            decode_tuple(buf, p, pend, entry, 'reply_')
        elif atype == CTA_COUNTERS_ORIG:
            entry['packets'], entry['bytes'] = decode_counters(buf, p, pend)
        elif atype == CTA_COUNTERS_REPLY:
            entry['reply_packets'], entry['reply_bytes'] = decode_counters(buf, p, pend)
        elif atype == CTA_HELP:
            entry['helper'] = first_string(buf, p, pend, CTA_HELP_NAME)
        elif atype == CTA_TIMESTAMP:
            decode_timestamps(buf, p, pend, entry)
        elif atype == CTA_LABELS:
            labels = decode_labels(buf, p, pend)
            if labels:
                entry['labels'] = labels
        elif atype == CTA_SECMARK:
            entry['secmark'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_SECCTX:
            entry['secctx'] = first_string(buf, p, pend, CTA_SECCTX_NAME)
        elif atype == CTA_NAT_SRC:
            entry['nat_src'] = decode_nat(buf, p, pend)
        elif atype == CTA_NAT_DST:
            entry['nat_dst'] = decode_nat(buf, p, pend)
        elif atype == CTA_TUPLE_MASTER:
            master = {}
            decode_tuple(buf, p, pend, master, '')
            entry['master'] = master
        off += (alen + 3) & ~3
    return status


def encode_ct_attrs(entry):
    """CTA_* attributes creating/updating ``entry`` (flat dict as decode_ct returns, plus ``status`` names).

    Needs family, protonum, src/dst and ports or ICMP fields; the reply tuple defaults to the inverse
    of the original. ``status`` gets CONFIRMED added: the kernel refuses to create others (EBUSY).
    """
    return encode_ct_tuples(entry) + encode_ct_rest(entry)


def encode_ct_tuples(entry):
    """CTA_TUPLE_ORIG and CTA_TUPLE_REPLY of ``entry`` (see encode_ct_attrs)."""
    family = entry['family']
    orig = dict((k, entry.get(k)) for k in ('src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id'))
    orig['protonum'] = entry['protonum']
    if entry.get('reply_src') is not None:
        reply = dict((k[6:], entry.get(k)) for k in ('reply_src', 'reply_dst', 'reply_sport', 'reply_dport',
                                                     'reply_icmp_type', 'reply_icmp_code', 'reply_icmp_id'))
        reply['protonum'] = entry['protonum']
    else:
        reply = reply_of(entry)
    # a zone of one direction only goes inside that direction's tuple (CTA_TUPLE_ZONE)
    orig['zone'] = entry.get('tuple_zone')
    reply['zone'] = entry.get('reply_tuple_zone')
    return encode_tuple(CTA_TUPLE_ORIG, family, orig) + encode_tuple(CTA_TUPLE_REPLY, family, reply)


_STATUS_ATTRS = {}
_PROTOINFO_ATTRS = {}


def encode_ct_rest(entry):
    """The attributes of ``entry`` after its tuples: status, timeout, protocol info, mark, zone, labels (the
    status and protocol info attributes of a table's few distinct values are made once)."""
    attrs = []
    status = entry.get('status')
    if status is not None:
        key = status if isinstance(status, int) else tuple(status)
        attr = _STATUS_ATTRS.get(key)
        if attr is None:
            value = status if isinstance(status, int) else status_value(status)
            attr = _STATUS_ATTRS[key] = nla_be32(CTA_STATUS, value | STATUS_VALUES['CONFIRMED'])
        attrs.append(attr)
    if entry.get('timeout') is not None:
        attrs.append(nla_be32(CTA_TIMEOUT, entry['timeout']))
    if entry.get('state') is not None and entry['protonum'] in PROTOINFO_CONTAINERS:
        # a created TCP entry gets the window-tracking flags conntrack -I gives it (see TCP_FLAGS_CREATED)
        key = (entry['protonum'], entry['state'], entry.get('vtag_orig', 0), entry.get('vtag_reply', 0),
               entry.get('tcp_flags', TCP_FLAGS_CREATED))
        attr = _PROTOINFO_ATTRS.get(key)
        if attr is None:
            attr = _PROTOINFO_ATTRS[key] = encode_protoinfo(*key)
        attrs.append(attr)
    if entry.get('mark') is not None:
        attrs.append(nla_be32(CTA_MARK, entry['mark']))
    if entry.get('zone'):
        attrs.append(nla_be16(CTA_ZONE, entry['zone']))
    if entry.get('labels'):
        attrs.append(encode_labels(label_bits(entry['labels'])))
    return b''.join(attrs)


# --- expectations ----------------------------------------------------------------------------------
_EXPECT_TUPLES = {CTA_EXPECT_MASTER: 'master', CTA_EXPECT_TUPLE: 'tuple', CTA_EXPECT_MASK: 'mask'}


def encode_expect_identity(exp):
    """CTA_EXPECT_* attributes naming one expectation (a dict as decode_expect returns): its tuple, zone, id."""
    attrs = encode_tuple(CTA_EXPECT_TUPLE, exp['family'], dict(exp['tuple']))
    if exp.get('zone'):
        attrs += nla_be16(CTA_EXPECT_ZONE, exp['zone'])
    if exp.get('id') is not None:
        attrs += nla_be32(CTA_EXPECT_ID, exp['id'])
    return attrs


def decode_expect(buf, off, end, family):
    """Decode one IPCTNL_MSG_EXP_NEW payload into a dict."""
    exp = {'family': FAMILY_NAMES.get(family, str(family))}
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype in _EXPECT_TUPLES:
            tup = {}
            proto = decode_tuple(buf, p, pend, tup, '')
            if proto is not None and atype != CTA_EXPECT_MASK:
                tup['proto'] = PROTO_NAMES.get(proto) or str(proto)
                tup['protonum'] = proto
            exp[_EXPECT_TUPLES[atype]] = tup
        elif atype == CTA_EXPECT_TIMEOUT:
            exp['timeout'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_ID:
            exp['id'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_HELP_NAME:
            exp['helper'] = cstring(buf, p, pend)
        elif atype == CTA_EXPECT_ZONE:
            exp['zone'] = _unpack_be16(buf, p)[0]
        elif atype == CTA_EXPECT_FLAGS:
            flags = _unpack_be32(buf, p)[0]
            exp['flags'] = [name for bit, name in enumerate(EXPECT_FLAGS) if flags & (1 << bit)]
        elif atype == CTA_EXPECT_CLASS:
            exp['class'] = _unpack_be32(buf, p)[0]
        elif atype == CTA_EXPECT_FN:
            exp['fn'] = cstring(buf, p, pend)
    exp.setdefault('zone', 0)
    exp.setdefault('flags', [])
    return exp


# --- statistics ------------------------------------------------------------------------------------

def decode_stats(buf, off, end, names):
    """{name: value} of the u32 CTA_STATS_* attributes in buf[off:end] whose numbers ``names`` maps."""
    stats = {}
    for atype, p, pend in iter_attrs(buf, off, end):
        name = names.get(atype)
        if name is not None and pend - p >= 4:
            stats[name] = _unpack_be32(buf, p)[0]
    return stats
