# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read side of conntrack -L/-G/-C/-S: what conntrack_info returns.

``gather(params)`` returns ``(result, warnings)``. It never changes anything in the kernel.
Entries are streamed; summaries are computed while streaming, with bounded memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import heapq
import itertools
import json
import socket

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    ConntrackError, MissingLibraryError, conntrack_available, have_library)
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_GET_DYING, IPCTNL_MSG_CT_GET_UNCONFIRMED)
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter, kernel_selects_exactly
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import FAMILY_NAMES, PROTO_NAMES, STATUS_VALUES
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import (
    batch_brief, batch_dict, batch_json, brief_of, plain_batch)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection, Joined
from ansible_collections.netfilter.conntrack.plugins.module_utils import _procfs as procfs

INFO_ARGSPEC = dict(
    entries=dict(type='bool', default=False),
    limit=dict(type='int', default=1000),
    summary=dict(type='bool', default=False),
    top=dict(type='int', default=10),
    expectations=dict(type='bool', default=False),
    query=dict(type='str'),
    backend=dict(type='str', default='auto', choices=['auto', 'netlink', 'procfs']),
    as_facts=dict(type='bool', default=False),
    table=dict(type='str', default='conntrack', choices=['conntrack', 'dying', 'unconfirmed']),
    saved=dict(type='bool', default=False),
)
# the dump message of each table conntrack_info lists (conntrack -L conntrack|dying|unconfirmed)
TABLE_MESSAGES = {'conntrack': IPCTNL_MSG_CT_GET, 'dying': IPCTNL_MSG_CT_GET_DYING,
                  'unconfirmed': IPCTNL_MSG_CT_GET_UNCONFIRMED}


class TopCounter(object):
    """Counts keys with bounded memory: exact while there are at most ``capacity`` distinct keys,
    then keeps the heaviest ``capacity`` keys (counts may then undercount, flagged ``approximate``).
    ``counts`` is a plain dict the caller increments; call ``prune()`` now and then."""

    def __init__(self, capacity=20000):
        self.capacity = capacity
        self.counts = {}
        self.approximate = False

    def prune(self):
        if len(self.counts) > 2 * self.capacity:
            keep = heapq.nlargest(self.capacity, self.counts.items(), key=lambda kv: kv[1])
            self.counts.clear()
            self.counts.update(keep)
            self.approximate = True

    def top(self, n, name, fmt=None):
        text = fmt or str
        rows = heapq.nlargest(n, self.counts.items(), key=lambda kv: (kv[1], text(kv[0])))
        return [{name: fmt(key) if fmt else key, 'count': count} for key, count in rows]


def _address_text(raw):
    """An address of a brief record as text (bytes from netlink; text already from other sources)."""
    if isinstance(raw, bytes):
        return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return raw


def _port_text(key):
    return '%s/%d' % (PROTO_NAMES.get(key >> 16) or str(key >> 16), key & 0xffff)


class Summary(object):
    """Counts while the table streams; memory bounded by the TopCounters' capacity.

    It counts brief records (``_ctlayout.batch_brief``, ``brief_of``): the (family, proto, state,
    zone, status) combination in one dict, sources, destinations and (proto, dport) in three bounded
    counters, all keyed by raw values; names and text are made once, for the result.
    """

    PRUNE_EVERY = 8192

    def __init__(self, top):
        self.top_n = top
        self.total = 0
        self.combos = {}
        self.sources = TopCounter()
        self.destinations = TopCounter()
        self.dports = TopCounter()

    def consume(self, briefs):
        """Count every brief record of an iterable (the hot loop: local names only)."""
        combos = self.combos
        src_c, dst_c, port_c = self.sources.counts, self.destinations.counts, self.dports.counts
        total = self.total
        prune_every = self.PRUNE_EVERY
        for combo, src, dst, port in briefs:
            total += 1
            combos[combo] = combos.get(combo, 0) + 1
            src_c[src] = src_c.get(src, 0) + 1
            dst_c[dst] = dst_c.get(dst, 0) + 1
            if port is not None:
                port_c[port] = port_c.get(port, 0) + 1
            if not total % prune_every:
                self.sources.prune()
                self.destinations.prune()
                self.dports.prune()
        self.total = total

    def add(self, entry):
        """Count one entry dict."""
        self.consume((brief_of(entry),))

    def result(self):
        by_family, by_proto, by_state, by_zone = {}, {}, {}, {}
        assured = unreplied = 0
        assured_bit, replied_bit = STATUS_VALUES['ASSURED'], STATUS_VALUES['SEEN_REPLY']
        for (af, num, state, zone, status), count in self.combos.items():
            family = FAMILY_NAMES.get(af, str(af))
            proto = PROTO_NAMES.get(num) or ('unknown' if num is None else str(num))
            by_family[family] = by_family.get(family, 0) + count
            by_proto[proto] = by_proto.get(proto, 0) + count
            if state is not None:
                key = state if proto == 'tcp' else '%s/%s' % (proto, state)
                by_state[key] = by_state.get(key, 0) + count
            by_zone[str(zone)] = by_zone.get(str(zone), 0) + count
            if status & assured_bit:
                assured += count
            if not status & replied_bit:
                unreplied += count
        n = self.top_n
        return {
            'total': self.total,
            'by_family': by_family,
            'by_proto': by_proto,
            'by_state': by_state,
            'by_zone': by_zone,
            'by_status': {'ASSURED': assured, 'UNREPLIED': unreplied},
            'top_sources': self.sources.top(n, 'src', _address_text),
            'top_destinations': self.destinations.top(n, 'dst', _address_text),
            'top_dports': self.dports.top(n, 'dport', _port_text),
            'approximate': self.sources.approximate or self.destinations.approximate or self.dports.approximate,
        }


class EntryStream(object):
    """Entries to be written as a JSON array while they stream (``iterable`` yields lists of them);
    ``trailer()`` gives the keys known only at the end (``matched``, ``truncated``)."""

    def __init__(self, iterable, limit, text=False):
        self.iterable = iterable
        self.limit = limit
        self.matched = 0
        self.text = text  # items are JSON texts already

    def chunks(self):
        """The entries in lists (one per batch of the stream), up to ``limit``; counts all of them."""
        limit = self.limit
        for items in self.iterable:
            before = self.matched
            self.matched += getattr(items, 'entries', len(items))
            if not limit or self.matched <= limit:
                yield items
            elif before < limit:
                yield _first(items, limit - before)

    def trailer(self):
        return {'matched': self.matched, 'truncated': bool(self.limit) and self.matched > self.limit}


def _first(items, count):
    """The first ``count`` entries of a batch (of JSON texts joined into one, too)."""
    if isinstance(items, Joined):
        return [json.dumps(entry) for entry in json.loads('[%s]' % items[0])[:count]]
    return items[:count]


def choose_backend(requested):
    """'netlink' or 'procfs' and an optional warning. The netlink codec needs only the standard library."""
    if requested == 'procfs':
        return 'procfs', None
    return 'netlink', None


def _parallel_dumps(requests, batch):
    """Run several kernel-filtered dumps at once, one socket and thread each; yield lists of entries.

    A tuple filter without a family needs one dump per family, and each dump walks the whole
    table in the kernel (inside recv(), which releases the GIL): side by side the walks overlap.
    """
    import queue
    import threading

    chunks = queue.Queue(maxsize=64)
    stop = threading.Event()
    done = object()

    def put(item):
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker(family, attrs):
        try:
            with Connection() as conn:
                for items in conn.dump_batches(family, attrs, batch=batch):
                    if not put(items):
                        return
        except ConntrackError as exc:
            put(exc)
        finally:
            put(done)

    threads = [threading.Thread(target=worker, args=request, name='ctnetlink-dump') for request in requests]
    for thread in threads:
        thread.daemon = True
        thread.start()
    remaining = len(threads)
    try:
        while remaining:
            item = chunks.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, ConntrackError):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


# what each kind of stream yields: the batch decoder of a kernel-exact dump, and the conversion of an
# entry dict (entries the Python predicate has to see are decoded to dicts first)
_KINDS = {
    'dict': (batch_dict, None),
    'json': (batch_json, json.dumps),
    'brief': (batch_brief, brief_of),
}


def _limited(batch, limit):
    """``batch`` for the first ``limit`` entries, then only counting (0 for each entry): a listing with a
    limit still reports how many entries matched, without decoding those it will not return."""
    left = [limit]
    count_only = plain_batch(lambda *_args: 0)

    def run(buf, n, seq, out):
        if left[0] <= 0:
            return count_only(buf, n, seq, out)
        code = batch(buf, n, seq, out)
        left[0] -= len(out)
        return code
    return run


def _filtered(batch, pred, convert):
    """``batch`` (of entry dicts) keeping the entries ``pred`` accepts, converted by ``convert``."""
    def run(buf, n, seq, out):
        items = []
        code = batch(buf, n, seq, items)
        out.extend(item if convert is None else convert(item) for item in items if pred(item))
        return code
    return run


def stream_batches(backend, flt, kind='dict', limit=0, table='conntrack'):
    """Yield lists of the entries matching ``flt``, from the chosen backend: entry dicts (``kind='dict'``),
    their JSON texts (``'json'``) or the brief records a summary counts (``'brief'``). With ``limit``, entries
    after the first ``limit`` may come as placeholders (0): for counting only.

    Conditions the kernel cannot check are tested in Python on entry dicts, which are then converted;
    when the kernel selects exactly, the batch decoders turn the dumped bytes into the wanted kind
    directly, and a second process receives the dump while this one decodes. ``table``: the dying and
    unconfirmed lists are dumped whole (the kernel filters only the main table) and filtered in Python.
    """
    batch, convert = _KINDS[kind]
    main = table == 'conntrack'
    exact = backend == 'netlink' and main and kernel_selects_exactly(flt)
    pred = None if exact or flt.empty else flt.match
    if backend == 'netlink':
        if pred is not None:
            batch = _filtered(_KINDS['dict'][0], pred, convert)
        elif limit:
            batch = _limited(batch, limit)  # entries past the limit are counted, not decoded
        if not main:
            with Connection() as conn:
                yield from conn.dump_batches(0, b'', batch=batch, msg=TABLE_MESSAGES[table])
            return
        requests = flt.kernel_requests()
        if len(requests) > 1:
            yield from _parallel_dumps(requests, batch)
            return
        with Connection() as conn:
            for family, attrs in requests:
                yield from conn.dump_batches(family, attrs, batch=batch, threaded=True, share=True)
        return
    source = procfs.entries()
    if source is None:
        raise ConntrackError('backend procfs: this host has no /proc/net/nf_conntrack (a kernel built without '
                             'CONFIG_NF_CONNTRACK_PROCFS); use backend: netlink, the default', option='backend')
    chunk = []
    for entry in source:
        if pred is None or pred(entry):
            chunk.append(entry if convert is None else convert(entry))
            if len(chunk) >= 512:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def stream_entries(backend, flt, kind='dict', table='conntrack'):
    """The entries of ``stream_batches``, one by one."""
    return itertools.chain.from_iterable(stream_batches(backend, flt, kind, table=table))


def validate(params):
    """Check the options that do not touch the kernel; return the Filter. Raises ConntrackError."""
    if params.get('limit') is not None and params['limit'] < 0:
        raise ConntrackError('limit %s is negative: give 0 for no limit or a positive number of entries'
                             % params['limit'], option='limit')
    if params.get('top') is not None and params['top'] < 1:
        raise ConntrackError('top %s must be at least 1' % params['top'], option='top')
    flt = Filter.from_params(params)
    table = params.get('table') or 'conntrack'
    if table != 'conntrack' and params.get('backend') == 'procfs':
        raise ConntrackError('table %s needs the netlink backend: /proc/net/nf_conntrack shows the main table only '
                             '(use backend auto or netlink)' % table, option='table')
    if params.get('query'):
        compile_query(params['query'])
    if params.get('saved'):
        if not flt.empty:
            raise ConntrackError('saved saves the whole table: give it without filter options (given: %s)'
                                 % flt.describe(), option='saved')
        if table != 'conntrack' or params.get('backend') == 'procfs':
            raise ConntrackError('saved saves the main table over netlink: give it with table conntrack and '
                                 'backend auto or netlink', option='saved')
    if params.get('events') is not None:
        _events().validate_events(params, flt)
    return flt


def _events():
    """_ctevents, imported when asked for (it counts events with this file's Summary)."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctevents
    return _ctevents


def compile_query(expression):
    """The compiled JMESPath ``query``; a syntax error, or an expression too deeply nested to parse, is the
    user's ``query`` error."""
    if not have_library('jmespath'):
        raise MissingLibraryError('jmespath', 'the query option')
    import jmespath
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConntrackError('query %r is not a valid JMESPath expression: %s' % (_shorten(expression), exc),
                             option='query')
    except RecursionError:
        raise ConntrackError('query %r is nested too deeply to evaluate: simplify the expression'
                             % _shorten(expression), option='query')


def run_query(query, expression, data):
    """``query.search(data)``; a JMESPath runtime error (a function on the wrong type, ...) is a ``query`` error."""
    import jmespath
    try:
        return query.search(data)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConntrackError('query %r failed on the result: %s' % (_shorten(expression), exc), option='query')
    except RecursionError:
        raise ConntrackError('query %r is nested too deeply to evaluate: simplify the expression'
                             % _shorten(expression), option='query')


def _shorten(text, size=200):
    return text if len(text) <= size else text[:size] + '...'


def gather(params, namespace=None, initial_namespace=True, flt=None):
    """Build the conntrack_info result. Returns (result, warnings). ``flt``: the Filter ``validate`` returned
    (validated once, before the namespace was entered)."""
    if flt is None:
        flt = validate(params)
    if not conntrack_available():
        raise ConntrackError('connection tracking is not active in this %s: /proc/sys/net/netfilter/'
                             'nf_conntrack_count is missing (nf_conntrack is not loaded or not built into this '
                             'kernel)' % ('network namespace' if namespace else 'kernel'),
                             kernel=procfs.kernel_facts(initial_namespace))  # memory and CPUs, to size it once loaded
    warnings = []
    table = params.get('table') or 'conntrack'
    backend, warning = choose_backend(params.get('backend') or 'auto')
    if warning:
        warnings.append(warning)

    count = procfs.count()
    limit_max = procfs.maximum()
    per_cpu = None
    if backend == 'netlink':
        try:
            with Connection() as conn:
                per_cpu = conn.stats_cpu()
        except ConntrackError as exc:
            warnings.append('per-CPU statistics over netlink failed (%s); read /proc instead' % exc.msg)
    if per_cpu is None:
        per_cpu = procfs.stats_per_cpu()

    result = {
        'count': count,
        'max': limit_max,
        'usage_percent': round(100.0 * count / limit_max, 2) if limit_max else None,
        'buckets': procfs.buckets(),
        'stats': procfs.sum_stats(per_cpu),
        'stats_per_cpu': per_cpu,
        'sysctls': procfs.sysctls(),
        'kernel': procfs.kernel_facts(initial_namespace),
        'backend': backend,
        'namespace': namespace,
        'filter': flt.given,
        'table': table,
    }

    if params.get('saved'):
        from ansible_collections.netfilter.conntrack.plugins.module_utils._ctrestore import save
        with Connection() as conn:
            result['saved'], result['saved_entries'] = save(conn)

    streamable = (params.get('entries') and not params.get('summary') and not params.get('query')
                  and not params.get('as_facts') and not params.get('expectations'))
    if streamable:
        # Listing only: the entries are written to the module's output while the table streams
        # (see _common.exit_with_bulk), so memory stays bounded whatever the table size.
        limit = params.get('limit') or 0
        result['entries'] = EntryStream(stream_batches(backend, flt, 'json', limit, table), limit, text=True)
    elif params.get('entries'):
        limit = params.get('limit') or 0
        summary = Summary(params.get('top') or 10) if params.get('summary') else None
        listed = []
        matched = 0
        for entry in stream_entries(backend, flt, table=table):
            matched += 1
            if summary is not None:
                summary.add(entry)
            if not limit or len(listed) < limit:
                listed.append(entry)
        result['matched'] = matched
        result['entries'] = listed
        result['truncated'] = bool(limit) and matched > limit
        if summary is not None:
            result['summary'] = summary.result()
    elif params.get('summary'):
        summary = Summary(params.get('top') or 10)
        summary.consume(stream_entries(backend, flt, 'brief', table))
        result['matched'] = summary.total
        result['summary'] = summary.result()

    if params.get('expectations'):
        if backend == 'netlink':
            with Connection() as conn:
                result['expectations'] = list(conn.dump_expect())
        else:
            exps = procfs.expectations()
            if exps is None:
                raise ConntrackError('backend procfs: this host has no /proc/net/nf_conntrack_expect (a kernel '
                                     'built without CONFIG_NF_CONNTRACK_PROCFS); use backend: netlink, the '
                                     'default', option='backend')
            result['expectations'] = exps

    if params.get('events') is not None:
        events = _events()
        result['events'] = events.watch(events.validate_events(params, flt), flt)

    if params.get('query'):
        query = compile_query(params['query'])
        result = {'backend': backend, 'namespace': namespace, 'query': params['query'],
                  'query_result': run_query(query, params['query'], result)}
    return result, warnings
