# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The saved form of a conntrack table: the kernel's own ctnetlink messages, packed into one string.

conntrack_info ``saved: true`` returns it, conntrack_entry ``saved:`` restores it. A table of 10^5 entries given
as a list of dicts costs ansible-core more to read than ``conntrack -R`` takes to restore it; as one string it
costs a single JSON string decode, and the entries go back to the kernel as the kernel wrote them.

The text is one header line, then the base64 of the zlib-compressed messages::

    NFCT-SAVED 1 <entries> <bytes> <sha256 of the messages, hex>
    eJzt...

Each message is an nfnetlink conntrack message (nlmsghdr with sequence number and port 0, nfgenmsg, then the
top-level attributes of ``KEPT``: the ones a create takes; counters, ids, use counts and timestamps are dropped).
``parse`` checks everything before anything is sent: the header, the base64, the size (the decompression stops
at the size the header gives), the checksum, every message's length, family and version, every top-level
attribute's bounds and type, and that each message has both tuples and a timeout. Nothing here does I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import struct
import zlib

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    BE32, HDR, IPCTNL_MSG_CT_NEW, NFGEN, NFNETLINK_V0, NFNL_HDRLEN, NFNL_SUBSYS_CTNETLINK, NLA, NLA_HDRLEN, NLA_TYPE_MASK)

MAGIC = 'NFCT-SAVED'
VERSION = 1
MAX_BYTES = 1 << 31  # 2 GiB of messages: ~10^7 entries, beyond any nf_conntrack_max in use
# the longest saved message: an IPv6 entry with every kept attribute is under 400 bytes; the header's size must fit
# its count of these, so a short text cannot make the host inflate gigabytes
MAX_MESSAGE = 1024

CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_TIMEOUT, CTA_ZONE, CTA_LABELS = 1, 2, 3, 7, 18, 22
# the attributes a create takes: tuples, status, protoinfo, help, timeout, mark, seq adjust, zone, labels, synproxy
KEPT = frozenset((1, 2, 3, 4, 5, 7, 8, 15, 16, 18, 22, 24))
REQUIRED = ((CTA_TUPLE_ORIG, 'the original tuple'), (CTA_TUPLE_REPLY, 'the reply tuple'), (CTA_TIMEOUT, 'a timeout'))
FAMILIES = (2, 10)  # AF_INET, AF_INET6
CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
LAYOUTS_PER_SIZE = 8  # the layouts kept per message size (a table holds a few kinds of entries)

_unpack_len = struct.Struct('=I').unpack_from
_unpack_nla = NLA.unpack_from
_pack_hdr = HDR.pack


def strip(buf, start, end, family):
    """The saved message of a dumped entry whose attributes are ``buf[start:end]``: an nlmsghdr (type CT_NEW,
    sequence number and port 0), the nfgenmsg of ``family``, and only the attributes of ``KEPT``."""
    head, runs = _strip_plan(buf, start, end, family)[2:]
    return head + b''.join([buf[start + a:start + b] for a, b in runs])


def _strip_plan(buf, start, end, family):
    """(mask, expect, head, runs) of a dumped entry: ``runs`` are the spans (from ``start``) of its kept attributes,
    adjacent ones merged; ``mask``/``expect`` match every entry whose attribute headers are the same."""
    runs = []
    heads = []
    p = start
    size = NFNL_HDRLEN
    while p + NLA_HDRLEN <= end:
        alen, atype = _unpack_nla(buf, p)
        if alen < NLA_HDRLEN:
            break
        step = (alen + 3) & ~3
        if p + step > end:
            break
        heads.append(p - start)
        if atype & NLA_TYPE_MASK in KEPT:
            if runs and runs[-1][1] == p - start:
                runs[-1] = (runs[-1][0], p - start + step)
            else:
                runs.append((p - start, p - start + step))
            size += step
        p += step
    mask = bytearray(end - start)
    for at in heads:
        mask[at:at + NLA_HDRLEN] = b'\xff' * NLA_HDRLEN
    mask = int.from_bytes(bytes(mask), 'big')
    expect = int.from_bytes(buf[start:end], 'big') & mask
    if p != end:
        mask = expect = -1  # a tail that is no attribute: this entry is stripped alone, never matched
    return mask, expect, _pack_hdr(size, CT_NEW, 0, 0, 0) + NFGEN.pack(family, NFNETLINK_V0, 0), runs


class Stripper(object):
    """``strip`` for a whole dump: the entries whose attribute headers are those of an entry seen before (most of a
    table: one kind per family, protocol and options) are stripped with that entry's plan, in one comparison."""

    def __init__(self):
        self.plans = {}

    def __call__(self, buf, start, end, family):
        key = (end - start, family)
        known = self.plans.get(key)
        if known:
            value = int.from_bytes(buf[start:end], 'big')
            for mask, expect, head, runs in known:
                if value & mask == expect:
                    return head + b''.join([buf[start + a:start + b] for a, b in runs])
        else:
            known = self.plans[key] = []
        plan = _strip_plan(buf, start, end, family)
        if len(known) < LAYOUTS_PER_SIZE and plan[0] != -1:
            known.append(plan)
        return plan[2] + b''.join([buf[start + a:start + b] for a, b in plan[3]])


class Encoder(object):
    """The saved text, built a batch of messages at a time (checksum and compression streamed, so a table of 10^6
    entries is never held twice uncompressed): ``add(messages, count)``, then ``text()``."""

    def __init__(self, level=1):
        self.digest = hashlib.sha256()
        self.deflate = zlib.compressobj(level)
        self.parts = []
        self.size = 0
        self.count = 0

    def add(self, messages, count):
        self.digest.update(messages)
        self.parts.append(self.deflate.compress(messages))
        self.size += len(messages)
        self.count += count

    def text(self):
        self.parts.append(self.deflate.flush())
        body = base64.b64encode(b''.join(self.parts)).decode('ascii')
        return '%s %d %d %d %s\n%s' % (MAGIC, VERSION, self.count, self.size, self.digest.hexdigest(), body)


def encode(messages, count, level=1):
    """The saved text of ``messages`` (the saved messages of ``count`` entries, joined)."""
    encoder = Encoder(level)
    encoder.add(messages, count)
    return encoder.text()


def header(text):
    """(entries, bytes, sha256) of the saved text's header line; ConntrackError (option ``saved``) otherwise."""
    if not isinstance(text, str):
        raise _bad('is not text (give the saved value conntrack_info returned)')
    line = text[:200].split('\n', 1)[0]
    words = line.split(' ')
    if len(words) != 5 or words[0] != MAGIC:
        raise _bad('does not start with the line "%s %d <entries> <bytes> <sha256>" (give the saved value '
                   'conntrack_info returned, as it is)' % (MAGIC, VERSION))
    if words[1] != str(VERSION):
        raise _bad('is of version %r; this collection reads version %d' % (words[1][:20], VERSION))
    try:
        count, size = int(words[2]), int(words[3])
    except ValueError:
        count = size = -1
    digest = words[4]
    if count < 0 or size < 0 or size > MAX_BYTES or not words[2].isdigit() or not words[3].isdigit():
        raise _bad('has a header with a bad entry count or size (%r, %r)' % (words[2][:20], words[3][:20]))
    if size > count * MAX_MESSAGE:
        raise _bad('has a header whose size (%d bytes) is more than %d entries hold' % (size, count))
    if len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
        raise _bad('has a header with a bad checksum (64 hex digits expected)')
    return count, size, digest


class Saved(object):
    """A parsed saved table: ``raw`` (the messages), ``count``, and for each message ``messages[i]`` =
    ``(start, end, family, layout, status)``: where the message is, its family, its Layout (where its tuples,
    zone and labels are) and its status bits."""

    def __init__(self, raw, messages):
        self.raw = raw
        self.messages = messages
        self.count = len(messages)
        self.nat = None  # set by _ctrestore.prepare

    def attrs(self, index):
        """The attributes of message ``index`` (bytes)."""
        start, end = self.messages[index][:2]
        return self.raw[start + NFNL_HDRLEN:end]

    def _span(self, index, which):
        start = self.messages[index][0]
        span = getattr(self.messages[index][3], which)
        return b'' if span is None else self.raw[start + span[0]:start + span[1]]

    def orig(self, index):
        """The original tuple attribute of message ``index`` (bytes, header included)."""
        return self._span(index, 'orig')

    def zone(self, index):
        """The zone attribute of message ``index``, or b''."""
        return self._span(index, 'zone')

    def labels(self, index):
        """The labels attribute of message ``index``, or b''."""
        return self._span(index, 'labels')

    def keys(self, index):
        """The lookup keys of message ``index``, as ``lookup_keys`` makes them of a dumped entry."""
        family = self.messages[index][2]
        return lookup_keys(family, _payload(self.orig(index)), _payload(self._span(index, 'reply')),
                           _payload(self.zone(index)))


def _payload(attr):
    """The payload of the attribute ``attr`` (bytes from its header on), or b''."""
    return attr[NLA_HDRLEN:_unpack_nla(attr, 0)[0]] if attr else b''


def lookup_keys(family, orig, reply, zone):
    """The keys the kernel looks an entry up by: (family, tuple, zone) of its original and of its reply tuple,
    from the payloads of its tuple and zone attributes. The kernel refuses a create when either is taken."""
    if zone == b'\0\0':
        zone = b''  # zone 0, whether said or not
    return (family, orig, zone), (family, reply, zone)


class Layout(object):
    """The attribute headers of a message, as offsets from its start: ``orig``, ``reply``, ``zone``, ``labels`` (spans,
    header included, or None), ``status`` (the offset of the status value, or None), and ``mask``/``expect``: the message,
    read as one big-endian number and masked, equals ``expect`` exactly when its headers (length, family, version,
    every attribute header) are these. Messages of the same kind share a layout, so the walk of one message checks
    every other of its kind in one comparison (as _ctlayout matches the kernel's fixed layouts)."""

    __slots__ = ('orig', 'reply', 'zone', 'labels', 'status', 'mask', 'expect')

    def __init__(self, raw, off, end, heads, spans, status):
        self.orig, self.reply, self.zone, self.labels = spans
        self.status = status
        size = end - off
        mask = bytearray(size)
        for at, length in heads:
            mask[at:at + length] = b'\xff' * length
        self.mask = int.from_bytes(bytes(mask), 'big')
        self.expect = int.from_bytes(raw[off:end], 'big') & self.mask


def parse(text):
    """The Saved of the saved text ``text``; ConntrackError naming ``saved`` for anything that is not a saved table
    as conntrack_info writes it. Nothing is trusted: every length and type is checked."""
    count, size, digest = header(text)
    body = text.split('\n', 1)[1] if '\n' in text else ''
    try:
        packed = base64.b64decode(body.strip().encode('ascii'), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _bad('is not valid base64 after its header line (it was changed or cut)')
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(packed, size + 1)
    except zlib.error as exc:
        raise _bad('cannot be decompressed (%s): it was changed or cut' % exc)
    if len(raw) != size or not inflate.eof or inflate.unused_data or inflate.unconsumed_tail:
        raise _bad('does not hold the %d bytes its header says (it was changed or cut)' % size)
    if hashlib.sha256(raw).hexdigest() != digest:
        raise _bad('does not match its checksum (it was changed)')
    messages = walk(raw)
    if len(messages) != count:
        raise _bad('holds %d entries where its header says %d' % (len(messages), count))
    return Saved(raw, messages)


def walk(raw):
    """The message list of ``Saved`` for the messages ``raw``; ConntrackError (option ``saved``) at the first fault.

    The first message of each layout is walked attribute by attribute; the others of its size are compared with
    the layouts seen (``Layout``) and walked only when none matches."""
    messages = []
    append = messages.append
    unpack_len = _unpack_len
    unpack_be32 = BE32.unpack_from
    from_bytes = int.from_bytes
    layouts = {}
    size = len(raw)
    off = 0
    index = 0
    while off < size:
        if off + NFNL_HDRLEN > size:
            raise _entry(index, 'is cut short')
        mlen = unpack_len(raw, off)[0]
        end = off + mlen
        if mlen < NFNL_HDRLEN or mlen & 3 or mlen > MAX_MESSAGE or end > size:
            raise _entry(index, 'has a bad length (%d)' % mlen)
        known = layouts.get(mlen)
        layout = None
        if known:
            value = from_bytes(raw[off:end], 'big')
            for candidate in known:
                if value & candidate.mask == candidate.expect:
                    layout = candidate
                    break
        if layout is None:
            layout = _walk_one(raw, off, end, index)
            if known is None:
                known = layouts[mlen] = []
            if len(known) < LAYOUTS_PER_SIZE:
                known.append(layout)
        at = layout.status
        append((off, end, raw[off + HDR.size], layout, unpack_be32(raw, off + at)[0] if at is not None else 0))
        off = end
        index += 1
    return messages


def _walk_one(raw, off, end, index):
    """The Layout of the message ``raw[off:end]`` (message ``index``), every header checked."""
    family, version = raw[off + HDR.size], raw[off + HDR.size + 1]
    if family not in FAMILIES or version != NFNETLINK_V0:
        raise _entry(index, 'is of family %d, version %d (only IPv4 and IPv6 entries, version 0)' % (family, version))
    heads = [(0, 4), (HDR.size, 2)]  # the length; the family and version
    found = {}
    status = None
    p = off + NFNL_HDRLEN
    while p < end:
        if p + NLA_HDRLEN > end:
            raise _entry(index, 'has an attribute cut short')
        alen, atype = _unpack_nla(raw, p)
        step = (alen + 3) & ~3
        if alen < NLA_HDRLEN or p + step > end:
            raise _entry(index, 'has an attribute of a bad length (%d)' % alen)
        kind = atype & NLA_TYPE_MASK
        if kind not in KEPT:
            raise _entry(index, 'has an attribute (type %d) a saved entry does not hold' % kind)
        if kind in found:
            raise _entry(index, 'has two attributes of type %d' % kind)
        if kind == CTA_STATUS:
            if alen != NLA_HDRLEN + 4:
                raise _entry(index, 'has a status of a bad length (%d)' % alen)
            status = p + NLA_HDRLEN - off
        heads.append((p - off, NLA_HDRLEN))
        found[kind] = (p - off, p - off + step)
        p += step
    missing = [text for kind, text in REQUIRED if kind not in found]
    if missing:
        raise _entry(index, 'has no %s' % ' and no '.join(missing))
    spans = (found[CTA_TUPLE_ORIG], found[CTA_TUPLE_REPLY], found.get(CTA_ZONE), found.get(CTA_LABELS))
    return Layout(raw, off, end, heads, spans, status)


def _bad(text):
    return ConntrackError('saved %s' % text, option='saved')


def _entry(index, text):
    return ConntrackError('saved: entry %d %s (the saved value was changed or cut: save the table again)'
                          % (index, text), option='saved')
