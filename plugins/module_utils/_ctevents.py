# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watching the table: conntrack_info's ``events`` option, a bounded listen on the ctnetlink event groups.

``validate_events(params, flt)`` checks the ``events`` sub-options before anything is opened and returns the
plan; ``watch(plan, flt)`` listens in the current network namespace for ``seconds`` and returns the result:
per event type the count and rate, the summary's breakdowns, destroyed flows' durations and counters, and
the loss account (overruns, the table's count before and after against new - destroy received).

The event socket has its own receive buffer, set with SO_RCVBUFFORCE (beyond net.core.rmem_max, as root),
falling back to SO_RCVBUF. An overrun (ENOBUFS: the kernel had events for a full buffer) is counted and
survived: the listener goes on. A family/protocol filter becomes a classic BPF socket filter (``_ctbpf``), so
the kernel drops unwanted events before queueing them; every filter is also applied here with
``Filter.match``, on what the kernel let through.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import select
import socket
import time

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import NETLINK_NETFILTER
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctbpf import attach, event_program, expressible
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctevcount import (
    DESTROY, EVENT_TYPES, GROUPS, NEW, EventCounter, ExpectCounter)
from ansible_collections.netfilter.conntrack.plugins.module_utils import _procfs as procfs
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctevspec import EVENTS_OPTIONS

SO_RCVBUFFORCE = getattr(socket, 'SO_RCVBUFFORCE', 33)
SECONDS_RANGE = (1, 3600)
SAMPLE_MAX = 10000
BUFFER_RANGE = (1 << 16, 1 << 30)
# The default receive buffer: a netlink event costs about 1 KiB of buffer (its skb), so 64 MiB hold about
# 60,000 queued events, the best part of a second at the highest new-flow rates measured on a small host
# (75,000/s). The kernel only uses what is queued.
DEFAULT_BUFFER = 64 << 20
DRAIN_SECONDS = 0.5  # at the end, events already queued are read for at most this long


def validate_events(params, flt):
    """The listening plan of ``params['events']`` (a dict), or None without the option. Raises ConntrackError."""
    events = params.get('events')
    if events is None:
        return None
    plan = dict((key, events.get(key, spec.get('default'))) for key, spec in EVENTS_OPTIONS.items())
    low, high = SECONDS_RANGE
    seconds = plan['seconds']
    if seconds is None or not low <= seconds <= high:
        raise ConntrackError('events.seconds %s is out of range: listen for %d to %d seconds (the listen is bounded; '
                             '0 would be no listen at all)' % (seconds, low, high), option='events.seconds')
    types = plan['types'] or []
    if not types:
        raise ConntrackError('events.types is empty: give any of %s' % ', '.join(EVENT_TYPES), option='events.types')
    for name in types:
        if name not in EVENT_TYPES:
            raise ConntrackError('events.types %r is not an event type: use any of %s'
                                 % (name, ', '.join(EVENT_TYPES)), option='events.types')
    plan['types'] = [name for name in EVENT_TYPES if name in types]
    if plan['table'] not in GROUPS:
        raise ConntrackError('events.table %r: use conntrack or expect' % plan['table'], option='events.table')
    if plan['sample'] is None or not 0 <= plan['sample'] <= SAMPLE_MAX:
        raise ConntrackError('events.sample %s is out of range: keep 0 to %d decoded events'
                             % (plan['sample'], SAMPLE_MAX), option='events.sample')
    if plan['buffer_size'] is None:
        plan['buffer_size'] = DEFAULT_BUFFER
    elif not BUFFER_RANGE[0] <= plan['buffer_size'] <= BUFFER_RANGE[1]:
        raise ConntrackError('events.buffer_size %s is out of range: give %d to %d bytes'
                             % (plan['buffer_size'], BUFFER_RANGE[0], BUFFER_RANGE[1]), option='events.buffer_size')
    if plan['table'] == 'expect' and not flt.empty:
        raise ConntrackError('the filter options (%s) select conntrack entries, not expectations: with events.table '
                             'expect give no filter' % flt.describe(), option='events.table')
    plan['top'] = params.get('top') or 10
    return plan


class EventSocket(object):
    """A netlink socket subscribed to one table's event groups, with its own receive buffer and, optionally,
    a BPF program attached before it subscribes (so nothing unfiltered is ever queued)."""

    def __init__(self, table, types, buffer_size, program=None):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise ConntrackError('cannot open a netfilter netlink socket for events: %s' % exc.strerror)
        try:
            self.forced = self._set_buffer(buffer_size)
            self.buffer_size = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if program:
                attach(self.sock, program)
            groups = 0
            for name in types:
                groups |= 1 << (GROUPS[table][EVENT_TYPES.index(name)] - 1)
            try:
                self.sock.bind((0, groups))
            except OSError as exc:
                raise ConntrackError('cannot subscribe to the conntrack event groups: %s%s' % (
                    exc.strerror, ' (needs CAP_NET_ADMIN: run as root / become: true)'
                    if exc.errno == errno.EPERM else ''))
            self.sock.setblocking(False)
        except BaseException:
            self.close()
            raise

    def _set_buffer(self, size):
        """Set the receive buffer: forced (root) first, else capped by net.core.rmem_max. True when forced."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return True
        except OSError:
            pass
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:
            pass
        return False

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def receive(sock, seconds, consume, clock=time.monotonic, on_deadline=None):
    """Hand every datagram received on ``sock`` (non-blocking) to ``consume(buf, n)`` for ``seconds``, then
    the datagrams already queued for at most DRAIN_SECONDS more. ``on_deadline()`` runs at the deadline.
    Returns (elapsed seconds, overruns, datagrams drained after the deadline). An overrun (ENOBUFS) is counted
    and the listen goes on."""
    buf = bytearray(1 << 16)
    recv_into = sock.recv_into
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    overruns = drained = 0
    start = clock()
    deadline = start + seconds
    end = None
    while True:
        try:
            n = recv_into(buf)
        except (BlockingIOError, InterruptedError):
            now = clock()
            if end is not None or now >= deadline:
                break
            poller.poll(max(1, int((deadline - now) * 1000)))
            continue
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                overruns += 1
                continue
            raise ConntrackError('receiving conntrack events failed: %s' % os.strerror(exc.errno or 0))
        consume(buf, n)
        if end is None:
            if clock() >= deadline:
                end = clock()
                if on_deadline is not None:
                    on_deadline()
        else:
            drained += 1
            if clock() >= end + DRAIN_SECONDS:
                break
    if end is None:
        end = clock()
        if on_deadline is not None:
            on_deadline()
    return end - start, overruns, drained


def loss_account(overruns, before, after, counter, plan, flt):
    """What the kernel did against what was received: overruns, and where the table's count says how many
    entries came and went (every type of the table listened to, no filter) the difference between its change
    and new - destroy received. ``unexplained`` > 0: events were lost (or are still in the kernel's queue)."""
    account = {'overruns': overruns, 'table_count_before': before, 'table_count_after': after,
               'table_delta': None if before is None or after is None else after - before,
               'received_delta': None, 'unexplained': None}
    complete = plan['table'] == 'conntrack' and 'new' in plan['types'] and 'destroy' in plan['types'] and flt.empty
    if complete and account['table_delta'] is not None:
        account['received_delta'] = counter.count(NEW) - counter.count(DESTROY)
        account['unexplained'] = account['table_delta'] - account['received_delta']
    return account


def table_count(table):
    """The entries (or expectations) in the table now, or None when /proc does not say."""
    if table == 'conntrack':
        return procfs.count()
    return None


def watch(plan, flt, clock=time.monotonic):
    """Listen for ``plan['seconds']`` in the current namespace; the ``events`` result."""
    conntrack = plan['table'] == 'conntrack'
    program = event_program(flt) if conntrack and plan['kernel_filter'] and not flt.empty else None
    exact = program is not None and expressible(flt)
    if conntrack:
        counter = EventCounter(flt, exact, plan['top'], plan['sample'])
    else:
        counter = ExpectCounter(plan['sample'])
    counts = {}
    with EventSocket(plan['table'], plan['types'], plan['buffer_size'], program) as events:
        counts['before'] = table_count(plan['table'])  # subscribed: every change from now on is seen

        def at_deadline():
            counts['after'] = table_count(plan['table'])

        elapsed, overruns, drained = receive(events.sock, plan['seconds'], counter.consume, clock, at_deadline)
        result = {
            'table': plan['table'],
            'seconds': plan['seconds'],
            'elapsed': round(elapsed, 3),
            'types': plan['types'],
            'received': counter.received,
            'filtered_out': counter.filtered_out,
            'drained': drained,
            'kernel_filter': 'bpf' if program else None,
            'buffer_size': events.buffer_size,
            'buffer_forced': events.forced,
            'overruns': overruns,
        }
    result.update(counter.result(plan['types'], elapsed))
    result['loss'] = loss_account(overruns, counts.get('before'), counts.get('after'), counter, plan, flt)
    result['sample'] = counter.sample
    return result
