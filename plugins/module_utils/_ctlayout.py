# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fixed-layout fast path: the layouts of common entries, and the batch decoders built on them.

A listing of 10^5-10^6 entries spends most of its time building dicts and then encoding them. The fixed
part of a common entry (both tuples -- addresses with ports, or with ICMP id/type/code --, the optional
zone, then STATUS/MARK/ID/USE/TIMEOUT, as ctnetlink_fill_info writes them) has a constant layout per
family, kind and zone: ``LAYOUTS``, the one table of them, with named offsets. A batch decoder checks the
attribute headers of an entry's fixed part all at once (its bytes as one integer, masked, against the
layout's constant headers), unpacks its values with one struct, and makes the JSON text of a listing
(``batch_json``), the few values a summary counts (``batch_brief``), or the entry dict (``batch_dict``)
from them; an entry of any other shape goes to the general decoder, ``_ctcodec.decode_ct``, which is the
reference these are tested against. The CT_DELETE request of a dumped entry is built here too: from the
bytes of its fixed part (``delete_request``), or attribute by attribute (``delete_request_of``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import socket
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    BE32, BE64, ERR, HDR, NFGEN, NFNL_HDRLEN, NFNL_MSG_MIN, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLA,
    NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_REQUEST, hdr_be, iter_attrs)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_ID, CTA_IP_V4_SRC, CTA_IP_V6_SRC, CTA_MARK,
    CTA_PROTOINFO, CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE, CTA_PROTO_DST_PORT, CTA_PROTO_ICMPV6_ID,
    CTA_PROTO_ICMP_ID, CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_STATUS, CTA_SYNPROXY, CTA_TIMEOUT, CTA_TIMESTAMP,
    CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP, CTA_TUPLE_IP, CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_TUPLE_REPLY,
    CTA_USE, CTA_ZONE, FAMILIES, FAMILY_NAMES, ICMP_PROTOS, NAT_BITS, PROTO_NAMES, PROTO_NUMBERS, PROTO_STATES,
    TCP_STATES, status_names, status_value)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import (
    add_nat, decode_counters, decode_ct, decode_ct_attrs, decode_protoinfo)

_ntop = socket.inet_ntop
_unpack_nla = NLA.unpack_from
_unpack_be32 = BE32.unpack_from
_unpack_be64 = BE64.unpack_from


# --- the layouts -------------------------------------------------------------------------------------
# Offsets count from the entry's first attribute (the payload after nfgenmsg); ``values`` names what the
# layout's struct unpacks, in order (``index`` is the same as {name: position}).
Layout = collections.namedtuple('Layout', (
    'size',       # bytes of the fixed part; the entry's other attributes follow it
    'mask', 'expect',  # the fixed part's bytes as one integer, & mask == expect: its headers are these
    'unpack',     # unpack_from(buf, start) -> the values
    'values', 'index',
    'tuple_len',  # bytes of CTA_TUPLE_ORIG (header included); CTA_TUPLE_REPLY follows, of the same size
    'num_at',     # where the CTA_PROTO_NUM value (u8) of the original tuple is
    'zone_at',    # where the CTA_ZONE attribute is (in a zoned layout), or would be
    'status_at',  # where CTA_STATUS is; CTA_MARK, CTA_ID, CTA_USE, CTA_TIMEOUT follow, 8 bytes each
    'id_at',      # where the CTA_ID attribute is
))
_TAIL = (('status', CTA_STATUS), ('mark', CTA_MARK), ('id', CTA_ID), ('use', CTA_USE), ('timeout', CTA_TIMEOUT))


def _tuple_items(af, icmp):
    """The two tuples of a layout: [(struct code, header (len, type) or the name of a value)], their length
    each and the length of their CTA_TUPLE_IP."""
    addr_len = 4 if af == AF_INET else 16
    src_t = CTA_IP_V4_SRC if af == AF_INET else CTA_IP_V6_SRC
    ip_len = 4 + 2 * (4 + addr_len)
    proto_len = 36 if icmp else 28
    tuple_len = 4 + ip_len + proto_len
    items = []
    for tup, prefix in ((CTA_TUPLE_ORIG, ''), (CTA_TUPLE_REPLY, 'reply_')):
        items += [('I', (tuple_len, tup | NLA_F_NESTED)), ('I', (ip_len, CTA_TUPLE_IP | NLA_F_NESTED)),
                  ('I', (4 + addr_len, src_t)), ('%ds' % addr_len, prefix + 'src'), ('I', (4 + addr_len, src_t + 1)),
                  ('%ds' % addr_len, prefix + 'dst'), ('I', (proto_len, CTA_TUPLE_PROTO | NLA_F_NESTED)),
                  ('I', (5, CTA_PROTO_NUM)), ('B3x', prefix + 'protonum')]
        if icmp:
            base = CTA_PROTO_ICMP_ID if af == AF_INET else CTA_PROTO_ICMPV6_ID
            items += [('I', (6, base)), ('H2x', prefix + 'icmp_id'), ('I', (5, base + 1)), ('B3x', prefix + 'icmp_type'),
                      ('I', (5, base + 2)), ('B3x', prefix + 'icmp_code')]
        else:
            items += [('I', (6, CTA_PROTO_SRC_PORT)), ('H2x', prefix + 'sport'), ('I', (6, CTA_PROTO_DST_PORT)),
                      ('H2x', prefix + 'dport')]
    return items, tuple_len, ip_len


def _layout(af, icmp, zoned):
    items, tuple_len, ip_len = _tuple_items(af, icmp)
    if zoned:
        items += [('I', (6, CTA_ZONE)), ('H2x', 'zone')]
    for name, atype in _TAIL:
        items += [('I', (8, atype)), ('I', name)]
    values = struct.Struct('>' + ''.join('4x' if isinstance(h, tuple) else code for code, h in items))
    mask = b''.join(b'\xff' * 4 if isinstance(h, tuple) else b'\0' * struct.calcsize('>' + code) for code, h in items)
    expect = b''.join(NLA.pack(*h) if isinstance(h, tuple) else b'\0' * struct.calcsize('>' + code)
                      for code, h in items)
    names = tuple(h for _code, h in items if not isinstance(h, tuple))
    status_at = 2 * tuple_len + (8 if zoned else 0)
    return Layout(values.size, int.from_bytes(mask, 'big'), int.from_bytes(expect, 'big'), values.unpack_from,
                  names, dict((name, i) for i, name in enumerate(names)), tuple_len, 4 + ip_len + 8, 2 * tuple_len,
                  status_at, status_at + 16)


# (family, icmp, zoned) -> Layout: addresses with ports, or with ICMP id/type/code; with CTA_ZONE or without
LAYOUTS = dict(((af, icmp, zoned), _layout(af, icmp, zoned))
               for af in (AF_INET, AF_INET6) for icmp in (False, True) for zoned in (False, True))
# the value indexes of the addresses in the layouts with ports (the raw address checks of a selection)
SRC_VALUE, DST_VALUE, REPLY_SRC_VALUE, REPLY_DST_VALUE = (LAYOUTS[AF_INET, False, False].index[name]
                                                          for name in ('src', 'dst', 'reply_src', 'reply_dst'))
ADDRESS_VALUES = {'src': SRC_VALUE, 'dst': DST_VALUE, 'reply_src': REPLY_SRC_VALUE, 'reply_dst': REPLY_DST_VALUE}

# what the batch decoders read of the table, per family: where the protocol number is (it says icmp), then
# per (family, icmp) where the zone header would be (it says zoned), then what the layout checks and unpacks
_NUM_AT = dict((af, LAYOUTS[af, False, False].num_at) for af in (AF_INET, AF_INET6))
_ZONE_AT = dict(((af, icmp), LAYOUTS[af, icmp, False].zone_at) for af in (AF_INET, AF_INET6) for icmp in (False, True))
_MATCH = dict((key, (lay.size, lay.mask, lay.expect, lay.unpack)) for key, lay in LAYOUTS.items())
_HDR_ZONE = hdr_be(6, CTA_ZONE)
_HDR_SYNPROXY = hdr_be(28, CTA_SYNPROXY | NLA_F_NESTED)
# the TCP state in CTA_PROTOINFO{CTA_PROTOINFO_TCP{CTA_PROTOINFO_TCP_STATE, ...}} at fixed offsets; the nested
# CTA_PROTOINFO_TCP header is compared by type only: its length depends on the kernel (44 or 48 bytes seen)
_PROTOINFO_TCP_STATE = struct.Struct('>4xIIB').unpack_from
_TYPE_PROTOINFO_TCP = hdr_be(0, CTA_PROTOINFO_TCP | NLA_F_NESTED)
_HDR_TCP_STATE = hdr_be(5, CTA_PROTOINFO_TCP_STATE)
_PROTOINFO_PROTOS = frozenset(PROTO_STATES)


def layout_batch(decode_fast, fallback):
    """A batch decoder: ``decode(buf, n, seq, out)`` appends what ``decode_fast(values, family, icmp, zoned, buf,
    rest, end)`` (or, for an entry outside the fixed layouts or refused by it, or for every entry when
    ``decode_fast`` is None, ``fallback(buf, start, end, family)``) makes of every entry of the datagram
    ``buf[:n]`` to ``out``. ``start`` is where the entry's attributes start, ``rest`` where those after its
    fixed part do. Returns None while the dump goes on, 0 at its end, an errno when the kernel answered with
    an error."""
    hdr_of = HDR.unpack_from
    err_of = ERR.unpack_from
    from_bytes = int.from_bytes
    match = _MATCH
    num_at = _NUM_AT
    zone_at = _ZONE_AT
    icmp_protos = ICMP_PROTOS
    zone_hdr = _HDR_ZONE
    be32 = _unpack_be32
    hdrlen, nfnl_hdrlen, nfnl_min, done, error = NLMSG_HDRLEN, NFNL_HDRLEN, NFNL_MSG_MIN, NLMSG_DONE, NLMSG_ERROR

    def decode(buf, n, seq, out):
        append = out.append
        off = 0
        # _nlwire.iter_messages' walk, inline: a generator step per entry costs more than the rest of a
        # JSON entry's decoding
        while off + hdrlen <= n:
            mlen, mtype, _mflags, mseq, _pid = hdr_of(buf, off)
            if mlen < hdrlen or off + mlen > n:
                break
            if mseq == seq:
                if mtype >= nfnl_min:
                    family = buf[off + hdrlen]
                    start = off + nfnl_hdrlen
                    end = off + mlen
                    item = None
                    at = num_at.get(family) if decode_fast is not None else None
                    if at is not None and start + at < end:
                        icmp = buf[start + at] in icmp_protos
                        zat = start + zone_at[family, icmp]
                        zoned = zat + 4 <= end and be32(buf, zat)[0] == zone_hdr
                        size, mask, expect, unpack = match[family, icmp, zoned]
                        if start + size <= end and from_bytes(buf[start:start + size], 'big') & mask == expect:
                            item = decode_fast(unpack(buf, start), family, icmp, zoned, buf, start + size, end)
                    append(fallback(buf, start, end, family) if item is None else item)
                elif mtype == done:
                    return 0
                elif mtype == error:
                    return -err_of(buf, off + hdrlen)[0]
            off += (mlen + 3) & ~3
        return None
    return decode


def plain_batch(decode):
    """A batch decoder (see layout_batch) that calls ``decode(buf, payload_offset, end, family)`` on every entry."""
    return layout_batch(None, decode)


# --- the decoders of the fixed layouts ----------------------------------------------------------------
# ``v``: the layout's values (see Layout.values). Ports layouts: src 0, dst 1, protonum 2, sport 3, dport 4,
# the reply's 5-9, zone 10 when zoned; ICMP layouts: src 0, dst 1, protonum 2, icmp_id 3, icmp_type 4,
# icmp_code 5, the reply's 6-11, zone 12 when zoned; then status, mark, id, use, timeout.
_ADDR_CACHE = {}
_ADDR_GET = _ADDR_CACHE.get


def _addr(af, raw):
    text = _ADDR_CACHE.get(raw)
    if text is None:
        if len(_ADDR_CACHE) > 65536:
            _ADDR_CACHE.clear()
        text = _ADDR_CACHE[raw] = _ntop(af, raw)
    return text


def fixed_entry(v, family, icmp, zoned, buf, p, end):
    """The entry dict of an entry of a fixed layout, from its values: what ``decode_ct`` makes of it, key
    order included (see _ctcodec.PORTS_KEY_ORDER)."""
    get = _ADDR_GET
    num = v[2]
    if icmp:
        t = 12 + zoned  # where STATUS is in the values
        status = v[t]
        entry = {'family': FAMILY_NAMES[family], 'zone': v[12] if zoned else 0, 'src': get(v[0]) or _addr(family, v[0]),
                 'dst': get(v[1]) or _addr(family, v[1]), 'icmp_id': v[3], 'icmp_type': v[4], 'icmp_code': v[5],
                 'protonum': num, 'proto': PROTO_NAMES.get(num) or str(num), 'reply_src': get(v[6]) or _addr(family, v[6]),
                 'reply_dst': get(v[7]) or _addr(family, v[7]), 'reply_icmp_id': v[9], 'reply_icmp_type': v[10],
                 'reply_icmp_code': v[11], 'status': status_names(status), 'mark': v[t + 1], 'id': v[t + 2],
                 'use': v[t + 3], 'timeout': v[t + 4]}
    else:
        t = 10 + zoned
        status = v[t]
        entry = {'family': FAMILY_NAMES[family], 'proto': PROTO_NAMES.get(num) or str(num), 'protonum': num,
                 'src': get(v[0]) or _addr(family, v[0]), 'dst': get(v[1]) or _addr(family, v[1]), 'sport': v[3],
                 'dport': v[4], 'reply_src': get(v[5]) or _addr(family, v[5]), 'reply_dst': get(v[6]) or _addr(family, v[6]),
                 'reply_sport': v[8], 'reply_dport': v[9], 'zone': v[10] if zoned else 0,
                 'status': status_names(status), 'mark': v[t + 1], 'id': v[t + 2], 'use': v[t + 3],
                 'timeout': v[t + 4]}
        if status & NAT_BITS:
            add_nat(entry, status)
    if p + 4 <= end:
        # the usual first attribute of the rest, inline: the TCP state
        alen, atype = _unpack_nla(buf, p)
        if atype & NLA_TYPE_MASK == CTA_PROTOINFO and alen >= 16:
            hdr, shdr, state = _PROTOINFO_TCP_STATE(buf, p)
            if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE and state < 10:
                entry['state'] = TCP_STATES[state]
                p += (alen + 3) & ~3
        if p + 4 <= end:
            decode_ct_attrs(buf, p, end, entry)  # counters, timestamps, SYNPROXY, any other protocol info...
    if icmp and status & NAT_BITS:
        add_nat(entry, status)
    return entry


_JSON_HEAD = ('{"family": "%s", "proto": %s, "protonum": %d, "src": "%s", "dst": "%s", "sport": %d, '
              '"dport": %d, "reply_src": "%s", "reply_dst": "%s", "reply_sport": %d, "reply_dport": %d, '
              '"zone": %d, "status": %s, "mark": %d, "id": %d, "use": %d, "timeout": %d')
_JSON_ICMP_HEAD = ('{"family": "%s", "zone": %d, "src": "%s", "dst": "%s", "icmp_id": %d, "icmp_type": %d, '
                   '"icmp_code": %d, "protonum": %d, "proto": %s, "reply_src": "%s", "reply_dst": "%s", '
                   '"reply_icmp_id": %d, "reply_icmp_type": %d, "reply_icmp_code": %d, "status": %s, "mark": %d, '
                   '"id": %d, "use": %d, "timeout": %d')
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


def _json_rest(parts, buf, p, end):
    """Append the JSON of the attributes after the fixed part; False when one needs the general decoder."""
    for atype, q, qend in iter_attrs(buf, p, end):
        if atype == CTA_PROTOINFO:
            hdr, shdr, state = _PROTOINFO_TCP_STATE(buf, q - 4) if qend - q >= 12 else (0, 0, 0)
            if hdr & 0xffff == _TYPE_PROTOINFO_TCP and shdr == _HDR_TCP_STATE and state < 10:
                parts.append(_JSON_TCP_STATE[state])
            else:
                info = {}
                decode_protoinfo(buf, q, qend, info)
                if 'state' in info:
                    parts.append(', "state": %s' % json.dumps(info['state']))
        elif atype == CTA_COUNTERS_ORIG:
            parts.append(', "packets": %d, "bytes": %d' % decode_counters(buf, q, qend))
        elif atype == CTA_COUNTERS_REPLY:
            parts.append(', "reply_packets": %d, "reply_bytes": %d' % decode_counters(buf, q, qend))
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
    """The JSON text of an entry of a fixed layout from its values, or None."""
    t = (12 if icmp else 10) + zoned  # where STATUS is in the values
    status = v[t]
    if status & NAT_BITS:  # the snat/dnat descriptions: from the entry dict
        return json.dumps(fixed_entry(v, family, icmp, zoned, buf, p, end))
    get = _ADDR_GET
    num = v[2]
    if icmp:
        rs, rd = v[6], v[7]
        text = _JSON_ICMP_HEAD % (
            FAMILY_NAMES[family], v[12] if zoned else 0, get(v[0]) or _addr(family, v[0]),
            get(v[1]) or _addr(family, v[1]), v[3], v[4], v[5], num, _JSON_PROTO.get(num) or _json_proto(num),
            get(rs) or _addr(family, rs), get(rd) or _addr(family, rd), v[9], v[10], v[11],
            _JSON_STATUS.get(status) or _json_status(status), v[t + 1], v[t + 2], v[t + 3], v[t + 4])
    else:
        rs, rd = v[5], v[6]
        text = _JSON_HEAD % (
            FAMILY_NAMES[family], _JSON_PROTO.get(num) or _json_proto(num), num, get(v[0]) or _addr(family, v[0]),
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
        if alen >= 16 and (q + 4 > end or (q + 28 == end and _unpack_be32(buf, q)[0] == _HDR_SYNPROXY)):
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


def decode_ct_json(buf, off, end, family):
    """The JSON text of one IPCTNL_MSG_CT_NEW payload, as ``batch_json`` writes it."""
    return json.dumps(decode_ct(buf, off, end, family))


def brief_of(entry):
    """The brief record of an entry dict (see decode_ct_brief)."""
    status = entry.get('status') or ()
    af = FAMILIES.get(entry.get('family'), 0)
    num = entry.get('protonum')
    if num is None:
        num = PROTO_NUMBERS.get(entry.get('proto'))
    src, dst, dport = entry.get('src'), entry.get('dst'), entry.get('dport')
    return ((af, num, entry.get('state'), entry.get('zone', 0), status if isinstance(status, int) else status_value(status)),
            socket.inet_pton(af, src) if af and src else src, socket.inet_pton(af, dst) if af and dst else dst,
            None if dport is None or num is None else num << 16 | dport)


def decode_ct_brief(buf, off, end, family):
    """What a summary counts of one entry, cheap to make and to count, as ``batch_brief`` makes it:
    ((family AF, protonum, state name or None, zone, status value), src bytes, dst bytes, protonum << 16 | dport
    or None). Addresses stay bytes: only the top ones are ever written as text."""
    return brief_of(decode_ct(buf, off, end, family))


def state_in(buf, p, end):
    """The protocol state (name) in the attributes buf[p:end] (CTA_PROTOINFO), or None."""
    for atype, q, qend in iter_attrs(buf, p, end):
        if atype == CTA_PROTOINFO:
            info = {}
            decode_protoinfo(buf, q, qend, info)
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
            state = state_in(buf, p, end)
    elif num in _PROTOINFO_PROTOS:
        state = state_in(buf, p, end)
    return (family, num, state, v[t - 1] if zoned else 0, v[t]), v[0], v[1], None if icmp else num << 16 | v[4]


batch_json = layout_batch(_json_fast, decode_ct_json)
batch_json.texts = True  # its items are JSON texts (a receiver process joins them: see _cttransport)
batch_brief = layout_batch(_brief_fast, decode_ct_brief)
batch_dict = layout_batch(fixed_entry, decode_ct)


# --- CT_DELETE of a dumped entry -------------------------------------------------------------------------
# The request names the entry by its original tuple, zone and id, copied from the dump as the kernel sent
# them: a request carrying the id deletes that entry and no other.
_DELETE_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
_NFGEN_OF = dict((af, NFGEN.pack(af, 0, 0)) for af in (AF_INET, AF_INET6))
# (family, icmp, zoned) -> (nfgenmsg, where the fixed part starts, tuple length, zone attribute or None, id),
# the offsets counted back from the end of the fixed part
_DELETE_AT = dict((key, (_NFGEN_OF[key[0]], lay.size, lay.tuple_len, lay.size - lay.zone_at if key[2] else None,
                         lay.size - lay.id_at)) for key, lay in LAYOUTS.items())
_pack_hdr = HDR.pack


def delete_request(buf, rest, family, icmp, zoned):
    """The CT_DELETE request (header included) for a dumped entry whose fixed part has the layout (``family``,
    ``icmp``, ``zoned``) and ends at ``rest`` (where its other attributes start: what ``layout_batch`` hands a
    fast decoder)."""
    nfgen, size, tuple_len, zone_back, id_back = _DELETE_AT[family, icmp, zoned]
    start = rest - size
    body = nfgen + buf[start:start + tuple_len]
    if zone_back is not None:
        body += buf[rest - zone_back:rest - zone_back + 8]
    body += buf[rest - id_back:rest - id_back + 8]
    return _pack_hdr(NLMSG_HDRLEN + len(body), _DELETE_TYPE, NLM_F_REQUEST, 0, 0) + body


def delete_request_of(buf, off, end, family):
    """The CT_DELETE request (header included) for any dumped CT_NEW payload buf[off:end], attribute by
    attribute. None when the message has no original tuple."""
    copied = {}
    for atype, p, pend in iter_attrs(buf, off, end):
        if atype in (CTA_TUPLE_ORIG, CTA_ZONE, CTA_ID):
            head = p - NLA_HDRLEN
            copied[atype] = bytes(buf[head:head + ((pend - head + 3) & ~3)])  # header and padding included
            if atype == CTA_ID:
                break  # ID comes after ORIG, REPLY, (ZONE), STATUS, MARK in ctnetlink_fill_info
    if CTA_TUPLE_ORIG not in copied:
        return None
    body = NFGEN.pack(family, 0, 0) + b''.join(copied.get(atype, b'') for atype in (CTA_TUPLE_ORIG, CTA_ZONE, CTA_ID))
    return _pack_hdr(NLMSG_HDRLEN + len(body), _DELETE_TYPE, NLM_F_REQUEST, 0, 0) + body


# --- the tuples of a CT_NEW creating an entry ------------------------------------------------------------
# The same layouts written instead of read: both tuples of an entry with ports or ICMP fields packed with one
# struct (the headers as constants), byte for byte what _ctcodec.encode_tuple makes of them.
def _tuple_packer(af, icmp):
    items, _tuple_len, _ip_len = _tuple_items(af, icmp)
    pack = struct.Struct('>' + ''.join(code for code, _h in items)).pack
    template = [int.from_bytes(NLA.pack(*h), 'big') if isinstance(h, tuple) else None for _code, h in items]
    names = tuple(h for _code, h in items if not isinstance(h, tuple))
    slots = tuple(i for i, value in enumerate(template) if value is None)
    return pack, template, names, slots


TUPLE_PACKERS = dict(((af, icmp), _tuple_packer(af, icmp)) for af in (AF_INET, AF_INET6) for icmp in (False, True))
_PTON = socket.inet_pton


def pack_tuples(entry):
    """CTA_TUPLE_ORIG and CTA_TUPLE_REPLY of a flat entry dict with every field of its layout (addresses, the
    protocol number in both directions' ``protonum``/``reply_protonum`` or ``protonum`` alone, ports or ICMP
    id/type/code), or None when it has not got them all (``_ctcodec.encode_tuple`` then encodes them)."""
    af = FAMILIES.get(entry.get('family'))
    num = entry.get('protonum')
    if af is None or num is None:
        return None
    pack, template, names, slots = TUPLE_PACKERS[af, num in ICMP_PROTOS]
    args = list(template)
    get = entry.get
    try:
        for slot, name in zip(slots, names):
            value = get(name)
            if value is None:
                if name != 'reply_protonum':
                    return None
                value = num
            elif name[-3:] == 'src' or name[-3:] == 'dst':
                value = _PTON(af, value)
            args[slot] = value
        return pack(*args)
    except (OSError, struct.error, TypeError):
        return None
