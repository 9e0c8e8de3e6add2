# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_entry's ``entries``: many entries made present or absent at once, in large netlink batches.

``validate_entries(params)`` checks every item (messages name ``entries[3].dport``) before anything is
opened; ``ensure_entries(specs, check_mode)`` reads what exists, plans every create, update and delete
(refusing the task before sending anything when one cannot be done), then sends them.

Reading: a table smaller than the list is dumped once; otherwise every entry is asked for with a CT_GET,
hundreds per datagram (each answered by the entry or an error carrying the request's sequence number).
Writing: ctnetlink has no nfnetlink batch begin/end, but the kernel handles every message of a datagram in
order inside sendmsg() and answers a message without NLM_F_ACK only when it fails. So each datagram's
requests go without ACKs but the last, whose ACK is the datagram's fence: one ACK per datagram, and the
errors in between name their requests by sequence number (NETLINK_CAP_ACK keeps them short).

Races: a create that finds the entry there (EEXIST) or an update that finds it gone (ENOENT) is read and
planned again, once; a delete of an entry already gone is no change. Any other refusal fails the task and
undoes what it did: created entries are deleted, updated ones get their old values back, deleted ones are
created again from what was read; the message says what could not be undone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import errno
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW, NFGEN, NFNETLINK_V0, NFNL_MSG_MIN,
    NFNL_SUBSYS_CTNETLINK, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, SOL_NETLINK, NetlinkError,
    iter_messages)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import af_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct, label_bits
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils._entry import (
    LABELS_FULL, NO_ROOM_FOR_LABELS, describe, plan_update, render, same_tuple, undo_changes, zone_of)
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import (
    ENTRY_ARGSPEC, EntrySpec, item_argspec, public)
from ansible_collections.netfilter.conntrack.plugins.module_utils._itemoptions import ItemOptions

# the items are checked by ItemOptions against item_argspec(), not by ansible-core's nested options: for 10^5
# items those cost more than the restore (a copy and a generic check of every item); the docs list the same options
ENTRIES_ARGSPEC = dict(entries=dict(type='list', elements='dict'), saved=dict(type='str'))
ITEM_OPTIONS = ItemOptions(item_argspec(), 'entries')
# the entry options that, with ``entries``, belong in each item (``state`` is the default of every item)
SINGLE_OPTIONS = tuple(name for name in ENTRY_ARGSPEC if name != 'state')
BATCH_BYTES = 1 << 17
SAMPLE = 20
NETLINK_CAP_ACK = 10
_TYPE_AT = 4  # nlmsghdr: length (4), type (2), flags (2), sequence number (4)
_FLAGS_AT = 6
_pack_flags = struct.Struct('=H').pack_into
_pack_head = struct.Struct('=HHI').pack_into  # type, flags, sequence number


# --- validation --------------------------------------------------------------------------------------

def item_error(index, exc):
    """``exc`` (of one item's validation or plan) as the task's error, naming ``entries[index].option``."""
    path = 'entries[%d]' % index
    option = getattr(exc, 'option', None)
    if option and exc.msg.startswith(option):
        msg = '%s.%s' % (path, exc.msg)
    elif option:
        msg = '%s.%s: %s' % (path, option, exc.msg)
    else:
        msg = '%s: %s' % (path, exc.msg)
    return ConntrackError(msg, option='%s.%s' % (path, option) if option else path)


def tuple_key(family, protonum, zone, tup, prefix=''):
    """The key of a tuple (and zone) in an entry dict (keys with ``prefix``) or an identity's tuple."""
    get = tup.get
    return (family, protonum, zone or 0, get(prefix + 'src'), get(prefix + 'dst'), get(prefix + 'sport'),
            get(prefix + 'dport'), get(prefix + 'icmp_type'), get(prefix + 'icmp_code'), get(prefix + 'icmp_id'))


def given_entry_options(params):
    """The single-entry options ``params`` gives (other than state), in argspec order."""
    return [name for name in SINGLE_OPTIONS
            if params.get(name) is not None and params.get(name) != ENTRY_ARGSPEC[name].get('default')]


def validate_saved(params):
    """The parsed ``params['saved']`` (a ``_ctsaved.Saved``); raises ConntrackError naming the option at fault."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils._ctrestore import prepare
    from ansible_collections.netfilter.conntrack.plugins.module_utils._ctsaved import parse

    given = given_entry_options(params)
    if given:
        raise ConntrackError('%s: with saved, the entries are the saved ones: give no entry option' % given[0],
                             option=given[0])
    if (params.get('state') or 'present') != 'present':
        raise ConntrackError('state %s: saved restores entries (state present); to delete them, use '
                             'conntrack_flush or entries with state absent' % params.get('state'), option='state')
    return prepare(parse(params['saved']))


def validate_entries(params):
    """The EntrySpecs of ``params['entries']``, every item validated; raises ConntrackError naming the item."""
    given = given_entry_options(params)
    if given:
        raise ConntrackError('%s: with entries, give the entry options in each item (state is the only one that '
                             'applies to all items)' % given[0], option=given[0])
    default_state = params.get('state') or 'present'
    specs = []
    seen = {}
    check = ITEM_OPTIONS
    for index, item in enumerate(params.get('entries') or ()):
        item = check(item, index)
        try:
            spec = EntrySpec.from_params(item, item=True, default_state=default_state)
        except ConntrackError as exc:
            raise item_error(index, exc)
        ident = spec.identity()
        key = (ident['direction'],) + tuple_key(spec.family, spec.protonum, ident['zone'], ident['tuple'])
        if key in seen:
            raise ConntrackError('entries[%d] names the same entry as entries[%d]: give each entry once'
                                 % (index, seen[key]), option='entries[%d]' % index)
        seen[key] = index
        specs.append(spec)
    return specs


# --- the batched connection ----------------------------------------------------------------------------

class Batch(object):
    """Requests sent many per datagram, without ACKs but the last of each datagram; answers by sequence number.

    ``add(subsys_msg, flags, family, attrs, tag)`` queues a request; ``flush()`` sends the queued ones and waits
    for the fence, then returns ``[(tag, msg_type, family, payload bytes or None, errno or None)]`` for every
    request that was answered (an error, or a reply of a GET). ``acks`` counts the fences.
    """

    def __init__(self, conn, batch_bytes=None):
        self.conn = conn
        self.batch_bytes = batch_bytes or BATCH_BYTES
        self.queued = []
        self.size = 0
        self.tags = {}
        self.answers = []
        self.acks = 0
        self.datagrams = 0
        try:
            conn.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors without the request echoed
        except OSError:
            pass

    def add(self, msg, flags, family, attrs, tag):
        data, seq = self.conn.message(NFNL_SUBSYS_CTNETLINK, msg, flags, family, NFNETLINK_V0, attrs)
        self.queued.append(data)
        self.tags[seq] = tag
        self.size += len(data)
        if self.size >= self.batch_bytes:
            self._send()

    def _send(self):
        if not self.queued:
            return
        last = bytearray(self.queued[-1])
        flags, = struct.unpack_from('=H', last, _FLAGS_AT)
        _pack_flags(last, _FLAGS_AT, flags | NLM_F_ACK)
        fence = struct.unpack_from('=I', last, 8)[0]
        self.queued[-1] = bytes(last)
        self.conn.send(b''.join(self.queued))
        self.queued = []
        self.size = 0
        self.datagrams += 1
        self._receive(fence)
        self.acks += 1

    def _receive(self, fence):
        conn = self.conn
        tags = self.tags
        answers = self.answers
        while True:
            n = conn._recv()  # pylint: disable=protected-access
            buf = conn.buf
            for mtype, _flags, mseq, start, end, code in iter_messages(buf, n):
                tag = tags.get(mseq)
                if tag is None:
                    continue
                if code is None and mtype >= NFNL_MSG_MIN:
                    answers.append((tag, mtype, buf[start], bytes(buf[start + NFGEN.size:end]), None))
                    continue
                if code:
                    answers.append((tag, mtype, None, None, code))
                if mseq == fence:
                    tags.clear()
                    return

    def flush(self):
        self._send()
        answers, self.answers = self.answers, []
        return answers

    def send_buffer(self, buf, starts, tags, msg_type, flags):
        """Send the complete messages that ``buf`` (a bytearray) holds back to back, starting at ``starts``, each
        stamped with ``msg_type``, ``flags`` and the next sequence number, ``batch_bytes`` per datagram (one ACK
        each); {tag: errno} of the messages the kernel refused (``tags[i]`` names the message at ``starts[i]``).
        For saved messages, which need no encoding: the datagrams are slices of ``buf``."""
        conn = self.conn
        view = memoryview(buf)
        table = self.tags
        total = len(starts)
        index = 0
        while index < total:
            begin = starts[index]
            last = max(bisect.bisect_left(starts, begin + self.batch_bytes, index + 1), index + 1)
            end = starts[last] if last < total else len(buf)
            seq = conn.seq
            for at in range(index, last):
                seq = (seq + 1) & 0xffffffff
                _pack_head(buf, starts[at] + _TYPE_AT, msg_type, flags, seq)
                table[seq] = tags[at]
            conn.seq = seq
            _pack_flags(buf, starts[last - 1] + _FLAGS_AT, flags | NLM_F_ACK)
            conn.send(view[begin:end])
            self.datagrams += 1
            self._receive(seq)
            self.acks += 1
            index = last
        refused = {}
        for answer in self.answers:
            if answer[4]:
                refused[answer[0]] = answer[4]
        self.answers = []
        return refused

    def send_all(self, requests):
        """Send every ``(msg, flags, family, attrs, tag)`` of ``requests``, hundreds per datagram; {tag: errno} of
        the requests the kernel refused."""
        refused = {}
        add = self.add
        for msg, flags, family, attrs, tag in requests:
            add(msg, flags, family, attrs, tag)
            if self.answers:
                answers, self.answers = self.answers, []
                for answer in answers:
                    if answer[4]:
                        refused[answer[0]] = answer[4]
        for answer in self.flush():
            if answer[4]:
                refused[answer[0]] = answer[4]
        return refused


# --- reading -------------------------------------------------------------------------------------------

def read_entries(conn, specs, indexes, use_dump):
    """{index: entry dict} of the entries that exist among ``specs[i] for i in indexes`` (looked up as the
    kernel does: by the tuple given, in either direction of an entry)."""
    found = {}
    if use_dump:
        orig, reply = {}, {}
        for entry in conn.dump():
            orig[tuple_key(entry['family'], entry.get('protonum'), zone_of(entry, 'orig'), entry)] = entry
            reply[tuple_key(entry['family'], entry.get('protonum'), zone_of(entry, 'reply'), entry, 'reply_')] = entry
        for index in indexes:
            spec = specs[index]
            ident = spec.identity()
            key = tuple_key(spec.family, spec.protonum, ident['zone'], ident['tuple'])
            first, second = (orig, reply) if ident['direction'] == 'orig' else (reply, orig)
            entry = first.get(key) or second.get(key)
            if entry is not None:
                found[index] = entry
        return found
    batch = Batch(conn)
    answers = []
    for index in indexes:
        ident = specs[index].identity()
        batch.add(IPCTNL_MSG_CT_GET, NLM_F_REQUEST, af_of(ident['family']), ctw.identity_attrs(ident), index)
        if batch.answers:
            answers.extend(batch.flush())
    answers.extend(batch.flush())
    for index, _mtype, family, payload, code in answers:
        if code is None:
            found[index] = decode_ct(payload, 0, len(payload), family)
        elif code != errno.ENOENT:
            raise item_error(index, ctw.explain(NetlinkError(code, 'reading the entry'), 'reading the entry'))
    return found


# --- planning ------------------------------------------------------------------------------------------

class Plan(object):
    """What a run does: ``creates`` [(index, entry)], ``updates`` [(index, current, changes, after)],
    ``deletes`` [(index, current)], ``unchanged`` (a count)."""

    def __init__(self):
        self.creates = []
        self.updates = []
        self.deletes = []
        self.unchanged = 0


def plan(specs, indexes, found, result_plan=None):
    """Add to ``result_plan`` (a new Plan by default) what makes ``specs[i]`` (``i`` in ``indexes``) hold, given the
    existing entries ``found``. Raises ConntrackError naming every item that cannot be done (nothing sent yet)."""
    todo = result_plan or Plan()
    problems = []
    for index in indexes:
        spec = specs[index]
        ident = spec.identity()
        current = found.get(index)
        try:
            if current is not None and not same_tuple(current, ident):
                if spec.state != 'absent':
                    raise ConntrackError('the %s tuple asked for is the %s tuple of another entry (%s): the kernel '
                                         'cannot hold both' % ('original' if ident['direction'] == 'orig' else 'reply',
                                                               'reply' if ident['direction'] == 'orig' else 'original',
                                                               describe(current)), option='src')
                current = None
            if spec.state == 'absent':
                if current is not None:
                    todo.deletes.append((index, current))
                else:
                    todo.unchanged += 1
            elif current is None:
                missing = spec.create_missing()
                if missing:
                    raise ConntrackError('the entry does not exist, and creating it needs %s (missing)'
                                         % ', '.join(missing), option=missing[0])
                todo.creates.append((index, spec.creation()))
            else:
                changes, after = plan_update(spec, current)
                if changes:
                    todo.updates.append((index, current, changes, after))
                else:
                    todo.unchanged += 1
        except ConntrackError as exc:
            problems.append(item_error(index, exc))
    if problems:
        raise failure(problems, 'nothing was changed')
    return todo


def failure(problems, outcome):
    """One ConntrackError for the items in ``problems`` (their errors), the first few named in the message."""
    shown = '; '.join(exc.msg for exc in problems[:5])
    more = ' (and %d more)' % (len(problems) - 5) if len(problems) > 5 else ''
    if len(problems) == 1:
        msg = '%s; %s' % (shown, outcome)
    else:
        msg = '%d entries failed: %s%s; %s' % (len(problems), shown, more, outcome)
    return ConntrackError(msg, option=problems[0].option,
                          failed_entries=[{'option': exc.option, 'msg': exc.msg} for exc in problems])


# --- writing -------------------------------------------------------------------------------------------

class Writer(object):
    """Sends a Plan in batches and keeps what undoes each applied step."""

    def __init__(self, conn, specs):
        self.batch = Batch(conn)
        self.specs = specs
        self.created = []   # (index, ident)
        self.updated = []   # (index, current, changes)
        self.deleted = []   # (index, current)
        self.vanished = set()  # indexes of entries gone before their delete
        self.labels_refused = set()  # indexes whose labels the kernel refused

    def _send(self, requests):
        """Send (msg, flags, family, attrs, index) requests; {index: errno} of those refused."""
        return self.batch.send_all(requests)

    def probe_labels(self, updates):
        """Labels under an empty mask change nothing but are refused (ENOSPC) by an entry without room."""
        specs = self.specs
        refused = self._send(((IPCTNL_MSG_CT_NEW, NLM_F_REQUEST, af_of(specs[i].family),
                               ctw.update_attrs(specs[i].identity(), {'labels': 0, 'labels_mask': 0}), i)
                              for i, _current, changes, _after in updates if 'labels' in changes))
        self.labels_refused.update(refused)
        return refused

    def updates(self, updates):
        specs = self.specs
        requests = []
        for index, _current, changes, _after in updates:
            update = dict(changes)
            state = update.pop('protoinfo', None)
            requests.append((IPCTNL_MSG_CT_NEW, NLM_F_REQUEST, af_of(specs[index].family),
                             ctw.update_attrs(specs[index].identity(), update, state, specs[index].protonum), index))
        refused = self._send(requests)
        self.updated.extend((i, c, ch) for i, c, ch, _a in updates if i not in refused)
        return refused

    def creates(self, creates):
        specs = self.specs
        labels = []
        requests = []
        for index, entry in creates:
            if entry.get('labels'):
                entry = dict(entry)
                labels.append((index, label_bits(entry.pop('labels'))))
            requests.append((IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, af_of(entry['family']),
                             ctw.create_attrs(entry), index))
        refused = self._send(requests)
        self.created.extend((i, specs[i].identity()) for i, _e in creates if i not in refused)
        if labels:
            # the kernel ignores labels in a create: they follow in an update of the new entries
            more = self._send([(IPCTNL_MSG_CT_NEW, NLM_F_REQUEST, af_of(specs[i].family),
                                ctw.update_attrs(specs[i].identity(), {'labels': bits, 'labels_mask': LABELS_FULL}), i)
                               for i, bits in labels if i not in refused])
            refused.update(more)
            self.labels_refused.update(more)
        return refused

    def deletes(self, deletes):
        specs = self.specs
        refused = self._send([(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST, af_of(specs[i].family),
                               ctw.delete_attrs(specs[i].identity(), current.get('id')), i)
                              for i, current in deletes])
        for index, current in deletes:
            code = refused.get(index)
            if code is None:
                self.deleted.append((index, current))
            elif code == errno.ENOENT:
                self.vanished.add(index)
                del refused[index]
        return refused

    def undo(self):
        """Undo every applied step; the number of steps that could not be undone."""
        specs = self.specs
        requests = [(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST, af_of(ident['family']), ctw.identity_attrs(ident), i)
                    for i, ident in self.created]
        for index, current, changes in self.updated:
            restore, state = undo_changes(current, changes)
            if restore or state:
                requests.append((IPCTNL_MSG_CT_NEW, NLM_F_REQUEST, af_of(specs[index].family),
                                 ctw.update_attrs(specs[index].identity(), restore, state, specs[index].protonum), index))
        for index, current in self.deleted:
            try:
                entry = EntrySpec.from_params(current, item=True).creation()
            except ConntrackError:
                requests.append(None)
                continue
            requests.append((IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, af_of(entry['family']),
                             ctw.create_attrs(entry), index))
        lost = sum(1 for request in requests if request is None)
        try:
            refused = self._send([request for request in requests if request is not None])
        except ConntrackError:
            return len(requests)
        return lost + sum(1 for code in refused.values() if code != errno.ENOENT)


# --- the task ------------------------------------------------------------------------------------------

def ensure_entries(specs, check_mode=False, use_dump=None):
    """Make every entry of ``specs`` hold. Returns the result dict (counts, a sample of the changes, diff).
    ``use_dump``: read the table with one dump (True) or the entries with GETs (False); by default a dump
    when the table holds no more entries than the list."""
    indexes = range(len(specs))
    with Connection() as conn:
        if use_dump is None:
            count = conn.stats_global().get('count')
            use_dump = count is not None and count <= len(specs)
        todo = plan(specs, indexes, read_entries(conn, specs, indexes, use_dump))
        if check_mode:
            return _result(todo, None, len(specs))
        writer = Writer(conn, specs)
        return _result(_apply(writer, specs, todo), writer, len(specs))


def _apply(writer, specs, todo):
    """Send ``todo`` (updates, creates, deletes); read and plan raced entries again, once; undo everything on
    any other refusal. Returns the Plan of what was done."""
    done = Plan()
    done.unchanged = todo.unchanged
    for attempt in (0, 1):
        refused = {}
        if todo.updates:
            probe = dict((i, code) for i, code in writer.probe_labels(todo.updates).items() if code != errno.ENOENT)
            if probe:
                raise _refusal(writer, specs, probe)
            refused.update(writer.updates(todo.updates))
        if todo.creates:
            refused.update(writer.creates(todo.creates))
        if todo.deletes:
            refused.update(writer.deletes(todo.deletes))
        done.creates += [item for item in todo.creates if item[0] not in refused]
        done.updates += [item for item in todo.updates if item[0] not in refused]
        done.deletes += [item for item in todo.deletes if item[0] not in refused and item[0] not in writer.vanished]
        done.unchanged += sum(1 for item in todo.deletes if item[0] in writer.vanished)
        if not refused:
            return done
        raced = sorted(i for i, code in refused.items() if code in (errno.EEXIST, errno.ENOENT))
        if attempt or len(raced) != len(refused):
            raise _refusal(writer, specs, refused)
        writer.vanished = set()
        try:
            todo = plan(specs, raced, read_entries(writer.batch.conn, specs, raced, False))
        except ConntrackError as exc:
            raise _undone(writer, exc)
        done.unchanged += todo.unchanged
    return done


def _refusal(writer, specs, refused):
    """The task's error for the kernel's refusals ``refused`` ({index: errno}), after undoing what was done."""
    problems = []
    for index, code in sorted(refused.items()):
        if code == errno.ENOSPC and index in writer.labels_refused:
            problems.append(item_error(index, ConntrackError(NO_ROOM_FOR_LABELS, option='labels')))
            continue
        action = 'writing %s' % describe(public(specs[index].creation()))
        problems.append(item_error(index, ctw.explain(NetlinkError(code, action), action)))
    return _undone(writer, failure(problems, ''))


def _undone(writer, exc):
    lost = writer.undo()
    outcome = ('what this task had changed was undone' if not lost else
               '%d change(s) of this task could not be undone: check the table' % lost)
    msg = exc.msg[:-2] if exc.msg.endswith('; ') else exc.msg
    details = dict(exc.details, undone=not lost)
    return ConntrackError('%s; %s' % (msg, outcome), option=exc.option, **details)


def _result(done, writer, total):
    result = {
        'changed': bool(done.creates or done.updates or done.deletes),
        'created': len(done.creates), 'updated': len(done.updates), 'deleted': len(done.deletes),
        'unchanged': done.unchanged, 'total': total,
    }
    sample = []
    before, after = [], []
    for index, entry in done.creates[:SAMPLE]:
        sample.append({'index': index, 'action': 'created', 'entry': public(entry)})
        after.append('# entries[%d] created\n%s' % (index, render(public(entry))))
    for index, current, changes, new in done.updates[:SAMPLE]:
        names = sorted(set('tcp_state' if k == 'protoinfo' else k for k in changes) - {'mark_mask', 'labels_mask'})
        sample.append({'index': index, 'action': 'updated', 'changes': names})
        show = 'timeout' in changes
        before.append('# entries[%d]\n%s' % (index, render(current, show)))
        after.append('# entries[%d] updated\n%s' % (index, render(new, show)))
    for index, current in done.deletes[:SAMPLE]:
        sample.append({'index': index, 'action': 'deleted'})
        before.append('# entries[%d] deleted\n%s' % (index, render(current)))
    counts = '# created %(created)d, updated %(updated)d, deleted %(deleted)d, unchanged %(unchanged)d\n' % result
    result['sample'] = sorted(sample, key=lambda item: item['index'])[:SAMPLE]
    result['diff'] = {'before': ''.join(before), 'after': ''.join(after) + counts}
    if writer is not None:
        result['batches'] = {'datagrams': writer.batch.datagrams, 'acks': writer.batch.acks}
    return result


# --- the module's two forms ------------------------------------------------------------------------------

def validate_task(params):
    """conntrack_entry's validation: ('saved', Saved) with ``saved``, ('entries', [EntrySpec]) with ``entries``,
    else ('entry', EntrySpec)."""
    if params.get('saved') is not None:
        return 'saved', validate_saved(params)
    if params.get('entries') is not None:
        return 'entries', validate_entries(params)
    return 'entry', EntrySpec.from_params(params)


def ensure_task(checked, check_mode):
    """conntrack_entry's work on what ``validate_task`` returned."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils._entry import ensure

    form, spec = checked
    if form == 'saved':
        from ansible_collections.netfilter.conntrack.plugins.module_utils._ctrestore import restore
        return restore(spec, check_mode=check_mode)
    if form == 'entries':
        return ensure_entries(spec, check_mode=check_mode)
    return ensure(spec, check_mode=check_mode)
