# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_entry: one connection-tracking entry as desired state.

``EntrySpec.from_params(params)`` validates the options (nothing touched yet); ``ensure(spec,
check_mode)`` reads the entry, computes what differs and changes only that. Identity is the
original tuple plus zone, or the reply tuple plus zone when only ``reply_*`` fields are given
(as ``conntrack -I -r -q`` allows).

Timeouts count down, so comparing them literally would never be idempotent. ``timeout_policy``:

* ``on_create`` (default): ``timeout`` is used when the entry is created; an existing entry's
  timeout is left to run down.
* ``refresh_below``: an existing entry's timeout is re-armed to ``timeout`` when fewer than
  ``timeout_min`` seconds (default: half of ``timeout``) remain. A second run right after the
  first finds the timeout above the threshold and changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import check_range, parse_proto, parse_u32
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    ICMP_PROTOS, PORT_PROTOS, PORT_PROTO_NAMES, PROTO_NAMES, PROTO_STATES, STATE_ALIASES, STATUS_BITS, STATUS_VALUES,
    status_names, status_value)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import LABEL_BITS, label_bits, reply_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
from ansible_collections.netfilter.conntrack.plugins.module_utils._validate import parse_address, parse_int

ENTRY_ARGSPEC = dict(
    state=dict(type='str', default='present', choices=['present', 'absent']),
    family=dict(type='str', choices=['ipv4', 'ipv6']),
    proto=dict(type='str', required=True),
    src=dict(type='str'),
    dst=dict(type='str'),
    sport=dict(type='int'),
    dport=dict(type='int'),
    reply_src=dict(type='str'),
    reply_dst=dict(type='str'),
    reply_sport=dict(type='int'),
    reply_dport=dict(type='int'),
    icmp_type=dict(type='int'),
    icmp_code=dict(type='int'),
    icmp_id=dict(type='int'),
    zone=dict(type='int', default=0),
    timeout=dict(type='int'),
    timeout_policy=dict(type='str', default='on_create', choices=['on_create', 'refresh_below']),
    timeout_min=dict(type='int'),
    tcp_state=dict(type='str'),
    status=dict(type='list', elements='str'),
    mark=dict(type='raw'),
    mark_mask=dict(type='raw'),
    labels=dict(type='list', elements='raw'),
    labels_mode=dict(type='str', default='add', choices=['add', 'remove', 'exact']),
    nat_src=dict(type='dict', options=dict(address=dict(type='str', required=True), port=dict(type='int'))),
    nat_dst=dict(type='dict', options=dict(address=dict(type='str', required=True), port=dict(type='int'))),
)

# status flags a user may ask for (the kernel manages the others: NAT_DONE, DYING, TEMPLATE, OFFLOAD...);
# SRC_NAT/DST_NAT only with the NAT option that makes the kernel set them (it ignores the bits otherwise)
STATUS_ALLOWED = ('SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT', 'SRC_NAT', 'DST_NAT', 'CONFIRMED')
STATUS_NAT = {'SRC_NAT': 'nat_src', 'DST_NAT': 'nat_dst'}
# what CT_NEW on an existing entry can still set (SEEN_REPLY/ASSURED can be set, never cleared)
STATUS_UPDATABLE = ('SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT')
CONNLABEL_CONF = ('/etc/xtables/connlabel.conf', '/etc/connlabel.conf')
# the ICMP types the kernel tracks (a request and its reply): an entry of another type is refused (EINVAL)
ICMP_TRACKED = {1: (0, 8, 13, 14, 15, 16, 17, 18), 58: (128, 129, 139, 140)}
# protocols whose tracker ships its timeouts in /proc/sys/net/netfilter: without them the kernel tracks the
# protocol generically (no ports, no state): Linux 6.16 removed DCCP tracking
TRACKER_SYSCTL = {33: 'nf_conntrack_dccp_timeout_open', 132: 'nf_conntrack_sctp_timeout_established'}


def kernel_tracks(protonum, netfilter_dir='/proc/sys/net/netfilter'):
    """False when this kernel has no tracker of its own for ``protonum`` (it would treat it generically)."""
    name = TRACKER_SYSCTL.get(protonum)
    if name is None or not os.path.isdir(netfilter_dir):
        return True
    return os.path.exists(os.path.join(netfilter_dir, name))


def load_label_names(paths=CONNLABEL_CONF):
    """{name: bit} from connlabel.conf (``BIT NAME`` lines), the names iptables/nft use."""
    names = {}
    for path in paths:
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()
        except (IOError, OSError):
            continue
        for line in lines:
            fields = line.split('#', 1)[0].split()
            if len(fields) >= 2 and fields[0].isdigit():
                names.setdefault(fields[1], int(fields[0]))
        break
    return names


def parse_labels(values, names=None):
    """Label bit numbers (0-127) from numbers or connlabel.conf names."""
    bits = set()
    for value in values or ():
        if isinstance(value, bool):
            raise ConntrackError('labels: %r is not a label: give bit numbers 0-127 or connlabel.conf names'
                                 % (value,), option='labels')
        text = str(value).strip()
        if isinstance(value, (int, float)) or text[:1].isdigit() or text[:1] in '+-':
            bits.add(parse_int(value, 'labels', 0, LABEL_BITS - 1, 'label bits'))
            continue
        if names is None:
            names = load_label_names()
        if text not in names:
            raise ConntrackError('labels: %r is neither a bit number 0-127 nor a name in %s%s'
                                 % (text, ' or '.join(CONNLABEL_CONF),
                                    ' (known: %s)' % ', '.join(sorted(names)) if names else ' (no names defined)'),
                                 option='labels')
        bits.add(names[text])
    return bits


def _address(value, option):
    return parse_address(value, option)


class EntrySpec(object):
    """A validated conntrack_entry task."""

    def __init__(self):
        self.state = 'present'
        self.family = None
        self.protonum = None
        self.orig = {}
        self.reply = {}
        self.direction = 'orig'
        self.zone = 0
        self.timeout = None
        self.timeout_policy = 'on_create'
        self.timeout_min = None
        self.tcp_state = None
        self.status = []
        self.mark = None
        self.mark_mask = 0xffffffff
        self.labels = None
        self.labels_mode = 'add'
        self.nat = {}

    @classmethod
    def from_params(cls, params):
        self = cls()
        self.state = params.get('state') or 'present'
        self.protonum = parse_proto(params.get('proto'))
        if self.protonum is None:
            raise ConntrackError('proto is required: tcp, udp, icmp, icmpv6, sctp, dccp, udplite or a number',
                                 option='proto')
        if self.protonum == 47:
            raise ConntrackError('proto gre: GRE entries are named by their keys, which conntrack_entry does not take; '
                                 'use tcp, udp, udplite, sctp, dccp, icmp, icmpv6 or another protocol number',
                                 option='proto')
        if not kernel_tracks(self.protonum):
            raise ConntrackError('proto %s: this kernel has no %s connection tracking (Linux 6.16 removed DCCP), so '
                                 'it would track the entry without ports or state; nothing to create or change'
                                 % (params.get('proto'), PROTO_NAMES[self.protonum].upper()), option='proto')
        family = params.get('family')
        for option in ('src', 'dst', 'reply_src', 'reply_dst'):
            if params.get(option) is None:
                continue
            addr = _address(params[option], option)
            fam = 'ipv4' if addr.version == 4 else 'ipv6'
            if family is None:
                family = fam
            elif fam != family:
                raise ConntrackError('%s %s is an %s address but %s: every address of an entry must be of the same '
                                     'family' % (option, params[option], 'IPv4' if fam == 'ipv4' else 'IPv6',
                                                 'family is %s' % family if params.get('family') else
                                                 'another address is %s' % ('IPv4' if family == 'ipv4' else 'IPv6')),
                                     option=option)
            key = option[6:] if option.startswith('reply_') else option
            (self.reply if option.startswith('reply_') else self.orig)[key] = str(addr)
        if self.protonum == 1 and family == 'ipv6' or self.protonum == 58 and family == 'ipv4':
            raise ConntrackError('proto %s does not exist in family %s: use %s'
                                 % (PROTO_NAMES[self.protonum], family, 'icmpv6' if self.protonum == 1 else 'icmp'),
                                 option='proto')
        if family is None and self.protonum in (1, 58):
            family = 'ipv4' if self.protonum == 1 else 'ipv6'
        self.family = family

        ports = self.protonum in PORT_PROTOS
        icmp = self.protonum in ICMP_PROTOS
        for option in ('sport', 'dport', 'reply_sport', 'reply_dport'):
            if params.get(option) is None:
                continue
            if not ports:
                raise ConntrackError('%s: a %s entry has no ports (ports exist for %s)'
                                     % (option, PROTO_NAMES.get(self.protonum, self.protonum),
                                        ', '.join(PORT_PROTO_NAMES)), option=option)
            check_range(params[option], 0, 65535, option, 'ports')
            key = option[6:] if option.startswith('reply_') else option
            (self.reply if option.startswith('reply_') else self.orig)[key] = params[option]
        for option in ('icmp_type', 'icmp_code', 'icmp_id'):
            if params.get(option) is None:
                continue
            if not icmp:
                raise ConntrackError('%s needs proto icmp or icmpv6 (proto is %s)'
                                     % (option, PROTO_NAMES.get(self.protonum, self.protonum)), option=option)
            check_range(params[option], 0, 65535 if option == 'icmp_id' else 255, option,
                        'ICMP ids' if option == 'icmp_id' else 'ICMP types and codes')
            self.orig[option] = params[option]
        if icmp and self.orig.get('icmp_type') is not None and \
                self.orig['icmp_type'] not in ICMP_TRACKED[self.protonum]:
            raise ConntrackError('icmp_type %s: the kernel tracks %s types %s only (requests and their replies); '
                                 'other types never have an entry'
                                 % (self.orig['icmp_type'], PROTO_NAMES[self.protonum],
                                    ', '.join(str(t) for t in ICMP_TRACKED[self.protonum])), option='icmp_type')

        # identity: the original tuple, or the reply tuple when only reply fields are given
        if not any(k in self.orig for k in ('src', 'dst')) and self.reply:
            self.direction = 'reply'
            if icmp:
                raise ConntrackError('an ICMP entry is named by its original tuple: give src, dst, icmp_type, '
                                     'icmp_code and icmp_id', option='src')
        needed = ['src', 'dst'] + (['sport', 'dport'] if ports else []) + (
            ['icmp_type', 'icmp_code', 'icmp_id'] if icmp else [])
        have = self.orig if self.direction == 'orig' else self.reply
        missing = [('reply_' if self.direction == 'reply' else '') + k for k in needed if k not in have]
        if missing:
            raise ConntrackError('the entry is not fully named: missing %s (an entry is identified by its %s tuple: '
                                 'addresses%s, plus zone)'
                                 % (', '.join(missing), 'reply' if self.direction == 'reply' else 'original',
                                    ', ports' if ports else ', ICMP type, code and id' if icmp else ''),
                                 option=missing[0])
        if self.reply and self.direction == 'orig':
            rneeded = ['src', 'dst'] + (['sport', 'dport'] if ports else [])
            rmissing = ['reply_' + k for k in rneeded if k not in self.reply]
            if rmissing:
                raise ConntrackError('a reply tuple must be complete: missing %s (or give no reply_* option to get '
                                     'the inverse of the original tuple)' % ', '.join(rmissing), option=rmissing[0])

        zone = params.get('zone')
        self.zone = 0 if zone is None else zone
        check_range(self.zone, 0, 65535, 'zone', 'zones')

        if params.get('timeout') is not None:
            if not 1 <= params['timeout'] <= 0x7fffffff // 1000:
                raise ConntrackError('timeout %s is out of range: give seconds, 1-%d' % (params['timeout'],
                                                                                         0x7fffffff // 1000),
                                     option='timeout')
            self.timeout = params['timeout']
        self.timeout_policy = params.get('timeout_policy') or 'on_create'
        if params.get('timeout_min') is not None:
            if self.timeout_policy != 'refresh_below':
                raise ConntrackError('timeout_min applies with timeout_policy: refresh_below only', option='timeout_min')
            if self.timeout is None or not 0 < params['timeout_min'] <= self.timeout:
                raise ConntrackError('timeout_min %s must be between 1 and timeout (%s)'
                                     % (params['timeout_min'], self.timeout), option='timeout_min')
            self.timeout_min = params['timeout_min']
        if self.timeout_policy == 'refresh_below':
            if self.timeout is None:
                raise ConntrackError('timeout_policy: refresh_below needs timeout (the value to re-arm to)',
                                     option='timeout')
            if self.timeout_min is None:
                self.timeout_min = max(1, self.timeout // 2)

        if params.get('tcp_state') is not None:
            names = PROTO_STATES.get(self.protonum)
            if names is None:
                raise ConntrackError('tcp_state: a %s entry has no connection state (states exist for tcp, sctp, dccp)'
                                     % PROTO_NAMES.get(self.protonum, self.protonum), option='tcp_state')
            value = str(params['tcp_state']).strip().upper().replace('-', '_')
            if self.protonum == 6:
                value = STATE_ALIASES.get(value, value)
            if value not in names or value == 'NONE':
                raise ConntrackError('tcp_state %r is not a %s state: use one of %s'
                                     % (params['tcp_state'], PROTO_NAMES[self.protonum],
                                        ', '.join(n for n in names if n != 'NONE')), option='tcp_state')
            self.tcp_state = value

        for name in params.get('status') or ():
            upper = str(name).strip().upper()
            if upper not in STATUS_ALLOWED:
                known = upper in STATUS_VALUES
                raise ConntrackError('status %r %s: use any of %s'
                                     % (name, 'is managed by the kernel and cannot be set' if known
                                        else 'is not a conntrack status flag', ', '.join(STATUS_ALLOWED)),
                                     option='status')
            if upper not in self.status:
                self.status.append(upper)

        if params.get('mark') is not None:
            self.mark_mask = parse_u32(params['mark_mask'], 'mark_mask') if params.get('mark_mask') is not None \
                else 0xffffffff
            if self.mark_mask == 0:
                raise ConntrackError('mark_mask 0 selects no bit of the mark: give the bits to set, e.g. 0xff',
                                     option='mark_mask')
            self.mark = parse_u32(params['mark'], 'mark') & self.mark_mask
        elif params.get('mark_mask') is not None:
            raise ConntrackError('mark_mask needs mark (the bits to set under the mask)', option='mark_mask')

        if params.get('labels') is not None:
            self.labels = parse_labels(params['labels'])
        self.labels_mode = params.get('labels_mode') or 'add'

        for option in ('nat_src', 'nat_dst'):
            nat = params.get(option)
            if not nat:
                continue
            addr = _address(nat.get('address'), option + '.address')
            if ('ipv4' if addr.version == 4 else 'ipv6') != self.family:
                raise ConntrackError('%s.address %s is not an %s address like the entry'
                                     % (option, nat.get('address'), self.family), option=option)
            if nat.get('port') is not None:
                if not ports:
                    raise ConntrackError('%s.port: a %s entry has no ports' % (option, PROTO_NAMES.get(
                        self.protonum, self.protonum)), option=option)
                check_range(nat['port'], 0, 65535, option + '.port', 'ports')
            self.nat[option] = {'ip': str(addr), 'port': nat.get('port')}
        if self.nat and self.direction == 'orig' and self.reply:
            raise ConntrackError('give either nat_src/nat_dst or a reply tuple, not both: NAT computes the reply '
                                 'tuple', option='nat_src' if 'nat_src' in self.nat else 'nat_dst')
        for flag, option in STATUS_NAT.items():
            if flag in self.status and option not in self.nat:
                raise ConntrackError('status %s is set by the kernel when it translates the entry: give %s (the '
                                     'address to translate to) instead of the flag' % (flag, option), option='status')
        return self

    # --- identity and creation ------------------------------------------------------------------
    def identity(self):
        tup = self.orig if self.direction == 'orig' else self.reply
        return {'family': self.family, 'protonum': self.protonum, 'direction': self.direction,
                'tuple': dict(tup), 'zone': self.zone}

    def create_missing(self):
        """Options a create needs that were not given (names)."""
        missing = []
        if self.timeout is None:
            missing.append('timeout')
        if self.protonum in PROTO_STATES and self.tcp_state is None:
            missing.append('tcp_state')
        return missing

    def creation(self):
        """The flat entry dict to create."""
        if self.direction == 'orig':
            orig = dict(self.orig)
            reply = dict(self.reply) if self.reply else None
        else:
            reply = dict(self.reply)
            orig = {'src': reply['dst'], 'dst': reply['src']}
            if 'sport' in reply:
                orig.update(sport=reply['dport'], dport=reply['sport'])
        entry = {'family': self.family, 'protonum': self.protonum, 'proto': PROTO_NAMES.get(self.protonum,
                                                                                            str(self.protonum)),
                 'zone': self.zone, 'timeout': self.timeout, 'status': list(self.status)}
        entry.update(orig)
        if reply is None:
            # the plain inverse; with nat_src/nat_dst the kernel translates it (and sets SRC_NAT/DST_NAT)
            reply = reply_of(entry)
            reply.pop('protonum', None)
        elif self.protonum in ICMP_PROTOS:
            # an explicit ICMP reply tuple takes its type, code and id from the original (echo -> echo reply)
            inverse = reply_of(entry)
            for key in ('icmp_type', 'icmp_code', 'icmp_id'):
                if inverse.get(key) is not None:
                    reply.setdefault(key, inverse[key])
        for key, value in reply.items():
            if value is not None:
                entry['reply_' + key] = value
        if self.tcp_state is not None:
            entry['state'] = self.tcp_state
        if self.mark is not None:
            entry['mark'] = self.mark
        if self.labels and self.labels_mode != 'remove':
            entry['labels'] = sorted(self.labels)
        for key in self.nat:
            entry[key] = self.nat[key]
        return entry

    def predicted(self):
        """The entry as it will read back after creation (for check mode)."""
        entry = public(self.creation())
        for key, nat_key, flag in (('src', 'nat_dst', 'DST_NAT'), ('dst', 'nat_src', 'SRC_NAT')):
            # DNAT rewrites the original destination: replies come from the new address (and port)
            nat = self.nat.get(nat_key)
            if nat:
                entry['reply_' + key] = nat['ip']
                if nat.get('port') is not None:
                    entry['reply_sport' if key == 'src' else 'reply_dport'] = nat['port']
                entry['status'].append(flag)
        entry.setdefault('mark', 0)
        entry['status'] = sorted(set(entry['status']) | {'CONFIRMED'}, key=STATUS_BITS.index)
        return entry


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
             'reply_icmp_id', 'status', 'mark', 'labels', 'zone', 'timeout')


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


def public(entry):
    """The entry as conntrack_info shows it (the decoder's dict), without write-only keys."""
    if entry is None:
        return None
    return dict((k, v) for k, v in entry.items() if k not in ('nat_src', 'nat_dst'))


def same_tuple(entry, ident):
    """True when ``entry`` has ``ident``'s tuple in ``ident``'s direction (and its zone)."""
    prefix = '' if ident['direction'] == 'orig' else 'reply_'
    for key, value in ident['tuple'].items():
        if entry.get(prefix + key) != value:
            return False
    return entry.get('zone', 0) == (ident.get('zone') or 0)


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
        restore = {}
        if 'mark' in update:
            restore.update(mark=current.get('mark', 0), mark_mask=0xffffffff)
        if 'labels' in update:
            restore.update(labels=label_bits(current.get('labels')), labels_mask=LABELS_FULL)
        if 'timeout' in update and current.get('timeout'):
            restore['timeout'] = current['timeout']
        old_state = current.get('state') if state is not None else None
        if restore or old_state:
            try:
                ctw.update_entry(conn, ident, restore, state=old_state, protonum=spec.protonum)
            except ConntrackError:
                pass  # the original error says what went wrong
        raise
