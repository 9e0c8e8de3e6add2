# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Saving the table in its saved form (``_ctsaved``) and restoring it: conntrack_info and conntrack_entry ``saved``.

Saving is one dump; each entry's message is kept as the kernel wrote it, less what a create does not take.
Restoring sends each message back as a create (CT_NEW with NLM_F_CREATE|NLM_F_EXCL), hundreds per datagram with
one ACK each (``_entrybatch.Batch``). An entry that exists already answers EEXIST: it is left as it is and
counted unchanged, as ``conntrack -R`` leaves it, so a second run changes nothing. The kernel ignores labels in a
create, so the entries with labels get them in an update that follows. Any other refusal fails the task, and the
entries this run created are deleted again (by their original tuple and zone). Check mode reads the keys (tuples
and zone) of the table and counts the saved entries whose tuples are not taken; so does a restore that could pass
nf_conntrack_max, which it refuses before sending anything if it would (the kernel would drop live entries).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, NFNETLINK_V0, NFNL_HDRLEN, NFNL_SUBSYS_CTNETLINK, NLA, NLA_HDRLEN,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkError, iter_attrs, nfnl_message, nla)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import plain_batch
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils import _procfs as procfs
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctsaved import (
    CT_NEW, CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE, Encoder, Stripper, lookup_keys)
from ansible_collections.netfilter.conntrack.plugins.module_utils._entry import NO_ROOM_FOR_LABELS, describe, render
from ansible_collections.netfilter.conntrack.plugins.module_utils._entrybatch import SAMPLE, Batch

CTA_LABELS_MASK = 23
IPS_NAT = 0x10 | 0x20  # IPS_SRC_NAT, IPS_DST_NAT
CREATE = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
SHOWN = 5
_unpack_nla = NLA.unpack_from


# --- saving ------------------------------------------------------------------------------------------

def save(conn, threaded=True):
    """(saved text, entries) of the whole conntrack table of ``conn``'s namespace (``threaded``: see
    ``Connection.dump_batches``)."""
    encoder = Encoder()
    for items in conn.dump_batches(batch=plain_batch(Stripper()), threaded=threaded):
        encoder.add(b''.join(items), len(items))
    return encoder.text(), encoder.count


# --- the keys check mode compares ----------------------------------------------------------------------

def keys_of(buf, start, end, family):
    """The lookup keys (``_ctsaved.lookup_keys``) of the dumped entry whose attributes are ``buf[start:end]``."""
    orig = reply = zone = b''
    for kind, p, pend in iter_attrs(buf, start, end):
        if kind == CTA_TUPLE_ORIG:
            orig = bytes(buf[p:pend])
        elif kind == CTA_TUPLE_REPLY:
            reply = bytes(buf[p:pend])
        elif kind == CTA_ZONE:
            zone = bytes(buf[p:pend])
    return lookup_keys(family, orig, reply, zone)


def table_keys(conn):
    """The set of the keys (``keys_of``) of every entry of the table."""
    keys = set()
    for items in conn.dump_batches(batch=plain_batch(keys_of)):
        for pair in items:
            keys.update(pair)
    return keys


# --- restoring -----------------------------------------------------------------------------------------

def prepare(saved):
    """Set ``saved.nat``: {index: create attributes} of the NAT entries. The kernel translates an entry only when
    the create asks for the translation (CTA_NAT_SRC/CTA_NAT_DST), not when it is given the translated reply tuple,
    so these few go as conntrack_entry creates a NAT entry listed by conntrack_info. Raises ConntrackError naming
    ``saved[index]`` for an entry that cannot be created so (nothing is sent before)."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import EntrySpec

    saved.nat = {}
    for index, (start, end, family, _layout, status) in enumerate(saved.messages):
        if not status & IPS_NAT:
            continue
        try:
            entry = EntrySpec.from_params(decode_ct(saved.raw, start + NFNL_HDRLEN, end, family), item=True).creation()
        except ConntrackError as exc:
            raise ConntrackError('saved[%d]: this NAT entry cannot be restored: %s' % (index, exc.msg),
                                 option='saved[%d]' % index)
        except Exception:  # pylint: disable=broad-except
            # bytes the checks of _ctsaved let through but the decoder cannot read: the value was made by hand
            raise ConntrackError('saved[%d]: this NAT entry cannot be read (the saved value was changed)' % index,
                                 option='saved[%d]' % index)
        entry.pop('labels', None)  # they follow in an update, as for every entry
        saved.nat[index] = ctw.create_attrs(entry)
    return saved


def restore(saved, check_mode=False):
    """Create every entry of ``saved`` (a ``_ctsaved.Saved``) that is not in the table. Returns the result dict;
    raises ConntrackError, after deleting what it created, when the kernel refuses an entry."""
    messages = saved.messages
    nat = saved.nat if saved.nat is not None else prepare(saved).nat
    count, limit = procfs.count(), procfs.maximum()
    # the kernel makes room past nf_conntrack_max by dropping entries not yet assured (live connections): a restore
    # that could pass it is counted first, and refused before anything is sent when it would
    crowded = bool(limit) and count is not None and count + saved.count > limit
    with Connection() as conn:
        if check_mode or crowded:
            created = would_create(conn, saved)
            if check_mode:
                return _result(saved, created, None)
            if count + len(created) > limit:
                raise ConntrackError('saved: creating its %d missing entries in a table of %d would pass '
                                     'nf_conntrack_max %d, and the kernel would drop live entries to make room: '
                                     'raise nf_conntrack_max first (conntrack_sysctl), or make room'
                                     % (len(created), count, limit), option='saved')
        batch = Batch(conn)
        buf, starts = _packed(saved, nat)
        try:
            refused = batch.send_buffer(buf, starts, range(len(messages)), CT_NEW, CREATE)
        except ConntrackError as exc:
            # the socket failed (no answer of the kernel says which entries it created): say where it stopped
            raise ConntrackError('saved: the restore stopped after %d datagrams (%s); the entries of the datagrams '
                                 'sent may have been created: run the task again to create the rest (entries there '
                                 'are left as they are)' % (batch.datagrams, exc.msg), option='saved')
        del buf
        created = [i for i in range(len(messages)) if i not in refused]
        problems = dict((i, code) for i, code in refused.items() if code != errno.EEXIST)
        labels = {}
        if not problems:
            try:
                labels = batch.send_all(_label_updates(saved, created))
            except ConntrackError as exc:
                lost = _undo(saved, batch, created)
                raise ConntrackError('saved: giving the created entries their labels failed (%s); %s'
                                     % (exc.msg, _outcome(lost, len(created))), option='saved', undone=not lost)
            problems = labels
        if problems:
            raise _failure(saved, batch, created, problems, labels)
        return _result(saved, created, batch)


def would_create(conn, saved):
    """The indexes of the saved entries that a restore would create: those whose tuples are not taken in the
    table (or by a saved entry before them)."""
    taken = table_keys(conn)
    created = []
    for index in range(saved.count):
        orig, reply = saved.keys(index)  # from the spans the walk found: no second walk of the message
        if orig not in taken and reply not in taken:
            created.append(index)
            taken.add(orig)
            taken.add(reply)
    return created


def _packed(saved, nat):
    """(bytearray, starts) of the create messages of every saved entry, back to back: the saved messages as they
    are, the NAT ones (``nat``: {index: attributes}) encoded anew."""
    raw = saved.raw
    messages = saved.messages
    if not nat:
        return bytearray(raw), [m[0] for m in messages]
    parts = []
    starts = []
    size = 0
    for index, (start, end, family, _layout, _status) in enumerate(messages):
        attrs = nat.get(index)
        data = raw[start:end] if attrs is None else nfnl_message(
            NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, 0, 0, family, NFNETLINK_V0, attrs)
        starts.append(size)
        parts.append(data)
        size += len(data)
    return bytearray(b''.join(parts)), starts


def _label_updates(saved, created):
    """The updates that give the created entries ``created`` (indexes) their saved labels."""
    messages = saved.messages
    for index in created:
        if messages[index][3].labels is None:
            continue
        labels = saved.labels(index)
        mask = nla(CTA_LABELS_MASK, b'\xff' * (_unpack_nla(labels, 0)[0] - NLA_HDRLEN))
        yield IPCTNL_MSG_CT_NEW, NLM_F_REQUEST, messages[index][2], saved.orig(index) + saved.zone(index) + labels + mask, index


def _undo(saved, batch, created):
    """Delete the entries this run created; the number that could not be deleted."""
    messages = saved.messages
    try:
        refused = batch.send_all((IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST, messages[i][2], saved.orig(i) + saved.zone(i), i)
                                 for i in created)
    except ConntrackError:
        return len(created)
    return sum(1 for code in refused.values() if code != errno.ENOENT)


def _entry_text(saved, index):
    start, end, family = saved.messages[index][:3]
    try:
        return describe(decode_ct(saved.raw, start + NFNL_HDRLEN, end, family))
    except Exception:  # pylint: disable=broad-except
        # the kernel refused what the decoder cannot read either: say where it is
        return 'the entry at byte %d' % start


def _failure(saved, batch, created, problems, labels):
    lost = _undo(saved, batch, created)
    failed = []
    for index, code in sorted(problems.items()):
        if index in labels and code == errno.ENOSPC:
            text = NO_ROOM_FOR_LABELS
        else:
            action = 'restoring %s' % _entry_text(saved, index)
            text = ctw.explain(NetlinkError(code, action), action).msg
        failed.append({'option': 'saved[%d]' % index, 'msg': 'saved[%d]: %s' % (index, text)})
    shown = '; '.join(item['msg'] for item in failed[:SHOWN])
    more = ' (and %d more)' % (len(failed) - SHOWN) if len(failed) > SHOWN else ''
    outcome = _outcome(lost, len(created))
    head = '' if len(failed) == 1 else 'the kernel refused %d saved entries: ' % len(failed)
    return ConntrackError('%s%s%s; %s' % (head, shown, more, outcome), option=failed[0]['option'],
                          failed_entries=failed, undone=not lost)


def _outcome(lost, created):
    """What undoing ``created`` creates left: ``lost`` of them could not be deleted again."""
    if not lost:
        return 'the %d entries this task had created were deleted again' % created
    return '%d of the %d entries this task had created could not be deleted again: check the table' % (lost, created)


def _result(saved, created, batch):
    total = saved.count
    result = {'changed': bool(created), 'created': len(created), 'updated': 0, 'deleted': 0,
              'unchanged': total - len(created), 'total': total}
    sample = []
    after = []
    for index in created[:SAMPLE]:
        start, end, family = saved.messages[index][:3]
        entry = decode_ct(saved.raw, start + NFNL_HDRLEN, end, family)
        sample.append({'index': index, 'action': 'created', 'entry': entry})
        after.append('# saved[%d] created\n%s' % (index, render(entry)))
    counts = '# created %(created)d, updated %(updated)d, deleted %(deleted)d, unchanged %(unchanged)d\n' % result
    result['sample'] = sample
    result['diff'] = {'before': '', 'after': ''.join(after) + counts}
    if batch is not None:
        result['batches'] = {'datagrams': batch.datagrams, 'acks': batch.acks}
    return result
