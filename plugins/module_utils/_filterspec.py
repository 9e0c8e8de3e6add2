# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter options: their argument spec, and the validation of every value where it enters.

``parse_into(flt, params, new)`` fills a ``_filter.Filter`` from module parameters: every value is
checked here (a message naming the option -- ``dport[1]``, ``not.reply_src[2]`` --, the value and what
is allowed), so matching and the kernel requests work on checked values only. Options that make sense
as "any of" take a single value or a list (``src: [192.0.2.7, 198.51.100.0/24]``, ``dport: [53, 5353]``);
``not:`` takes the same options and takes its matches out of the selection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, DCCP_STATES, ICMP_PROTOS, ICMP_TRACKED, PORT_PROTOS, PORT_PROTO_NAMES, PROTO_NAMES,
    PROTO_NUMBERS, PROTO_STATES, SCTP_STATES, STATE_ALIASES, STATUS_BITS, STATUS_VALUES, TCP_STATES)
from ansible_collections.netfilter.conntrack.plugins.module_utils._validate import (
    parse_int, parse_network, parse_port_spec)

PSEUDO_STATUS = ('UNREPLIED',)  # = SEEN_REPLY not set, as conntrack -L shows it
LABEL_BITS = 128
CONNLABEL_FILES = ('/etc/xtables/connlabel.conf', '/etc/connlabel.conf')  # libnetfilter_conntrack's, then the old one

_BASE_ARGSPEC = dict(
    family=dict(type='str', choices=['ipv4', 'ipv6']),
    proto=dict(type='str'),
    src=dict(type='raw'),
    dst=dict(type='raw'),
    reply_src=dict(type='raw'),
    reply_dst=dict(type='raw'),
    sport=dict(type='raw'),
    dport=dict(type='raw'),
    reply_sport=dict(type='raw'),
    reply_dport=dict(type='raw'),
    icmp_type=dict(type='raw'),
    icmp_code=dict(type='raw'),
    icmp_id=dict(type='raw'),
    mark=dict(type='raw'),
    mark_mask=dict(type='raw'),
    zone=dict(type='raw'),
    orig_zone=dict(type='raw'),
    reply_zone=dict(type='raw'),
    state=dict(type='list', elements='str'),
    status=dict(type='list', elements='str'),
    src_nat=dict(type='raw'),
    dst_nat=dict(type='raw'),
    any_nat=dict(type='raw'),
    label=dict(type='list', elements='raw'),
)
FILTER_ARGSPEC = dict(_BASE_ARGSPEC)
FILTER_ARGSPEC['not'] = dict(type='dict', options=copy.deepcopy(_BASE_ARGSPEC))
FILTER_OPTIONS = tuple(FILTER_ARGSPEC)
BASE_OPTIONS = tuple(_BASE_ARGSPEC)
ADDRESS_OPTIONS = ('src', 'dst', 'reply_src', 'reply_dst')
PORT_OPTIONS = ('sport', 'dport', 'reply_sport', 'reply_dport')
ICMP_OPTIONS = ('icmp_type', 'icmp_code', 'icmp_id')
ZONE_OPTIONS = ('zone', 'orig_zone', 'reply_zone')
NAT_OPTIONS = ('src_nat', 'dst_nat', 'any_nat')


def parse_u32(value, option):
    """An integer 0..2^32-1 given as a number or a decimal/hex string (marks, masks)."""
    return parse_int(value, option, 0, 0xffffffff, 'marks and masks (0x0-0xffffffff)', hex_ok=True)


def parse_proto(value, option='proto'):
    """A protocol name (tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, igmp) or number 0-255."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text not in PROTO_NUMBERS:
        if text[:1].isdigit() or text[:1] in '+-':
            return parse_int(text, option, 0, 255, 'protocol numbers')
        raise ConntrackError('%s %r is not a known protocol: use one of %s, or a number 0-255'
                             % (option, value, ', '.join(sorted(PROTO_NAMES.values()))), option=option)
    return PROTO_NUMBERS[text]


def check_range(value, low, high, option, what):
    if value is not None and not low <= value <= high:
        raise ConntrackError('%s %s is out of range: %s are %d-%d' % (option, value, what, low, high), option=option)


def values_of(value, option):
    """[(path, item)] of an option given as one value, a list, or a comma-separated string ("any of")."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str) and ',' in value:
        items = [part.strip() for part in value.split(',')]
    else:
        return [(option, value)]
    for i, item in enumerate(items):
        if isinstance(item, (list, tuple, dict)) or item is None:
            raise ConntrackError('%s[%d] %r is not a single value: give a value or a flat list of them'
                                 % (option, i, item), option=option)
    return [('%s[%d]' % (option, i), item) for i, item in enumerate(items)]


class Net(object):
    """A parsed address filter: exact string compare for hosts, integer compare for prefixes."""

    __slots__ = ('network', 'family', 'host', 'text', 'net', 'mask', 'af')

    def __init__(self, network):
        self.network = network
        self.family = 'ipv4' if network.version == 4 else 'ipv6'
        self.af = AF_INET if network.version == 4 else AF_INET6
        self.host = network.prefixlen == network.max_prefixlen
        self.text = str(network.network_address)
        self.net = int(network.network_address)
        self.mask = int(network.netmask)

    def matches(self, address):
        if address is None:
            return False
        if self.host:
            return address == self.text
        import socket
        try:
            packed = socket.inet_pton(self.af, address)
        except (OSError, ValueError):
            return False  # other family
        return int.from_bytes(packed, 'big') & self.mask == self.net

    def __eq__(self, other):
        return isinstance(other, Net) and self.network == other.network

    def __hash__(self):
        return hash(self.network)


def parse_nat(value, option):
    """A NAT filter value: True ("translated at all"), or (Net, port or None) from ``IP``, ``IP:port``,
    ``[IPv6]:port``, ``[IPv6]`` or a CIDR (any address of the prefix)."""
    if value is True or isinstance(value, str) and value.strip().lower() in ('true', 'yes'):
        return True
    allowed = ('give true (translated at all), an address or CIDR, address:port, or [IPv6]:port, like '
               'conntrack --%s' % option.split('[')[0].split('.')[-1].replace('_', '-'))
    if value is False or isinstance(value, str) and value.strip().lower() in ('false', 'no'):
        raise ConntrackError('%s %r: %s; to select entries that were not translated use not: {%s: true}'
                             % (option, value, allowed, option.split('[')[0].split('.')[-1]), option=option)
    if not isinstance(value, str):
        raise ConntrackError('%s %r is not a NAT address: %s' % (option, value, allowed), option=option)
    text = value.strip()
    port = None
    if text.startswith('['):
        close = text.find(']')
        if close < 0 or text[close + 1:] not in ('',) and not text[close + 1:].startswith(':'):
            raise ConntrackError('%s %r is not a NAT address: %s' % (option, value, allowed), option=option)
        if text[close + 1:]:
            port = text[close + 2:]
        text = text[1:close]
    elif text.count(':') == 1:
        text, port = text.split(':')
    if port is not None:
        port = parse_int(port, option, 1, 65535, 'NAT ports')
    net = Net(parse_network(text, option))
    return net, port


def load_connlabels(paths=None):
    """({name: bit}, path) from the first connlabel.conf that exists (lines ``BIT NAME``), or ({}, None)."""
    for path in paths or CONNLABEL_FILES:
        try:
            with open(path, 'rb') as handle:
                data = handle.read().decode('utf-8', 'replace')
        except (IOError, OSError):
            continue
        names = {}
        for line in data.splitlines():
            words = line.split('#', 1)[0].split()
            if len(words) >= 2 and words[0].isdigit() and words[0].isascii() and int(words[0]) < LABEL_BITS:
                names.setdefault(words[1], int(words[0]))
        return names, path
    return {}, None


def parse_label(value, option, names_loader=None):
    """A label bit number 0-127 or a name of connlabel.conf."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int) and not isinstance(text, bool) or isinstance(text, str) and text.isdigit():
        return parse_int(text, option, 0, LABEL_BITS - 1, 'label bits')
    if isinstance(text, str) and text:
        names, path = (names_loader or load_connlabels)()
        if text in names:
            return names[text]
        raise ConntrackError('%s %r is not a label bit (0-127) nor a label name of %s' % (
            option, value, path if path else 'connlabel.conf (none found: %s)' % ', '.join(CONNLABEL_FILES)),
            option=option)
    raise ConntrackError('%s %r is not a label: give a bit number 0-127 or a name of connlabel.conf'
                         % (option, value), option=option)


def _given(params, options):
    """The options given (None and, outside ``not:``, empty lists mean not given)."""
    return dict((k, params.get(k)) for k in options if params.get(k) is not None)


def parse_into(self, params, new, prefix=''):
    """Validate ``params`` into the Filter ``self``; ``new()`` makes the Filter of ``not:``."""
    given = _given(params, BASE_OPTIONS)
    # an empty list is "not given" for the filter itself; inside not: it matches nothing (see Filter.nothing)
    empty = sorted(k for k, v in given.items() if isinstance(v, (list, tuple)) and not v)
    for k in empty:
        del given[k]
    if prefix and empty:
        self.nothing = True
    self.given = dict(given)
    if prefix:
        self.given.update((k, []) for k in empty)
    self.family = given.get('family')
    self.protonum = parse_proto(given.get('proto'), prefix + 'proto')
    _parse_addresses(self, given, prefix)
    _parse_ports(self, given, prefix)
    if self.protonum == 1 and self.family == 'ipv6' or self.protonum == 58 and self.family == 'ipv4':
        raise ConntrackError('%sproto %s does not exist in family %s: use %s'
                             % (prefix, PROTO_NAMES[self.protonum], self.family,
                                'icmpv6' if self.protonum == 1 else 'icmp'), option=prefix + 'proto')
    if self.family is None and self.protonum in (1, 58):
        self.family = 'ipv4' if self.protonum == 1 else 'ipv6'
    _parse_mark(self, given, prefix)
    for option in ZONE_OPTIONS:
        if option in given:
            zones = set()
            for path, item in values_of(given[option], prefix + option):
                zones.add(parse_int(item, path, 0, 65535, 'zones'))
            setattr(self, option + 's', frozenset(zones))
    _parse_states(self, given, prefix)
    _parse_status(self, given, prefix)
    _parse_nat(self, given, prefix)
    if 'label' in given:
        bits = 0
        for path, item in values_of(given['label'], prefix + 'label'):
            bits |= 1 << parse_label(item, path)
        self.labels = bits
    sub = params.get('not')
    if sub is not None and not prefix:
        if not isinstance(sub, dict):
            raise ConntrackError('not %r is not a dict of filter options' % (sub,), option='not')
        unknown = sorted(str(k) for k in sub if k not in BASE_OPTIONS)
        if unknown:
            raise ConntrackError('not.%s is not a filter option: not takes %s' % (unknown[0], ', '.join(BASE_OPTIONS)),
                                 option='not')
        other = new()
        parse_into(other, sub, new, prefix='not.')
        if not other.given:
            raise ConntrackError('not: give at least one filter option to exclude (it is empty)', option='not')
        self.given['not'] = other.given
        self.negated = other
        if not other.nothing:
            self.exclude(other)
    return self


def _parse_addresses(self, given, prefix):
    families = set()
    for option in ADDRESS_OPTIONS:
        if option not in given:
            continue
        nets = []
        for path, item in values_of(given[option], prefix + option):
            net = Net(parse_network(item, path))
            if self.family is not None and 'family' in given and net.family != self.family:
                raise ConntrackError('%s %s is an %s address but family is %s: addresses and family must agree'
                                     % (path, item, 'IPv4' if net.family == 'ipv4' else 'IPv6', self.family),
                                     option=prefix + option)
            if net not in nets:
                nets.append(net)
        option_families = set(net.family for net in nets)
        if len(option_families) == 1 and families and option_families != families and len(families) == 1:
            raise ConntrackError('%s %s is an %s address but another address filter is %s: addresses and family '
                                 'must agree' % (prefix + option, given[option], 'IPv4' if 'ipv4' in option_families
                                                 else 'IPv6', list(families)[0]), option=prefix + option)
        families |= option_families
        self.nets[option] = tuple(nets)
    if self.family is None and len(families) == 1:
        # addresses of one family imply it; a list with both families leaves it open (each address its own)
        single = [nets for nets in self.nets.values() if len(set(n.family for n in nets)) == 1]
        if len(single) == len(self.nets):
            self.family = list(families)[0]


def _parse_ports(self, given, prefix):
    for option in PORT_OPTIONS:
        if option not in given:
            continue
        if self.protonum not in PORT_PROTOS:
            raise ConntrackError('%s needs proto set to one of %s%s'
                                 % (prefix + option, ', '.join(PORT_PROTO_NAMES),
                                    '' if self.protonum is None else ' (proto is %s)'
                                    % PROTO_NAMES.get(self.protonum, self.protonum)), option=prefix + option)
        ranges = []
        for path, item in values_of(given[option], prefix + option):
            span = parse_port_spec(item, path)
            if span not in ranges:
                ranges.append(span)
        self.ports[option] = tuple(ranges)
    for option in ICMP_OPTIONS:
        if option not in given:
            continue
        high = 65535 if option == 'icmp_id' else 255
        values = set()
        for path, item in values_of(given[option], prefix + option):
            values.add(parse_int(item, path, 0, high, 'ICMP ids' if option == 'icmp_id' else 'ICMP types and codes'))
        if self.protonum not in ICMP_PROTOS:
            raise ConntrackError('%s needs proto icmp or icmpv6' % (prefix + option), option=prefix + option)
        if option == 'icmp_type':
            for value in sorted(values):
                if value not in ICMP_TRACKED[self.protonum]:
                    # the kernel refuses such a tuple filter (EINVAL): no entry ever has another type
                    raise ConntrackError('%sicmp_type %s: the kernel tracks %s types %s only (requests and their '
                                         'replies), so no entry has another type'
                                         % (prefix, value, PROTO_NAMES[self.protonum],
                                            ', '.join(str(t) for t in ICMP_TRACKED[self.protonum])),
                                         option=prefix + 'icmp_type')
        self.icmp[option] = frozenset(values)


def _parse_mark(self, given, prefix):
    if 'mark' in given:
        self.mark_mask = parse_u32(given['mark_mask'], prefix + 'mark_mask') if 'mark_mask' in given else 0xffffffff
        marks = []
        for path, item in values_of(given['mark'], prefix + 'mark'):
            value = parse_u32(item, path) & self.mark_mask
            if value not in marks:
                marks.append(value)
        self.marks = tuple(marks)
    elif 'mark_mask' in given:
        raise ConntrackError('%smark_mask needs mark (the value compared after masking)' % prefix,
                             option=prefix + 'mark_mask')


def _parse_states(self, given, prefix):
    if 'state' not in given:
        return
    known = set(TCP_STATES) | set(SCTP_STATES) | set(DCCP_STATES)
    allowed = PROTO_STATES.get(self.protonum)
    if self.protonum is not None and allowed is None:
        raise ConntrackError('%sstate needs proto tcp, sctp or dccp (proto is %s): other protocols have no '
                             'connection state' % (prefix, PROTO_NAMES.get(self.protonum, self.protonum)),
                             option=prefix + 'state')
    states = set()
    for name in given['state']:
        upper = str(name).strip().upper().replace('-', '_')
        upper = STATE_ALIASES.get(upper, upper)  # the conntrack CLI's name of SYN_SENT2
        if upper not in (allowed or known):
            raise ConntrackError('%sstate %r is not a %s state: use one of %s'
                                 % (prefix, name, PROTO_NAMES.get(self.protonum, 'connection'),
                                    ', '.join(allowed or sorted(known))), option=prefix + 'state')
        states.add(upper)
    self.states = frozenset(states)


def _parse_status(self, given, prefix):
    if 'status' not in given:
        return
    names = [str(n).strip().upper() for n in given['status']]
    for name, upper in zip(given['status'], names):
        if upper == 'UNREPLIED':
            self.status_mask |= STATUS_VALUES['SEEN_REPLY']
        elif upper in STATUS_VALUES:
            self.status_mask |= STATUS_VALUES[upper]
            self.status_value |= STATUS_VALUES[upper]
        else:
            raise ConntrackError('%sstatus %r is not a conntrack status flag: use any of %s'
                                 % (prefix, name, ', '.join(STATUS_BITS + PSEUDO_STATUS)), option=prefix + 'status')
    if 'UNREPLIED' in names and 'SEEN_REPLY' in names:
        raise ConntrackError('%sstatus UNREPLIED and SEEN_REPLY exclude each other' % prefix, option=prefix + 'status')


def _parse_nat(self, given, prefix):
    if 'any_nat' in given and ('src_nat' in given or 'dst_nat' in given):
        raise ConntrackError('%sany_nat cannot be combined with src_nat or dst_nat (any_nat already means either '
                             'of them): keep one' % prefix, option=prefix + 'any_nat')
    for option in NAT_OPTIONS:
        if option not in given:
            continue
        specs = []
        for path, item in values_of(given[option], prefix + option):
            spec = parse_nat(item, path)
            if spec is not True and self.family is not None and spec[0].family != self.family:
                raise ConntrackError('%s %s is an %s address but the filter is %s: addresses and family must agree'
                                     % (path, item, 'IPv4' if spec[0].family == 'ipv4' else 'IPv6', self.family),
                                     option=prefix + option)
            if spec is not True and spec[1] is not None and self.protonum is not None and \
                    self.protonum not in PORT_PROTOS:
                raise ConntrackError('%s %s has a port but proto %s has none: ports need proto %s'
                                     % (path, item, PROTO_NAMES.get(self.protonum, self.protonum),
                                        ', '.join(PORT_PROTO_NAMES)), option=prefix + option)
            if spec not in specs:
                specs.append(spec)
        if True in specs:
            specs = [True]  # "translated at all" covers every address
        self.nat[option[:-4]] = tuple(specs)
    families = set(spec[0].family for specs in self.nat.values() for spec in specs if spec is not True)
    every = all(spec is not True for specs in self.nat.values() for spec in specs)
    if self.family is None and len(families) == 1 and every:
        self.family = families.pop()  # NAT addresses of one family imply it, as addresses do


def connlabel_note():
    """Where label names come from on this host (for messages and docs)."""
    for path in CONNLABEL_FILES:
        if os.path.exists(path):
            return path
    return None
