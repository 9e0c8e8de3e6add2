# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk selection: count, sample and delete the entries a filter matches, in one pass over a dump.

Conditions the kernel cannot check are tested on each entry as the dump streams: on the address bytes of
the fixed layout where only addresses are left (``raw_net_checks``), else on the entry dict. Bulk deletes
ask for no ACKs: delete requests are built from the dumped messages themselves (``_ctlayout.delete_request``:
the original tuple, zone and id copied as the kernel sent them), packed into large datagrams and sent on a
second socket while the dump runs. Only failures come back; ENOENT (the entry went away on its own) is
counted, not an error. A request carrying the entry's id deletes that entry and no other, so an entry that
was replaced by a new one with the same tuple between dump and delete is left alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_GET_STATS, NFNL_SUBSYS_CTNETLINK, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST, NetlinkError,
    iter_messages, receive_error)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import (
    ADDRESS_VALUES, delete_request, delete_request_of, fixed_entry, layout_batch, plain_batch)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import kernel_selects_exactly

SAMPLE_DEFAULT = 10
BATCH_BYTES = 1 << 17


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


def counting_batch(sample, sample_size):
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
        return None  # (a list of addresses is not exact with ignore_nets: the entry dict is checked)
    return tuple((ADDRESS_VALUES[option], nets[0].af, nets[0].net, nets[0].mask) for option, nets in flt.nets.items())


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
        batch = counting_batch(sample, sample_size)
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
