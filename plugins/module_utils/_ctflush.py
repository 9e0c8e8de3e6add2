# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many entries at once: select (count, sample, delete) what a filter matches, and conntrack_flush.

Bulk deletes ask for no ACKs: delete requests are built from the dumped messages themselves
(``_ctlayout.delete_request``: the original tuple, zone and id copied as the kernel sent them), packed
into large datagrams and sent on a second socket while the dump runs. Only failures come back; ENOENT
(the entry went away on its own) is counted, not an error. A request carrying the entry's id deletes
that entry and no other, so an entry that was replaced by a new one with the same tuple between dump
and delete is left alone.

A kernel-side flush (one CT_DELETE without a tuple) is used only when the kernel selects exactly
what the filter means: family (nfgen version 1), mark/mask, status/mask and zone, on a kernel known
to honour all of them (Linux 6.8+, measured on 6.18 in tests/integration/test_flush_differential.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    KERNEL_FLUSH_MIN, ConntrackError, kernel_version, read_int)
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET_STATS, IPCTNL_MSG_EXP_DELETE, NFNETLINK_V0, NFNETLINK_V1,
    NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_CTNETLINK_EXP, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST, NetlinkError,
    iter_messages, nla_str, receive_error)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    CTA_EXPECT_HELP_NAME, FAMILIES, PROTO_NUMBERS)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import (
    ADDRESS_VALUES, delete_request, delete_request_of, fixed_entry, layout_batch, plain_batch)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctwrite import delete_expect
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter, kernel_selects_exactly

SAMPLE_DEFAULT = 10
BATCH_BYTES = 1 << 17


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
    return FAMILIES.get(flt.family, 0), flt.selector_attrs()


def kernel_flush(conn, flt):
    """One CT_DELETE without a tuple: the kernel deletes every entry matching family/mark/status/zone.

    nfgen version 1 is what makes the kernel honour the family (version 0 flushes every family)."""
    family, attrs = flush_request_attrs(flt)
    try:
        conn.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK,
                     family, NFNETLINK_V1, attrs, action='flushing the conntrack table')
    except NetlinkError as exc:
        raise NetlinkError(exc.errno, 'flushing the conntrack table')


class _Deleter(object):
    """Sends CT_DELETE requests in large datagrams on its own socket, without ACKs; counts failures.

    A sender thread does the sending: the kernel deletes the entries of one datagram inside sendmsg(),
    which releases the GIL, so the deletes overlap with the dump being read and decoded.
    """

    def __init__(self, batch_bytes=BATCH_BYTES):
        import queue
        import threading

        self.conn = Connection()
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
        done = False
        for mtype, _flags, mseq, _start, _end, code in iter_messages(self.conn.buf, n):
            if mtype != NLMSG_ERROR:
                continue
            if self.final and mseq == self.conn.seq:
                done = True
            elif code == errno.ENOENT:
                self.vanished += 1
            elif code:
                self.errors[code] = self.errors.get(code, 0) + 1
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
                    raise receive_error(exc.errno)
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
        data, _seq = self.conn.message(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS,
                                       NLM_F_REQUEST | NLM_F_ACK)
        self.final = True
        self.conn.send(data)
        self._drain(block=True)
        self.conn.close()
        if self.errors:
            code = sorted(self.errors.items(), key=lambda kv: -kv[1])[0][0]
            raise ConntrackError('%d of %d delete requests failed: %s'
                                 % (sum(self.errors.values()), self.sent,
                                    NetlinkError(code, 'deleting entries').msg))
        return self.sent - self.vanished

    def close(self):
        self._stop()
        self.conn.close()


def _counting_batch(sample, sample_size):
    """A batch decoder (``_ctlayout.plain_batch``) that decodes the first ``sample_size`` entries into
    ``sample`` and makes a 0 of every entry: counting costs a header read per entry."""
    def count(buf, off, end, family):
        if len(sample) < sample_size:
            sample.append(decode_ct(buf, off, end, family))
        return 0
    return plain_batch(count)


def raw_net_checks(flt, release=None):
    """For filters whose only conditions the kernel cannot check are addresses (CIDRs, IPv6 addresses,
    reply addresses): ``((value index, af, network int, mask int), ...)`` to compare with the address bytes
    of an entry of a fixed layout with ports (``_ctlayout.LAYOUTS``); None for any other filter.

    Every other condition of such a filter (family, proto, TCP/UDP ports of the original direction, mark,
    zone, status) is selected exactly by the kernel-side dump, so comparing the address bytes of the two
    tuples is all that is left: no entry dict is built for entries that do not match. Whether the rest is
    exact on this kernel is ``kernel_selects_exactly``'s decision.
    """
    if not flt.nets or flt.icmp or not kernel_selects_exactly(flt, release, ignore_nets=True):
        return None
    return tuple((ADDRESS_VALUES[option], net.af, net.net, net.mask) for option, net in flt.nets.items())


def _selection_batch(flt, exact, sample, sample_size, delete):
    """A batch decoder (``_ctlayout.layout_batch``) for ``select``: for every dumped entry it appends the entry's
    CT_DELETE request (``delete``) or 1 when the entry matches ``flt``, and b'' or 0 when it does not; the
    first ``sample_size`` matching entries are decoded into ``sample``."""
    pred = None if exact or flt.empty else flt.match
    checks = None if pred is None else raw_net_checks(flt)
    from_bytes = int.from_bytes
    miss = b'' if delete else 0

    def fast(v, family, icmp, zoned, buf, p, end):
        entry = None
        if pred is not None:
            if checks is None or icmp:
                entry = fixed_entry(v, family, icmp, zoned, buf, p, end)  # the Python predicate on the entry
                if not pred(entry):
                    return miss
            else:
                for index, af, net, mask in checks:
                    if af != family or from_bytes(v[index], 'big') & mask != net:
                        return miss
        if len(sample) < sample_size:
            sample.append(entry or fixed_entry(v, family, icmp, zoned, buf, p, end))
        if not delete:
            return 1
        return delete_request(buf, p, family, icmp, zoned)

    def fallback(buf, start, end, family):
        entry = None
        if pred is not None:
            entry = decode_ct(buf, start, end, family)
            if not pred(entry):
                return miss
        if len(sample) < sample_size:
            sample.append(entry or decode_ct(buf, start, end, family))
        if not delete:
            return 1
        return delete_request_of(buf, start, end, family) or miss

    return layout_batch(fast, fallback)


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
        with Connection() as conn:
            for family, attrs in requests:
                for items in conn.dump_batches(family, attrs, batch=batch):
                    matched += len(items)
                    if limit is not None and matched > limit:
                        return matched, 0, sample  # the rest of the dump goes with the socket
        return matched, 0, sample
    batch = _selection_batch(flt, exact, sample, sample_size, delete)
    deleter = None
    try:
        with Connection() as conn:
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
        with Connection() as conn:
            value = conn.stats_global().get('count', 0)
    return value


def _first_entries(count):
    """The first ``count`` entries of a full dump (the dump is abandoned after them)."""
    out = []
    if count > 0:
        with Connection() as conn:
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
            with Connection() as conn:
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


def flush_expect(params, check_mode=False):
    """conntrack_flush on the expect table: all, by helper name, or by master tuple."""
    flt = validate_flush(params)
    helper = params.get('helper')
    sample_size = params.get('sample_size')
    if sample_size is None:
        sample_size = SAMPLE_DEFAULT
    match = _expect_matches(flt, helper)
    with Connection() as conn:
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
    with Connection() as conn:
        if kernel:
            # one EXP_DELETE without a tuple: everything, or every expectation of one helper
            attrs = nla_str(CTA_EXPECT_HELP_NAME, helper) if helper else b''
            try:
                conn.request(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE, NLM_F_REQUEST | NLM_F_ACK,
                             0, NFNETLINK_V0, attrs, action='flushing the expect table')
            except NetlinkError as exc:
                raise NetlinkError(exc.errno, 'flushing the expect table')
            result['deleted'] = len(chosen)
        else:
            result['deleted'] = sum(1 for exp in chosen if delete_expect(conn, exp))
    return result


def flush(params, check_mode=False):
    if params.get('table') == 'expect':
        return flush_expect(params, check_mode)
    return flush_conntrack(params, check_mode)
