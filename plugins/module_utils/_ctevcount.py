# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counting conntrack events: their type, the summary of each type, destroyed flows' durations and counters.

An event is the same ctnetlink entry message as a dumped entry; only its attributes after the tuples differ
(ctnetlink_conntrack_event writes ORIG, REPLY, (ZONE), ID, STATUS, TIMEOUT, then protocol info, counters,
timestamps). Its type comes from the netlink header (``event_type``): IPCTNL_MSG_CT_NEW with
NLM_F_CREATE|NLM_F_EXCL is a new entry, IPCTNL_MSG_CT_NEW without them an update, IPCTNL_MSG_CT_DELETE a
destroyed one (the expectation messages use the same numbers and flags).

``EventCounter.consume`` counts one received datagram. Where every event counts (no filter, or a filter the
kernel applied exactly with a socket filter), an event of a fixed layout is read from its tuples at the
offsets of ``_ctlayout.LAYOUTS`` (``EVENT_LAYOUTS``: the same tuples, then ID and STATUS) into the brief
record ``_info.Summary`` counts; any other event, and every event a filter has to see, is decoded with
``_ctcodec.decode_ct`` and checked with ``Filter.match``, then counted the same way (``brief_of``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    HDR, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, NFNL_HDRLEN, NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_CTNETLINK_EXP,
    NLM_F_CREATE, NLM_F_EXCL, NLMSG_HDRLEN, hdr_be, iter_attrs)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_ID, CTA_STATUS, CTA_TIMESTAMP,
    CTA_ZONE, ICMP_PROTOS, PROTO_STATES)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import (
    decode_counters, decode_ct, decode_expect, decode_timestamps)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import LAYOUTS, brief_of, state_in
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctevspec import EVENT_TYPES
from ansible_collections.netfilter.conntrack.plugins.module_utils._info import Summary

NEW, UPDATE, DESTROY = 0, 1, 2
CREATE_EXCL = NLM_F_CREATE | NLM_F_EXCL
# the multicast groups (enum nfnetlink_groups) of each table's event types, in EVENT_TYPES order
GROUPS = {'conntrack': (1, 2, 3), 'expect': (4, 5, 6)}
SUBSYSTEMS = {'conntrack': NFNL_SUBSYS_CTNETLINK, 'expect': NFNL_SUBSYS_CTNETLINK_EXP}
# how long destroyed flows lived: the upper bounds (seconds) of the rows of the histogram
DURATION_BOUNDS = ((1, 'under_1s'), (10, 'under_10s'), (60, 'under_1m'), (600, 'under_10m'), (None, 'longer'))


def event_type(mtype, mflags):
    """NEW, UPDATE or DESTROY for an event message's nlmsg type and flags (None for any other message).
    The hot loop of ``EventCounter.consume`` makes the same decision inline."""
    msg = mtype & 0xff
    if msg == IPCTNL_MSG_CT_NEW:
        return NEW if mflags & CREATE_EXCL == CREATE_EXCL else UPDATE
    if msg == IPCTNL_MSG_CT_DELETE:
        return DESTROY
    return None


EventLayout = collections.namedtuple('EventLayout', 'size mask expect unpack')


def _event_layout(af, icmp, zoned):
    """The fixed start of an event of layout (``af``, ``icmp``, ``zoned``): the dump layout's tuples (and zone),
    then CTA_ID and CTA_STATUS. ``unpack`` gives (src, dst, protonum, [dport,] [zone,] status)."""
    lay = LAYOUTS[af, icmp, zoned]
    prefix = lay.status_at  # the tuples, and the zone of a zoned layout
    shift = 8 * (lay.size - prefix)
    tail_mask = 0xffffffff << 96 | 0xffffffff << 32
    tail = hdr_be(8, CTA_ID) << 96 | hdr_be(8, CTA_STATUS) << 32
    alen = 4 if af == AF_INET else 16
    fields = [(12, '%ds' % alen), (16 + alen, '%ds' % alen), (lay.num_at, 'B')]
    if not icmp:
        fields.append((lay.num_at + 16, 'H'))  # the original tuple's destination port
    if zoned:
        fields.append((lay.zone_at + 4, 'H'))
    fields.append((prefix + 12, 'I'))
    fmt, pos = '>', 0
    for offset, code in fields:
        fmt += '%dx%s' % (offset - pos, code) if offset > pos else code
        pos = offset + struct.calcsize('>' + code)
    return EventLayout(prefix + 16, (lay.mask >> shift) << 128 | tail_mask, (lay.expect >> shift) << 128 | tail,
                       struct.Struct(fmt).unpack_from)


EVENT_LAYOUTS = dict((key, _event_layout(*key)) for key in LAYOUTS)
_NUM_AT = dict((af, LAYOUTS[af, False, False].num_at) for af in (AF_INET, AF_INET6))
_ZONE_AT = dict(((af, icmp), LAYOUTS[af, icmp, False].zone_at) for af in (AF_INET, AF_INET6) for icmp in (False, True))
_HDR_ZONE = hdr_be(6, CTA_ZONE)


class DestroyStats(object):
    """How long destroyed flows lived (timestamps on) and what they carried (accounting on)."""

    def __init__(self):
        self.timed = 0
        self.total_ns = 0
        self.min_ns = self.max_ns = None
        self.histogram = [0] * len(DURATION_BOUNDS)
        self.counted = 0
        self.sums = [0, 0, 0, 0]  # packets, bytes, reply_packets, reply_bytes

    def add(self, entry):
        start, stop = entry.get('timestamp_start'), entry.get('timestamp_stop')
        if start and stop and stop >= start:
            ns = stop - start
            self.timed += 1
            self.total_ns += ns
            self.min_ns = ns if self.min_ns is None else min(self.min_ns, ns)
            self.max_ns = ns if self.max_ns is None else max(self.max_ns, ns)
            for i, (bound, _name) in enumerate(DURATION_BOUNDS):
                if bound is None or ns < bound * 1000000000:
                    self.histogram[i] += 1
                    break
        if 'packets' in entry or 'reply_packets' in entry:
            self.counted += 1
            sums = self.sums
            for i, key in enumerate(('packets', 'bytes', 'reply_packets', 'reply_bytes')):
                sums[i] += entry.get(key, 0)

    def result(self):
        out = {'duration': None, 'counters': None}
        if self.timed:
            out['duration'] = {
                'flows': self.timed, 'min': round(self.min_ns / 1e9, 6), 'max': round(self.max_ns / 1e9, 6),
                'mean': round(self.total_ns / 1e9 / self.timed, 6),
                'histogram': dict((name, count) for (_bound, name), count in zip(DURATION_BOUNDS, self.histogram))}
        if self.counted:
            packets, nbytes, reply_packets, reply_bytes = self.sums
            out['counters'] = {'flows': self.counted, 'packets': packets, 'bytes': nbytes,
                               'reply_packets': reply_packets, 'reply_bytes': reply_bytes,
                               'mean_bytes': round((nbytes + reply_bytes) / self.counted, 1)}
        return out


def _destroy_attrs(buf, p, end):
    """The counters and timestamps among the attributes buf[p:end] of a destroy event, as entry keys."""
    entry = {}
    for atype, q, qend in iter_attrs(buf, p, end):
        if atype == CTA_COUNTERS_ORIG:
            entry['packets'], entry['bytes'] = decode_counters(buf, q, qend)
        elif atype == CTA_COUNTERS_REPLY:
            entry['reply_packets'], entry['reply_bytes'] = decode_counters(buf, q, qend)
        elif atype == CTA_TIMESTAMP:
            decode_timestamps(buf, q, qend, entry)
    return entry


class EventCounter(object):
    """Counts the conntrack events of received datagrams by type (``consume``); ``result(elapsed)``.

    ``flt``: the Filter selecting the events that count; ``exact``: the kernel already applied it (or it is
    empty), so events of the fixed layouts are counted without decoding them whole."""

    FLUSH = 4096

    def __init__(self, flt, exact, top=10, sample=0):
        self.flt = flt
        self.pred = None if flt is None or flt.empty else flt.match
        self.exact = exact or self.pred is None
        self.summaries = [Summary(top) for _type in EVENT_TYPES]
        self.briefs = [[], [], []]
        self.destroyed = DestroyStats()
        self.sample_size = sample
        self.sample = []
        self.received = 0
        self.filtered_out = 0
        self.other = 0  # messages that are no event (none expected)

    def _decoded(self, buf, start, end, family, kind):
        """Decode, filter and count one event the slow way (an unusual layout, or a filter to check)."""
        entry = decode_ct(buf, start, end, family)
        if self.pred is not None and not self.pred(entry):
            self.filtered_out += 1
            return
        self.briefs[kind].append(brief_of(entry))
        if kind == DESTROY:
            self.destroyed.add(entry)
        if len(self.sample) < self.sample_size:
            entry['event'] = EVENT_TYPES[kind]
            self.sample.append(entry)

    def consume(self, buf, n):
        """Count the events of the datagram buf[:n] (the hot path: one call per received datagram)."""
        off = 0
        hdr_of = HDR.unpack_from
        briefs = self.briefs
        while off + NLMSG_HDRLEN <= n:
            mlen, mtype, mflags, _seq, _pid = hdr_of(buf, off)
            if mlen < NLMSG_HDRLEN or off + mlen > n:
                break
            msg = mtype & 0xff
            if mtype >> 8 != NFNL_SUBSYS_CTNETLINK or msg not in (IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE):
                self.other += 1
                off += (mlen + 3) & ~3
                continue
            kind = DESTROY if msg else (NEW if mflags & CREATE_EXCL == CREATE_EXCL else UPDATE)
            self.received += 1
            family = buf[off + NLMSG_HDRLEN]
            start = off + NFNL_HDRLEN
            end = off + mlen
            off += (mlen + 3) & ~3
            at = _NUM_AT.get(family)
            if self.exact and at is not None and start + at < end:
                icmp = buf[start + at] in ICMP_PROTOS
                zat = start + _ZONE_AT[family, icmp]
                zoned = zat + 4 <= end and int.from_bytes(buf[zat:zat + 4], 'big') == _HDR_ZONE
                size, mask, expect, unpack = EVENT_LAYOUTS[family, icmp, zoned]
                if start + size <= end and int.from_bytes(buf[start:start + size], 'big') & mask == expect:
                    v = unpack(buf, start)
                    num = v[2]
                    state = state_in(buf, start + size, end) if num in PROTO_STATES else None
                    briefs[kind].append(((family, num, state, v[-2] if zoned else 0, v[-1]), v[0], v[1],
                                         None if icmp else num << 16 | v[3]))
                    if kind == DESTROY:
                        self.destroyed.add(_destroy_attrs(buf, start + size, end))
                    if len(self.sample) < self.sample_size:
                        entry = decode_ct(buf, start, end, family)
                        entry['event'] = EVENT_TYPES[kind]
                        self.sample.append(entry)
                    if len(briefs[kind]) >= self.FLUSH:
                        self.flush()
                    continue
            self._decoded(buf, start, end, family, kind)
            if len(briefs[kind]) >= self.FLUSH:
                self.flush()

    def flush(self):
        for kind, briefs in enumerate(self.briefs):
            if briefs:
                self.summaries[kind].consume(briefs)
                del briefs[:]

    def count(self, kind):
        return self.summaries[kind].total + len(self.briefs[kind])

    def result(self, types, elapsed):
        """{type: {count, rate, summary keys...}} for the ``types`` listened to, and the destroyed flows' extras."""
        self.flush()
        out = {}
        for name in types:
            kind = EVENT_TYPES.index(name)
            summary = self.summaries[kind].result()
            total = summary.pop('total')
            row = {'count': total, 'rate': rate(total, elapsed)}
            row.update(summary)
            if kind == DESTROY:
                row.update(self.destroyed.result())
            out[name] = row
        return out


class ExpectCounter(object):
    """Counts expectation events (``conntrack -E expect``) by type, helper and expected protocol."""

    def __init__(self, sample=0):
        self.rows = [{'count': 0, 'by_helper': {}, 'by_proto': {}} for _type in EVENT_TYPES]
        self.sample_size = sample
        self.sample = []
        self.received = 0
        self.filtered_out = 0
        self.other = 0

    def consume(self, buf, n):
        off = 0
        while off + NLMSG_HDRLEN <= n:
            mlen, mtype, mflags, _seq, _pid = HDR.unpack_from(buf, off)
            if mlen < NLMSG_HDRLEN or off + mlen > n:
                break
            kind = event_type(mtype, mflags) if mtype >> 8 == NFNL_SUBSYS_CTNETLINK_EXP else None
            if kind is None:
                self.other += 1
            else:
                self.received += 1
                exp = decode_expect(buf, off + NFNL_HDRLEN, off + mlen, buf[off + NLMSG_HDRLEN])
                row = self.rows[kind]
                row['count'] += 1
                helper = exp.get('helper') or 'none'
                row['by_helper'][helper] = row['by_helper'].get(helper, 0) + 1
                proto = (exp.get('tuple') or {}).get('proto') or 'unknown'
                row['by_proto'][proto] = row['by_proto'].get(proto, 0) + 1
                if len(self.sample) < self.sample_size:
                    exp['event'] = EVENT_TYPES[kind]
                    self.sample.append(exp)
            off += (mlen + 3) & ~3

    def count(self, kind):
        return self.rows[kind]['count']

    def result(self, types, elapsed):
        out = {}
        for name in types:
            row = dict(self.rows[EVENT_TYPES.index(name)])
            row['rate'] = rate(row['count'], elapsed)
            out[name] = row
        return out


def rate(count, elapsed):
    """Events per second, one decimal."""
    return round(count / elapsed, 1) if elapsed > 0 else 0.0
