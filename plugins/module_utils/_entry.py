# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_entry's work: read the entry, compare it with the ``EntrySpec``, create, update or delete it.

A failed task changes nothing: labels are probed before an update (the kernel applies an update's
attributes one by one and stops at the first it refuses), set after a create (the kernel ignores them
there) with the new entry removed again when they cannot be, and a refused update writes the old values
back. See ``_entryspec`` for the options and the timeout policies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import STATUS_VALUES, status_names, status_value
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import LABEL_BITS, label_bits
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import STATUS_UPDATABLE, public


# --- state comparison -------------------------------------------------------------------------

def plan_update(spec, current):
    """(changes for ``_ctwrite.update_entry``, predicted entry, problems) for an existing entry."""
    changes = {}
    after = dict(current)
    # the tuples of an existing entry cannot change
    if spec.direction == 'orig' and spec.reply:
        for key, value in spec.reply.items():
            if current.get('reply_' + key) != value:
                raise ConntrackError('the existing entry has reply_%s %s, not %s: the tuples of an entry cannot be '
                                     'changed; delete it (state: absent) and create it again'
                                     % (key, current.get('reply_' + key), value), option='reply_' + key)
    # nor its zone: the kernel finds an entry of zone 5 by a tuple of zone 5 whether the zone is of one direction
    # or of both, and holds one of them only
    have, want_zone = zone_layout(current), (spec.zone, spec.zone_dir)
    if have != want_zone:
        raise ConntrackError('the existing entry is in %s, not in %s: the zone of an entry cannot be changed; delete '
                             'it (state: absent) and create it again' % (_zone_text(have), _zone_text(want_zone)),
                             option={'orig': 'orig_zone', 'reply': 'reply_zone'}.get(spec.zone_dir, 'zone'))
    cur_status = status_value(current.get('status', ()))
    want = 0
    for name in spec.status:
        if cur_status & STATUS_VALUES[name]:
            continue
        if name not in STATUS_UPDATABLE:
            raise ConntrackError('status %s cannot be added to an existing entry (the kernel sets it on creation '
                                 'only); delete and re-create the entry to change it' % name, option='status')
        want |= STATUS_VALUES[name]
    if want:
        changes['status'] = cur_status | want
        after['status'] = status_names(cur_status | want)
    if spec.mark is not None:
        cur_mark = current.get('mark', 0)
        if cur_mark & spec.mark_mask != spec.mark:
            changes['mark'] = spec.mark
            changes['mark_mask'] = spec.mark_mask
            after['mark'] = (cur_mark & ~spec.mark_mask & 0xffffffff) | spec.mark
    if spec.labels is not None:
        cur = label_bits(current.get('labels'))
        wanted = label_bits(spec.labels)
        new = cur | wanted if spec.labels_mode == 'add' else (cur & ~wanted if spec.labels_mode == 'remove'
                                                              else wanted)
        if new != cur:
            changes['labels'] = new
            changes['labels_mask'] = (1 << LABEL_BITS) - 1
            after['labels'] = [i for i in range(LABEL_BITS) if new >> i & 1]
            if not after['labels']:
                after.pop('labels')
    if spec.tcp_state is not None and current.get('state') != spec.tcp_state:
        changes['protoinfo'] = spec.tcp_state
        after['state'] = spec.tcp_state
    if spec.timeout is not None and spec.timeout_policy == 'refresh_below':
        if current.get('timeout', 0) < spec.timeout_min:
            changes['timeout'] = spec.timeout
            after['timeout'] = spec.timeout
    return changes, after


DIFF_KEYS = ('family', 'proto', 'state', 'src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id',
             'reply_src', 'reply_dst', 'reply_sport', 'reply_dport', 'reply_icmp_type', 'reply_icmp_code',
             'reply_icmp_id', 'status', 'mark', 'labels', 'zone', 'tuple_zone', 'reply_tuple_zone', 'timeout')


def render(entry, show_timeout=False):
    """A conntrack -L style text of an entry for diffs (the timeout only when it is part of the change)."""
    if not entry:
        return ''
    lines = []
    for key in DIFF_KEYS:
        if key == 'timeout' and not show_timeout:
            continue
        value = entry.get(key)
        if value is None or value == [] and key != 'status':
            continue
        if key == 'mark':
            value = '0x%x' % value
        if isinstance(value, list):
            value = ','.join(str(v) for v in value)
        lines.append('%s: %s' % (key, value))
    return '\n'.join(lines) + '\n'


def same_tuple(entry, ident):
    """True when ``entry`` has ``ident``'s tuple in ``ident``'s direction (and its zone)."""
    prefix = '' if ident['direction'] == 'orig' else 'reply_'
    for key, value in ident['tuple'].items():
        if entry.get(prefix + key) != value:
            return False
    return zone_of(entry, ident['direction']) == (ident.get('zone') or 0)


def zone_of(entry, direction):
    """The zone id of a listed entry's tuple in ``direction`` (a directional zone is listed as ``tuple_zone`` or
    ``reply_tuple_zone``, a zone of both directions as ``zone``)."""
    return entry.get('tuple_zone' if direction == 'orig' else 'reply_tuple_zone') or entry.get('zone') or 0


def _zone_text(layout):
    zone, direction = layout
    return 'zone %d%s' % (zone, ' (%s direction only)' % ('original' if direction == 'orig' else 'reply')
                          if direction else '')


def zone_layout(entry):
    """(zone id, direction or None) of a listed entry."""
    if entry.get('tuple_zone'):
        return entry['tuple_zone'], 'orig'
    if entry.get('reply_tuple_zone'):
        return entry['reply_tuple_zone'], 'reply'
    return entry.get('zone') or 0, None


def describe(entry):
    ports = ' sport=%s dport=%s' % (entry.get('sport'), entry.get('dport')) if entry.get('sport') is not None else ''
    return '%s %s src=%s dst=%s%s zone=%s' % (entry.get('family'), entry.get('proto'), entry.get('src'),
                                              entry.get('dst'), ports, entry.get('zone', 0))


def ensure(spec, check_mode=False):
    """Make the kernel hold (or not hold) the entry. Returns the result dict."""
    ident = spec.identity()
    with Connection() as conn:
        current = ctw.get_entry(conn, ident)
        if current is not None and not same_tuple(current, ident):
            # the kernel looks a tuple up in both directions: this is another entry, whose other tuple is ours
            if spec.state == 'absent':
                current = None
            else:
                raise ConntrackError('the %s tuple asked for is the %s tuple of another entry (%s): the kernel '
                                     'cannot hold both; delete that entry first or name it by its own tuple'
                                     % ('original' if ident['direction'] == 'orig' else 'reply',
                                        'reply' if ident['direction'] == 'orig' else 'original',
                                        describe(current)), option='src')
        result = {'changed': False, 'action': 'none'}
        if spec.state == 'absent':
            if current is not None:
                result.update(changed=True, action='deleted')
                if not check_mode:
                    # the id guards against deleting a different entry that took the tuple meanwhile
                    if not ctw.delete_entry(conn, ident, current.get('id')):
                        result.update(changed=False, action='none')
            result.update(entry=None, diff={'before': render(current), 'after': ''})
            return result
        if current is None:
            missing = spec.create_missing()
            if missing:
                raise ConntrackError('the entry does not exist, and creating it needs %s (missing)'
                                     % ', '.join(missing), option=missing[0])
            entry = spec.creation()
            if not check_mode:
                entry = _create(conn, ident, entry)
            else:
                entry = spec.predicted()
            result.update(changed=True, action='created', entry=public(entry),
                          diff={'before': '', 'after': render(entry)})
            return result
        changes, after = plan_update(spec, current)
        if not changes:
            result.update(entry=current, diff={'before': render(current), 'after': render(current)})
            return result
        if not check_mode:
            _update(conn, ident, spec, current, changes)
            fresh = ctw.get_entry(conn, ident)
            if fresh is not None:
                after = fresh
        elif 'labels' in changes:
            _probe_labels(conn, ident)  # changes nothing, and check mode then predicts the refusal
        show = 'timeout' in changes
        names = sorted(set('tcp_state' if k == 'protoinfo' else k for k in changes) - {'mark_mask', 'labels_mask'})
        result.update(changed=True, action='updated', entry=after, changes=names,
                      diff={'before': render(current, show), 'after': render(after, show)})
        return result


LABELS_FULL = (1 << LABEL_BITS) - 1
NO_ROOM_FOR_LABELS = ('the entry has no room for labels: the kernel gives entries labels only while something in '
                      'the namespace uses them (an nftables "ct label" or iptables connlabel rule) when they are '
                      'created; nothing was changed')


def _labels_error(exc):
    if getattr(exc, 'errno', None) == errno.ENOSPC:
        return ConntrackError(NO_ROOM_FOR_LABELS, option='labels')
    return exc


def _probe_labels(conn, ident):
    """Labels under an empty mask: the kernel changes nothing, but refuses (ENOSPC) an entry without room."""
    try:
        ctw.update_entry(conn, ident, {'labels': 0, 'labels_mask': 0})
    except ConntrackError as exc:
        raise _labels_error(exc)


def _create(conn, ident, entry):
    """Create ``entry``; the kernel ignores labels in a create, so they follow in an update, and when that
    fails the new entry is deleted again (a failed task leaves nothing behind)."""
    labels = entry.pop('labels', None)
    ctw.create_entry(conn, entry)
    created = ctw.get_entry(conn, ident)
    if labels:
        try:
            ctw.update_entry(conn, ident, {'labels': label_bits(labels), 'labels_mask': LABELS_FULL})
        except ConntrackError as exc:
            ctw.delete_entry(conn, ident, created.get('id') if created else None)
            raise _labels_error(exc)
        created = ctw.get_entry(conn, ident)
    return created if created is not None else entry


def undo_changes(current, changes):
    """(changes, state) that write back what ``changes`` (of ``plan_update``) would change of ``current``: the old
    mark, labels, timeout and state (status bits can only be set, and only settable ones are sent)."""
    restore = {}
    if 'mark' in changes:
        restore.update(mark=current.get('mark', 0), mark_mask=0xffffffff)
    if 'labels' in changes:
        restore.update(labels=label_bits(current.get('labels')), labels_mask=LABELS_FULL)
    if 'timeout' in changes and current.get('timeout'):
        restore['timeout'] = current['timeout']
    return restore, current.get('state') if 'protoinfo' in changes else None


def _update(conn, ident, spec, current, changes):
    """Apply ``changes`` so that a refusal changes nothing.

    The kernel applies an update's attributes one after the other (timeout, status, state, mark, labels)
    and stops at the first it refuses, keeping the ones before. Labels are the one part it refuses for a
    reason of the namespace (no room for them): an update with labels under an empty mask changes nothing
    and tells first. Should the real update fail anyway, the entry's old mark, labels, state and timeout
    are written back (status bits can only be set, and only settable ones are sent).
    """
    update = dict(changes)
    state = update.pop('protoinfo', None)
    if 'labels' in update:
        _probe_labels(conn, ident)
    try:
        ctw.update_entry(conn, ident, update, state=state, protonum=spec.protonum)
    except ConntrackError:
        restore, old_state = undo_changes(current, changes)
        if restore or old_state:
            try:
                ctw.update_entry(conn, ident, restore, state=old_state, protonum=spec.protonum)
            except ConntrackError:
                pass  # the original error says what went wrong
        raise
