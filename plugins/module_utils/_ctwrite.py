# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write path of ctnetlink: one entry (get, create, update, delete) and many (flush).

Single-entry operations ask for an ACK (the caller needs to know); bulk deletes do not: delete
requests are built from the dumped messages themselves (the original tuple, zone and id copied as
the kernel sent them), packed into large datagrams and sent on a second socket while the dump
runs. Only failures come back; ENOENT (the entry went away on its own) is counted, not an error.
A request carrying the entry's id deletes that entry and no other, so an entry that was replaced
by a new one with the same tuple between dump and delete is left alone.

A kernel-side flush (one CT_DELETE without a tuple) is used only when the kernel selects exactly
what the filter means: family (nfgen version 1), mark/mask, status/mask and zone, on a kernel known
to honour all of them (Linux 6.8+, measured on 6.18 in tests/integration/test_flush_differential.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    KERNEL_FLUSH_MIN, ConntrackError, kernel_version, read_int)
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctnetlink as nl
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter, kernel_selects_exactly

SAMPLE_DEFAULT = 10
BATCH_BYTES = 1 << 17

_HDR = struct.Struct('=IHHII')
_NFGEN = struct.Struct('=BBH')
_NLA = struct.Struct('=HH')
_ERR = struct.Struct('=i')
_DELETE_TYPE = (nl.NFNL_SUBSYS_CTNETLINK << 8) | nl.IPCTNL_MSG_CT_DELETE


# --- one entry ------------------------------------------------------------------------------

def _af(family):
    return nl.AF_INET if family == 'ipv4' else nl.AF_INET6


def identity_attrs(ident):
    """CTA attributes naming one entry: its original tuple (or reply tuple) and zone.

    ``ident`` is a dict with ``family``, ``protonum``, ``direction`` ('orig' or 'reply'), ``tuple``
    (src, dst, ports or ICMP fields) and ``zone``.
    """
    tup = dict(ident['tuple'])
    tup['protonum'] = ident['protonum']
    atype = nl.CTA_TUPLE_ORIG if ident.get('direction', 'orig') == 'orig' else nl.CTA_TUPLE_REPLY
    attrs = nl.encode_tuple(atype, ident['family'], tup)
    if ident.get('zone'):
        attrs += nl.nla_be16(nl.CTA_ZONE, ident['zone'])
    return attrs


def get_entry(conn, ident):
    """The entry ``ident`` names, decoded as conntrack_info shows it, or None when there is none."""
    try:
        replies = conn.request(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_GET, nl.NLM_F_REQUEST,
                               _af(ident['family']), nl.NFNETLINK_V0, identity_attrs(ident),
                               action='reading the entry')
    except nl.NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    for _mtype, family, payload in replies:
        return nl.decode_ct(payload, 0, len(payload), family)
    return None


def create_entry(conn, entry):
    """CT_NEW with CREATE|EXCL and an ACK. ``entry`` is a flat entry dict for ``encode_ct_attrs``
    (plus ``nat_src``/``nat_dst`` dicts handled here)."""
    attrs = nl.encode_ct_attrs(entry) + _nat_attrs(entry)
    try:
        conn.request(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_NEW,
                     nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL,
                     _af(entry['family']), nl.NFNETLINK_V0, attrs, action='creating the entry')
    except nl.NetlinkError as exc:
        raise _explain(exc, 'creating the entry')


def update_entry(conn, ident, changes, state=None, protonum=None):
    """CT_NEW without CREATE on the entry ``ident`` names: only the attributes in ``changes``
    (``status`` value, ``timeout``, ``mark`` + ``mark_mask``, ``labels`` + ``labels_mask`` as ints), and
    with ``state`` the TCP/SCTP/DCCP state."""
    attrs = identity_attrs(ident)
    if state is not None:
        attrs += _protoinfo(protonum, state)
    if 'status' in changes:
        attrs += nl.nla_be32(nl.CTA_STATUS, changes['status'])
    if 'timeout' in changes:
        attrs += nl.nla_be32(nl.CTA_TIMEOUT, changes['timeout'])
    if 'mark' in changes:
        attrs += nl.nla_be32(nl.CTA_MARK, changes['mark'])
        # ctnetlink applies CTA_MARK_MASK on update: new = (old & ~mask) | (mark & mask)
        attrs += nl.nla_be32(nl.CTA_MARK_MASK, changes.get('mark_mask', 0xffffffff))
    if 'labels' in changes:
        attrs += nl.nla(nl.CTA_LABELS, changes['labels'].to_bytes(16, 'little'))
        attrs += nl.nla(nl.CTA_LABELS_MASK, changes.get('labels_mask', (1 << 128) - 1).to_bytes(16, 'little'))
    try:
        conn.request(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_NEW, nl.NLM_F_REQUEST | nl.NLM_F_ACK,
                     _af(ident['family']), nl.NFNETLINK_V0, attrs, action='updating the entry')
    except nl.NetlinkError as exc:
        raise _explain(exc, 'updating the entry')


def delete_entry(conn, ident, ct_id=None):
    """CT_DELETE of the entry ``ident`` names (and, with ``ct_id``, only if it still has that id).

    True when deleted, False when there was no such entry (ENOENT is not an error)."""
    attrs = identity_attrs(ident)
    if ct_id is not None:
        attrs += nl.nla_be32(nl.CTA_ID, ct_id)
    try:
        conn.request(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_DELETE, nl.NLM_F_REQUEST | nl.NLM_F_ACK,
                     _af(ident['family']), nl.NFNETLINK_V0, attrs, action='deleting the entry')
    except nl.NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise _explain(exc, 'deleting the entry')
    return True


def _protoinfo(protonum, state):
    container, names = {6: (nl.CTA_PROTOINFO_TCP, nl.TCP_STATES), 132: (nl.CTA_PROTOINFO_SCTP, nl.SCTP_STATES),
                        33: (nl.CTA_PROTOINFO_DCCP, nl.DCCP_STATES)}[protonum]
    info = [nl.nla_u8(1, names.index(state))]
    if protonum == 132:  # the kernel wants both SCTP verification tags with the state
        info += [nl.nla_be32(2, 0), nl.nla_be32(3, 0)]
    return nl.nla_nested(nl.CTA_PROTOINFO, nl.nla_nested(container, *info))


def _nat_attrs(entry):
    out = b''
    for key, atype in (('nat_src', nl.CTA_NAT_SRC), ('nat_dst', nl.CTA_NAT_DST)):
        nat = entry.get(key)
        if not nat:
            continue
        af = _af(entry['family'])
        lo_t, hi_t = (nl.CTA_NAT_V4_MINIP, nl.CTA_NAT_V4_MAXIP) if af == nl.AF_INET else (
            nl.CTA_NAT_V6_MINIP, nl.CTA_NAT_V6_MAXIP)
        parts = [nl.nla(lo_t, socket.inet_pton(af, nat['ip'])), nl.nla(hi_t, socket.inet_pton(af, nat['ip']))]
        if nat.get('port') is not None:
            parts.append(nl.nla_nested(nl.CTA_NAT_PROTO, nl.nla_be16(nl.CTA_PROTONAT_PORT_MIN, nat['port']),
                                       nl.nla_be16(nl.CTA_PROTONAT_PORT_MAX, nat['port'])))
        out += nl.nla_nested(atype, *parts)
    return out


_EXPLAIN = {
    errno.EEXIST: 'an entry with this tuple already exists in this zone (possibly with the tuples the other '
                  'way round: the reply tuple of one entry cannot be the original tuple of another)',
    errno.EBUSY: 'the kernel refused the entry; an entry being created must be CONFIRMED',
    errno.EINVAL: 'the kernel rejected the entry as invalid (check the tuple, the state for the protocol, '
                  'and that status flags the kernel manages, such as SRC_NAT/DST_NAT without NAT, are not set)',
    errno.ENOENT: 'there is no such entry (it may have expired in the meantime)',
    errno.EOPNOTSUPP: 'this kernel does not support the request (NAT needs nf_nat; labels need connlabel '
                      'support; helpers need the helper)',
    errno.ENOSPC: 'the conntrack table is full (nf_conntrack_max reached)',
}


def _explain(exc, action):
    text = _EXPLAIN.get(exc.errno)
    if text is None:
        return nl.NetlinkError(exc.errno, action)
    err = nl.NetlinkError(exc.errno, action)
    err.msg = '%s failed: %s (%s)' % (action, text, errno.errorcode.get(exc.errno, exc.errno))
    err.args = (err.msg,)
    return err


# --- many entries -----------------------------------------------------------------------------

def kernel_flushable(flt, release=None):
    """True when one kernel-side flush deletes exactly the entries ``flt.match`` accepts.

    Only family, mark/mask, status/mask and zone qualify (ctnetlink refuses CTA_FILTER tuple filters in a
    flush), on a kernel whose dumps select them exactly (``kernel_selects_exactly``, the same decision as
    listings) and whose flush honours them (Linux 6.8).
    """
    if kernel_version(release) < KERNEL_FLUSH_MIN or flt.uses_tuple_filter():
        return False
    return kernel_selects_exactly(flt, release)


def flush_request_attrs(flt):
    """(nfgen family, attrs) of the kernel-side flush for a ``kernel_flushable`` filter."""
    attrs = b''
    if flt.mark is not None:
        attrs += nl.nla_be32(nl.CTA_MARK, flt.mark) + nl.nla_be32(nl.CTA_MARK_MASK, flt.mark_mask)
    if flt.status_mask:
        attrs += nl.nla_be32(nl.CTA_STATUS, flt.status_value) + nl.nla_be32(nl.CTA_STATUS_MASK, flt.status_mask)
    if flt.zone is not None:
        attrs += nl.nla_be16(nl.CTA_ZONE, flt.zone)
    family = {'ipv4': nl.AF_INET, 'ipv6': nl.AF_INET6}.get(flt.family, 0)
    return family, attrs


def kernel_flush(conn, flt):
    """One CT_DELETE without a tuple: the kernel deletes every entry matching family/mark/status/zone.

    nfgen version 1 is what makes the kernel honour the family (version 0 flushes every family)."""
    family, attrs = flush_request_attrs(flt)
    try:
        conn.request(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_DELETE, nl.NLM_F_REQUEST | nl.NLM_F_ACK,
                     family, nl.NFNETLINK_V1, attrs, action='flushing the conntrack table')
    except nl.NetlinkError as exc:
        raise nl.NetlinkError(exc.errno, 'flushing the conntrack table')


def _delete_of(buf, off, end, family):
    """The CT_DELETE request (header included) for one dumped CT_NEW payload: the original tuple, the
    zone and the id, copied from the dump (attribute by attribute: the selection batch copies those of the
    fixed layouts at fixed offsets). None when the message has no original tuple."""
    tuple_orig = zone = ct_id = None
    p = off
    while p + 4 <= end:
        alen, atype = _NLA.unpack_from(buf, p)
        if alen < 4:
            break
        atype &= nl.NLA_TYPE_MASK
        step = (alen + 3) & ~3
        if atype == nl.CTA_TUPLE_ORIG:
            tuple_orig = bytes(buf[p:p + step])
        elif atype == nl.CTA_ZONE:
            zone = bytes(buf[p:p + step])
        elif atype == nl.CTA_ID:
            ct_id = bytes(buf[p:p + step])
            break  # ID comes after ORIG, REPLY, (ZONE), STATUS, MARK in ctnetlink_fill_info
        p += step
    if tuple_orig is None:
        return None
    body = _NFGEN.pack(family, 0, 0) + tuple_orig + (zone or b'') + (ct_id or b'')
    return _HDR.pack(16 + len(body), _DELETE_TYPE, nl.NLM_F_REQUEST, 0, 0) + body


class _Deleter(object):
    """Sends CT_DELETE requests in large datagrams on its own socket, without ACKs; counts failures.

    A sender thread does the sending: the kernel deletes the entries of one datagram inside sendmsg(),
    which releases the GIL, so the deletes overlap with the dump being read and decoded.
    """

    def __init__(self, batch_bytes=BATCH_BYTES):
        import queue
        import threading

        self.conn = nl.Connection()
        self.batch_bytes = batch_bytes
        self.pending = []
        self.size = 0
        self.sent = 0
        self.vanished = 0
        self.errors = {}
        self.failure = None
        self.final = False
        self.queue = queue.Queue(maxsize=16)
        self.thread = threading.Thread(target=self._run, name='ctnetlink-delete')
        self.thread.daemon = True
        self.thread.start()

    def add(self, request):
        self.pending.append(request)
        self.size += len(request)
        self.sent += 1
        if self.size >= self.batch_bytes:
            self.flush_pending()

    def flush_pending(self):
        if self.pending:
            self.queue.put(b''.join(self.pending))
            self.pending = []
            self.size = 0

    def _run(self):
        try:
            while True:
                data = self.queue.get()
                if data is None:
                    return
                if self.failure is None:
                    self.conn.send(data)
                    self._drain(block=False)
        except ConntrackError as exc:
            self.failure = exc
            while self.queue.get() is not None:
                pass

    def _count(self, n):
        buf = self.conn.buf
        off = 0
        done = False
        while off + 16 <= n:
            mlen, mtype, _f, mseq, _p = _HDR.unpack_from(buf, off)
            if mlen < 16:
                break
            if mtype == nl.NLMSG_ERROR:
                code = -_ERR.unpack_from(buf, off + 16)[0]
                if self.final and mseq == self.conn.seq:
                    done = True
                elif code == errno.ENOENT:
                    self.vanished += 1
                elif code:
                    self.errors[code] = self.errors.get(code, 0) + 1
            off += (mlen + 3) & ~3
        return done

    def _drain(self, block):
        sock = self.conn.sock
        sock.setblocking(block)
        try:
            while True:
                try:
                    n = sock.recv_into(self.conn.buf, self.conn.CHUNK)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        raise ConntrackError('the kernel dropped answers to delete requests (receive buffer '
                                             'overrun): the result cannot be trusted; run the task again')
                    raise ConntrackError('netlink receive failed: %s' % exc.strerror)
                if self._count(n):
                    return
        finally:
            sock.setblocking(True)

    def _stop(self):
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def finish(self):
        """Send what is pending, then wait for every answer (a final ACKed request marks the end).
        Returns the number of entries deleted."""
        self.flush_pending()
        self._stop()
        if self.failure is not None:
            raise self.failure
        data, _seq = self.conn.message(nl.NFNL_SUBSYS_CTNETLINK, nl.IPCTNL_MSG_CT_GET_STATS,
                                       nl.NLM_F_REQUEST | nl.NLM_F_ACK)
        self.final = True
        self.conn.send(data)
        self._drain(block=True)
        self.conn.close()
        if self.errors:
            code = sorted(self.errors.items(), key=lambda kv: -kv[1])[0][0]
            raise ConntrackError('%d of %d delete requests failed: %s'
                                 % (sum(self.errors.values()), self.sent,
                                    nl.NetlinkError(code, 'deleting entries').msg))
        return self.sent - self.vanished

    def close(self):
        self._stop()
        self.conn.close()


def _counting_batch(sample, sample_size):
    """A batch decoder (``_ctnetlink._batch`` style) that decodes the first ``sample_size`` entries into
    ``sample`` and makes a 0 of every entry: counting costs a header read per entry."""
    def count(buf, off, end, family):
        if len(sample) < sample_size:
            sample.append(nl.decode_ct(buf, off, end, family))
        return 0
    return nl.plain_batch(count)


_NET_INDEX = {'src': 0, 'dst': 1, 'reply_src': 5, 'reply_dst': 6}


def raw_net_checks(flt, release=None):
    """For filters whose only conditions the kernel cannot check are addresses (CIDRs, IPv6 addresses,
    reply addresses): ``((value index, af, network int, mask int), ...)`` to compare with the address bytes
    of an entry of the fixed ports layout (``_ctnetlink._LAYOUTS``); None for any other filter.

    Every other condition of such a filter (family, proto, TCP/UDP ports of the original direction, mark,
    zone, status) is selected exactly by the kernel-side dump, so comparing the address bytes of the two
    tuples is all that is left: no entry dict is built for entries that do not match. Whether the rest is
    exact on this kernel is ``kernel_selects_exactly``'s decision.
    """
    if not flt.nets or flt.icmp or not kernel_selects_exactly(flt, release, ignore_nets=True):
        return None
    return tuple((_NET_INDEX[option], net.af, net.net, net.mask) for option, net in flt.nets.items())


_TUPLE_LEN = dict(((af, icmp), (4 + (20 if af == nl.AF_INET else 44) + (36 if icmp else 28)))
                  for af in (nl.AF_INET, nl.AF_INET6) for icmp in (False, True))


def _selection_batch(flt, exact, sample, sample_size, delete):
    """A batch decoder (``_ctnetlink._batch``) for ``select``: for every dumped entry it appends the entry's
    CT_DELETE request (``delete``) or 1 when the entry matches ``flt``, and b'' or 0 when it does not; the
    first ``sample_size`` matching entries are decoded into ``sample``."""
    pred = None if exact or flt.empty else flt.match
    checks = None if pred is None else raw_net_checks(flt)
    layouts = nl._LAYOUTS  # pylint: disable=protected-access
    from_bytes = int.from_bytes
    nfgen = dict((af, _NFGEN.pack(af, 0, 0)) for af in (nl.AF_INET, nl.AF_INET6))
    miss = b'' if delete else 0
    decode = nl.decode_ct

    def fast(v, family, icmp, zoned, buf, p, end):
        start = p - layouts[family, icmp, zoned][0]
        entry = None
        if pred is not None:
            if checks is None or icmp:
                entry = decode(buf, start, end, family)  # the Python predicate on the decoded entry
                if not pred(entry):
                    return miss
            else:
                for index, af, net, mask in checks:
                    if af != family or from_bytes(v[index], 'big') & mask != net:
                        return miss
        if len(sample) < sample_size:
            sample.append(entry or decode(buf, start, end, family))
        if not delete:
            return 1
        size = _TUPLE_LEN[family, icmp]
        tail = start + 2 * size + (8 if zoned else 0)
        body = nfgen[family] + buf[start:start + size] + (buf[tail - 8:tail] if zoned else b'') + buf[tail + 16:tail + 24]
        return _HDR.pack(16 + len(body), _DELETE_TYPE, nl.NLM_F_REQUEST, 0, 0) + body

    def fallback(buf, start, end, family):
        entry = None
        if pred is not None:
            entry = decode(buf, start, end, family)
            if not pred(entry):
                return miss
        if len(sample) < sample_size:
            sample.append(entry or decode(buf, start, end, family))
        if not delete:
            return 1
        return _delete_of(buf, start, end, family) or miss

    return nl._batch(fast, fallback)  # pylint: disable=protected-access


def select(flt, delete=False, sample_size=SAMPLE_DEFAULT, limit=None, exact=None):
    """Walk the entries matching ``flt``: count them, keep a sample, and with ``delete`` delete them.

    Deletes are sent while the dump runs (received by a second process). ``limit``: stop (without deleting,
    ``delete`` must be False) as soon as more than ``limit`` entries match. ``exact``: the kernel-side dump
    selects exactly the matching entries, so entries are decoded only for the sample. Returns
    (matched, deleted, sample).
    """
    requests = flt.kernel_requests()
    if exact is None:
        exact = kernel_selects_exactly(flt)
    sample = []
    matched = 0
    if (exact or flt.empty) and not delete:
        # counting only: no Python work per entry beyond reading its header
        batch = _counting_batch(sample, sample_size)
        with nl.Connection() as conn:
            for family, attrs in requests:
                for items in conn.dump_batches(family, attrs, batch=batch):
                    matched += len(items)
                    if limit is not None and matched > limit:
                        return matched, 0, sample  # the rest of the dump goes with the socket
        return matched, 0, sample
    batch = _selection_batch(flt, exact, sample, sample_size, delete)
    deleter = None
    try:
        with nl.Connection() as conn:
            for family, attrs in requests:
                for items in conn.dump_batches(family, attrs, batch=batch, threaded=True):
                    if delete:
                        if deleter is None:
                            deleter = _Deleter()  # its thread starts after the receiver process forked
                        for request in items:
                            if request:
                                deleter.add(request)
                                matched += 1
                    else:
                        matched += sum(items)
                        if limit is not None and matched > limit:
                            return matched, 0, sample
        deleted = deleter.finish() if deleter is not None else 0
    finally:
        if deleter is not None:
            deleter.close()
    return matched, deleted, sample


# --- conntrack_flush ----------------------------------------------------------------------------

FLUSH_ARGSPEC = dict(
    table=dict(type='str', default='conntrack', choices=['conntrack', 'expect']),
    all=dict(type='bool', default=False),
    max_delete=dict(type='int'),
    sample_size=dict(type='int', default=SAMPLE_DEFAULT),
    helper=dict(type='str'),
    method=dict(type='str', default='auto', choices=['auto', 'batched_delete']),
    break_synproxy_connections=dict(type='bool', default=False),
)
EXPECT_FILTERS = ('family', 'proto', 'src', 'dst', 'sport', 'dport', 'zone')


def validate_flush(params):
    """Check every option before the kernel is touched; return the Filter."""
    flt = Filter.from_params(params)
    if params.get('max_delete') is not None and params['max_delete'] < 0:
        raise ConntrackError('max_delete %s is negative: give the largest number of entries this task may delete'
                             % params['max_delete'], option='max_delete')
    if params.get('sample_size') is not None and params['sample_size'] < 0:
        raise ConntrackError('sample_size %s is negative: give 0 for no sample' % params['sample_size'],
                             option='sample_size')
    expect = params.get('table') == 'expect'
    if expect:
        bad = sorted(k for k in flt.given if k not in EXPECT_FILTERS)
        if bad:
            raise ConntrackError('%s cannot filter the expect table: expectations are selected by helper and by '
                                 'their master connection (%s)' % (', '.join(bad), ', '.join(EXPECT_FILTERS)),
                                 option=bad[0])
    elif params.get('helper'):
        raise ConntrackError('helper filters the expect table only: set table: expect (conntrack entries are '
                             'filtered by the other options)', option='helper')
    selective = not flt.empty or (expect and params.get('helper'))
    if params.get('all') and selective:
        raise ConntrackError('all: true deletes every entry and cannot be combined with filter options (%s): '
                             'remove all, or remove the filter' % (flt.describe() if not flt.empty else 'helper'),
                             option='all')
    if not selective and not params.get('all'):
        raise ConntrackError('no filter given: this would delete every entry of the %s table. Give filter '
                             'options, or all: true to really flush everything'
                             % ('expectation' if expect else 'conntrack'), option='all')
    return flt


def _count_all():
    value = read_int('/proc/sys/net/netfilter/nf_conntrack_count')
    if value is None:
        with nl.Connection() as conn:
            value = conn.stats_global().get('count', 0)
    return value


def _first_entries(count):
    """The first ``count`` entries of a full dump (the dump is abandoned after them)."""
    out = []
    if count > 0:
        with nl.Connection() as conn:
            for items in conn.dump_batches(batch=_counting_batch(out, count)):
                if len(out) >= count:
                    break
    return out


def synproxy_guards(breaking=False):
    """Filters of the traffic the owned nft table puts behind SYNPROXY (empty when there is none).

    Fails closed: when the table cannot be read (other than for want of nft or of nf_tables, where no table
    of ours can exist), the flush is refused unless the task breaks protected connections anyway."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft

    try:
        _nft.nft_binary()
    except ConntrackError:
        return []  # no nft on the host: the collection cannot have written a table
    try:
        text = _nft.read_table()
    except ConntrackError as exc:
        if 'no nf_tables support' in exc.msg or breaking:
            return []
        raise ConntrackError('cannot tell which entries SYNPROXY protects (%s): nothing was deleted. Fix the '
                             'cause, or set break_synproxy_connections: true to flush without that check'
                             % exc.msg, option='break_synproxy_connections')
    return [(Filter.port_guard(family, 6, ports), _nft.describe_protected(family, ports))
            for family, ports in _nft.protected_traffic(text)]


def flush_conntrack(params, check_mode=False, release=None):
    """conntrack_flush on the conntrack table. Returns the result dict (without ``changed``)."""
    flt = validate_flush(params)
    sample_size = params.get('sample_size')
    if sample_size is None:
        sample_size = SAMPLE_DEFAULT
    max_delete = params.get('max_delete')
    result = {'table': 'conntrack', 'filter': flt.given, 'warnings': []}
    guards = synproxy_guards(breaking=params.get('break_synproxy_connections'))
    if guards:
        result['protected'] = [text for _guard, text in guards]
        if params.get('break_synproxy_connections'):
            result['warnings'].append(
                'break_synproxy_connections: entries of SYNPROXY-protected traffic (%s) are deleted with the others: '
                'SYNPROXY cannot re-create them mid-stream, so those connections break'
                % '; '.join(result['protected']))
        else:
            for guard, _text in guards:
                flt.exclude(guard)
    kernel = params.get('method', 'auto') == 'auto' and kernel_flushable(flt, release)
    result['method'] = 'kernel_flush' if kernel else 'batched_delete'

    if flt.empty:
        matched = _count_all()
        sample = _first_entries(sample_size)
    elif kernel or check_mode or max_delete is not None:
        # an exact count first: the kernel-side requests of a flushable filter select exactly
        matched, _deleted, sample = select(flt, delete=False, sample_size=sample_size,
                                           limit=max_delete, exact=True if kernel else None)
    else:
        matched = None
        sample = None

    if max_delete is not None and matched > max_delete:
        raise ConntrackError('more than max_delete=%d entries match (%s): nothing was deleted. Narrow the '
                             'filter or raise max_delete' % (max_delete, flt.describe()), option='max_delete',
                             matched=matched)
    if check_mode:
        result.update(deleted=matched, sample=sample)
    elif kernel:
        if matched:
            with nl.Connection() as conn:
                kernel_flush(conn, flt)
        result.update(deleted=matched, sample=sample)
    else:
        _matched, deleted, new_sample = select(flt, delete=True, sample_size=sample_size)
        result.update(deleted=deleted, sample=sample if sample is not None else new_sample)
    if result['deleted'] and read_int('/proc/sys/net/netfilter/nf_conntrack_tcp_loose') == 0 and \
            (flt.protonum in (None, 6)):
        result['warnings'].append(
            'nf_conntrack_tcp_loose=0 here: the kernel does not pick up a TCP connection from a mid-stream packet, '
            'so the established connections whose entries were deleted now pass as ct state invalid. The '
            "collection's rules drop invalid packets on SYNPROXY-protected ports only, but a host firewall that "
            'drops invalid packets (or accepts only ct state new/established) cuts those connections')
    kept_part = flt.excluded_part()
    if kept_part is not None:
        kept = select(kept_part, delete=False, sample_size=0)[0]
        result['protected_kept'] = kept
        if kept:
            result['msg'] = ('kept %d entries of SYNPROXY-protected traffic (%s): SYNPROXY cannot re-create an entry '
                             'mid-stream, so deleting it would break its connection. Set break_synproxy_connections: '
                             'true to delete them anyway' % (kept, '; '.join(result['protected'])))
            result['warnings'].append(result['msg'])
    return result


# --- expectations --------------------------------------------------------------------------------

def _expect_matches(flt, helper):
    from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import PROTO_NUMBERS

    def match(exp):
        if helper and exp.get('helper') != helper:
            return False
        if flt.empty:
            return True
        master = dict(exp.get('master') or {})
        master['family'] = exp.get('family')
        master['protonum'] = PROTO_NUMBERS.get(master.get('proto'))
        master['zone'] = exp.get('zone', 0)
        return flt.match(master)
    return match


def _delete_expect(conn, exp):
    tup = dict(exp['tuple'])
    attrs = nl.encode_tuple(nl.CTA_EXPECT_TUPLE, exp['family'], tup)
    if exp.get('zone'):
        attrs += nl.nla_be16(nl.CTA_EXPECT_ZONE, exp['zone'])
    if exp.get('id') is not None:
        attrs += nl.nla_be32(nl.CTA_EXPECT_ID, exp['id'])
    try:
        conn.request(nl.NFNL_SUBSYS_CTNETLINK_EXP, nl.IPCTNL_MSG_EXP_DELETE, nl.NLM_F_REQUEST | nl.NLM_F_ACK,
                     _af(exp['family']), nl.NFNETLINK_V0, attrs, action='deleting an expectation')
    except nl.NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def flush_expect(params, check_mode=False):
    """conntrack_flush on the expect table: all, by helper name, or by master tuple."""
    flt = validate_flush(params)
    helper = params.get('helper')
    sample_size = params.get('sample_size')
    if sample_size is None:
        sample_size = SAMPLE_DEFAULT
    match = _expect_matches(flt, helper)
    with nl.Connection() as conn:
        chosen = [exp for exp in conn.dump_expect() if match(exp)]
    given = dict(flt.given)
    if helper:
        given['helper'] = helper
    kernel = params.get('method', 'auto') == 'auto' and flt.empty
    result = {'table': 'expect', 'filter': given, 'method': 'kernel_flush' if kernel else 'batched_delete',
              'sample': chosen[:sample_size]}
    max_delete = params.get('max_delete')
    if max_delete is not None and len(chosen) > max_delete:
        raise ConntrackError('more than max_delete=%d expectations match (%d): nothing was deleted. Narrow the '
                             'filter or raise max_delete' % (max_delete, len(chosen)), option='max_delete')
    if check_mode or not chosen:
        result['deleted'] = len(chosen)
        return result
    with nl.Connection() as conn:
        if kernel:
            # one EXP_DELETE without a tuple: everything, or every expectation of one helper
            attrs = nl.nla_str(nl.CTA_EXPECT_HELP_NAME, helper) if helper else b''
            try:
                conn.request(nl.NFNL_SUBSYS_CTNETLINK_EXP, nl.IPCTNL_MSG_EXP_DELETE, nl.NLM_F_REQUEST | nl.NLM_F_ACK,
                             0, nl.NFNETLINK_V0, attrs, action='flushing the expect table')
            except nl.NetlinkError as exc:
                raise nl.NetlinkError(exc.errno, 'flushing the expect table')
            result['deleted'] = len(chosen)
        else:
            result['deleted'] = sum(1 for exp in chosen if _delete_expect(conn, exp))
    return result


def flush(params, check_mode=False):
    if params.get('table') == 'expect':
        return flush_expect(params, check_mode)
    return flush_conntrack(params, check_mode)
