# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_entry's input: the options validated into an ``EntrySpec`` (identity, creation, prediction).

``EntrySpec.from_params(params)`` validates the options (nothing touched yet); ``_entry.ensure(spec,
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

import collections
import os
import socket

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import check_range, parse_proto, parse_u32
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    ICMP_PROTOS, ICMP_TRACKED, PORT_PROTOS, PORT_PROTO_NAMES, PROTO_NAMES, PROTO_STATES, STATE_ALIASES, STATUS_BITS,
    STATUS_VALUES)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import LABEL_BITS, reply_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._validate import parse_address, parse_int

ENTRY_ARGSPEC = dict(
    state=dict(type='str', default='present', choices=['present', 'absent']),
    family=dict(type='str', choices=['ipv4', 'ipv6']),
    proto=dict(type='str'),
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
    reply_icmp_type=dict(type='int'),
    reply_icmp_code=dict(type='int'),
    reply_icmp_id=dict(type='int'),
    zone=dict(type='int', default=0),
    orig_zone=dict(type='int'),
    reply_zone=dict(type='int'),
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

# what conntrack_info lists of an entry that an ``entries`` item takes back and ignores (the kernel keeps them:
# ids, counters, timestamps, the NAT descriptions its tuples and status already say)
READ_ONLY_KEYS = ('protonum', 'id', 'use', 'packets', 'bytes', 'reply_packets', 'reply_bytes', 'timestamp_start',
                  'timestamp_stop', 'dnat', 'snat', 'helper', 'secmark', 'secctx', 'master')
# what conntrack_info lists of an entry's directional zone: an item takes it as orig_zone / reply_zone
LISTED_ZONE_KEYS = (('orig_zone', 'tuple_zone', 'orig'), ('reply_zone', 'reply_tuple_zone', 'reply'))


def item_argspec():
    """The options of one ``entries`` item: the entry options (``state`` without default, so the task's applies,
    and also taking a protocol state as conntrack_info lists it), plus the read-only keys of a listed entry."""
    spec = dict((name, dict(option)) for name, option in ENTRY_ARGSPEC.items())
    spec['state'] = dict(type='str')
    for name in READ_ONLY_KEYS:
        spec[name] = dict(type='raw')
    for _option, listed, _direction in LISTED_ZONE_KEYS:
        spec[listed] = dict(type='int')
    return spec


# status flags a user may ask for (the kernel manages the others: NAT_DONE, DYING, TEMPLATE, OFFLOAD...);
# SRC_NAT/DST_NAT only with the NAT option that makes the kernel set them (it ignores the bits otherwise)
STATUS_ALLOWED = ('SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT', 'SRC_NAT', 'DST_NAT', 'CONFIRMED')
STATUS_NAT = {'SRC_NAT': 'nat_src', 'DST_NAT': 'nat_dst'}
# what CT_NEW on an existing entry can still set (SEEN_REPLY/ASSURED can be set, never cleared)
STATUS_UPDATABLE = ('SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT')
CONNLABEL_CONF = ('/etc/xtables/connlabel.conf', '/etc/connlabel.conf')
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


class Address(collections.namedtuple('Address', ('version', 'text'))):
    """A validated address: its IP version and its text as the kernel's dumps write it (inet_ntop)."""

    def __str__(self):
        return self.text


_FAMILY_OF_VERSION = ((4, socket.AF_INET), (6, socket.AF_INET6))
_pton, _ntop = socket.inet_pton, socket.inet_ntop


def _address(value, option):
    """One address (see ``_validate.parse_address``). Text already in the form inet_ntop writes, as listed
    entries have it, is taken as it is (a restore validates 10^5 entries); anything else is parsed."""
    if isinstance(value, str):
        version, af = _FAMILY_OF_VERSION[':' in value]
        try:
            if _ntop(af, _pton(af, value)) == value:
                return Address(version, value)
        except (OSError, ValueError):
            pass
    addr = parse_address(value, option)
    return Address(addr.version, socket.inet_ntop(_FAMILY_OF_VERSION[addr.version == 6][1], addr.packed))


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
        self.zone_dir = None  # 'orig' or 'reply' when the zone applies to that direction only
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
        self._identity = None

    @classmethod
    def from_params(cls, params, item=False, default_state='present'):
        """Validate the options of one entry. ``item``: an ``entries`` item, which may be an entry as conntrack_info
        lists it: ``state`` is present/absent or the protocol state, status flags the kernel sets by itself are
        ignored, and timeout 0 (an entry listed in its last second) is taken."""
        self = cls()
        self.state = params.get('state') or default_state
        listed_state = None
        if item and self.state not in ('present', 'absent'):
            listed_state, self.state = self.state, default_state
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
        for option in ('icmp_type', 'icmp_code', 'icmp_id', 'reply_icmp_type', 'reply_icmp_code', 'reply_icmp_id'):
            if params.get(option) is None:
                continue
            if not icmp:
                raise ConntrackError('%s needs proto icmp or icmpv6 (proto is %s)'
                                     % (option, PROTO_NAMES.get(self.protonum, self.protonum)), option=option)
            check_range(params[option], 0, 65535 if option.endswith('icmp_id') else 255, option,
                        'ICMP ids' if option.endswith('icmp_id') else 'ICMP types and codes')
            if option.startswith('reply_'):
                self.reply[option[6:]] = params[option]
            else:
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
        self._directional_zone(params, item)

        if params.get('timeout') is not None:
            if not (0 if item else 1) <= params['timeout'] <= 0x7fffffff // 1000:
                raise ConntrackError('timeout %s is out of range: give seconds, %d-%d'
                                     % (params['timeout'], 0 if item else 1, 0x7fffffff // 1000), option='timeout')
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

        tcp_state = params.get('tcp_state')
        if listed_state is not None:
            if tcp_state is not None and str(tcp_state).strip().upper() != str(listed_state).strip().upper():
                raise ConntrackError('state %r and tcp_state %r disagree: an item\'s state is present, absent or the '
                                     'protocol state (as conntrack_info lists it)' % (listed_state, tcp_state),
                                     option='state')
            tcp_state = listed_state
        if tcp_state is not None:
            option = 'tcp_state' if params.get('tcp_state') is not None else 'state'
            names = PROTO_STATES.get(self.protonum)
            if names is None:
                raise ConntrackError('%s %r: a %s entry has no connection state (states exist for tcp, sctp, dccp)%s'
                                     % (option, tcp_state, PROTO_NAMES.get(self.protonum, self.protonum),
                                        '; an item\'s state is present, absent or the protocol state'
                                        if option == 'state' else ''), option=option)
            value = str(tcp_state).strip().upper().replace('-', '_')
            if self.protonum == 6:
                value = STATE_ALIASES.get(value, value)
            if value not in names or value == 'NONE':
                raise ConntrackError('%s %r is not a %s state: use one of %s%s'
                                     % (option, tcp_state, PROTO_NAMES[self.protonum],
                                        ', '.join(n for n in names if n != 'NONE'),
                                        ' (or present, absent)' if option == 'state' else ''), option=option)
            self.tcp_state = value

        for name in params.get('status') or ():
            upper = str(name).strip().upper()
            if item and upper in STATUS_VALUES and upper not in STATUS_ALLOWED:
                continue  # listed, and set by the kernel itself (NAT_DONE, HELPER, OFFLOAD...)
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
        self._nat_of_reply(ports)
        for flag, option in STATUS_NAT.items():
            if flag in self.status and option not in self.nat:
                raise ConntrackError('status %s is set by the kernel when it translates the entry: give %s (the '
                                     'address to translate to) instead of the flag' % (flag, option), option='status')
        return self

    def _directional_zone(self, params, item):
        """``orig_zone`` / ``reply_zone`` (an item as listed: ``tuple_zone`` / ``reply_tuple_zone``): the zone of one
        direction only, as ``conntrack -I --orig-zone/--reply-zone``. The kernel keeps one zone id per entry, for
        both directions or for one."""
        given = []
        for option, listed, direction in LISTED_ZONE_KEYS:
            name, value = option, params.get(option)
            if value is None and item:
                name, value = listed, params.get(listed)
            if value is None:
                continue
            check_range(value, 0, 65535, name, 'zones')
            if value:
                given.append((name, value, direction))
        if not given:
            return
        if self.zone:
            raise ConntrackError('%s %s and zone %s: an entry has one zone, in both directions (zone) or in one '
                                 '(orig_zone or reply_zone); give one of them' % (given[0][0], given[0][1], self.zone),
                                 option=given[0][0])
        if len(given) == 2 and given[0][1] != given[1][1]:
            raise ConntrackError('%s %s and %s %s: the kernel keeps one zone per entry, in both directions or in one; '
                                 'give zone for both directions, or orig_zone or reply_zone for one'
                                 % (given[0][0], given[0][1], given[1][0], given[1][1]), option=given[1][0])
        self.zone = given[0][1]
        self.zone_dir = given[0][2] if len(given) == 1 else None

    def zone_of(self, direction):
        """The zone id the kernel looks the tuple of ``direction`` up in."""
        return self.zone if self.zone_dir is None or self.zone_dir == direction else 0

    def _nat_of_reply(self, ports):
        """SRC_NAT/DST_NAT in ``status`` with a reply tuple (a NAT entry as conntrack_info lists it): the reply
        tuple says where the kernel translates to, so it becomes nat_src (the reply destination) and nat_dst (the
        reply source), and the kernel computes the same reply tuple from them."""
        flags = [flag for flag in STATUS_NAT if flag in self.status]
        if not flags or self.nat or not self.reply or self.direction != 'orig':
            return
        for flag in flags:
            key = 'dst' if flag == 'SRC_NAT' else 'src'
            port = self.reply.get('dport' if flag == 'SRC_NAT' else 'sport') if ports else None
            self.nat[STATUS_NAT[flag]] = {'ip': self.reply[key], 'port': port}
        self.reply = {}

    # --- identity and creation ------------------------------------------------------------------
    def identity(self):
        """The entry's name: family, protonum, direction, tuple and zone (made once; do not change it)."""
        ident = self._identity
        if ident is None:
            tup = self.orig if self.direction == 'orig' else self.reply
            ident = self._identity = {'family': self.family, 'protonum': self.protonum, 'direction': self.direction,
                                      'tuple': dict(tup), 'zone': self.zone_of(self.direction)}
            if self.zone_dir is not None:
                ident['zone_dir'] = self.zone_dir
        return ident

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
                 'zone': self.zone if self.zone_dir is None else 0, 'timeout': self.timeout,
                 'status': list(self.status)}
        if self.zone_dir is not None:
            entry['tuple_zone' if self.zone_dir == 'orig' else 'reply_tuple_zone'] = self.zone
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


def public(entry):
    """The entry as conntrack_info shows it (the decoder's dict), without write-only keys."""
    if entry is None:
        return None
    return dict((k, v) for k, v in entry.items() if k not in ('nat_src', 'nat_dst'))
