# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter model shared by conntrack_info, conntrack_flush and conntrack_entry.

User input is validated once (``Filter.from_params``) and split into

* kernel requests: ctnetlink dump/flush attributes for what the running kernel can filter
  itself (family, mark/mask, status/mask, zone, exact orig/reply tuple fields), and
* a Python predicate (``Filter.match``) that checks every condition on each entry.

The predicate checks every condition, so the kernel-side part is an optimisation. Where the
kernel selects exactly the matching entries, callers skip the predicate: that decision is made in
one place, ``kernel_selects_exactly(flt, release)``, from the filter and the kernel release (older
kernels ignore some of the attributes and would return, or flush, more than asked).

Exclusions (``Filter.exclude``) remove entries from the selection; the kernel cannot express them,
so a filter with exclusions is always checked in Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import socket

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError, kernel_version
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import nla, nla_be16, nla_be32, nla_nested
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, CTA_FILTER, CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS, CTA_MARK, CTA_MARK_MASK, CTA_STATUS,
    CTA_STATUS_MASK, CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE, DCCP_STATES, FAMILIES, FILTER_ICMPV6_CODE,
    FILTER_ICMPV6_ID, FILTER_ICMPV6_TYPE, FILTER_ICMP_CODE, FILTER_ICMP_ID, FILTER_ICMP_TYPE, FILTER_IP_DST,
    FILTER_IP_SRC, FILTER_PROTO_DST_PORT, FILTER_PROTO_NUM, FILTER_PROTO_SRC_PORT, ICMP_PROTOS, ICMP_TRACKED, PORT_PROTOS,
    PORT_PROTO_NAMES, PROTO_NAMES, PROTO_NUMBERS, PROTO_STATES, SCTP_STATES, STATE_ALIASES, STATUS_BITS, STATUS_VALUES, TCP_STATES,
    status_value)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import encode_tuple
from ansible_collections.netfilter.conntrack.plugins.module_utils._validate import (
    parse_int, parse_network)

KERNEL_PORT_PROTOS = frozenset((6, 17))  # the kernel's tuple filter compares ports of TCP/UDP only
PSEUDO_STATUS = ('UNREPLIED',)  # = SEEN_REPLY not set, as conntrack -L shows it

FILTER_ARGSPEC = dict(
    family=dict(type='str', choices=['ipv4', 'ipv6']),
    proto=dict(type='str'),
    src=dict(type='str'),
    dst=dict(type='str'),
    reply_src=dict(type='str'),
    reply_dst=dict(type='str'),
    sport=dict(type='int'),
    dport=dict(type='int'),
    reply_sport=dict(type='int'),
    reply_dport=dict(type='int'),
    icmp_type=dict(type='int'),
    icmp_code=dict(type='int'),
    icmp_id=dict(type='int'),
    mark=dict(type='raw'),
    mark_mask=dict(type='raw'),
    zone=dict(type='int'),
    state=dict(type='list', elements='str'),
    status=dict(type='list', elements='str'),
)
FILTER_OPTIONS = tuple(FILTER_ARGSPEC)
ADDRESS_OPTIONS = ('src', 'dst', 'reply_src', 'reply_dst')
PORT_OPTIONS = ('sport', 'dport', 'reply_sport', 'reply_dport')
ICMP_OPTIONS = ('icmp_type', 'icmp_code', 'icmp_id')


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


class _Net(object):
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
        try:
            packed = socket.inet_pton(self.af, address)
        except (OSError, ValueError):
            return False  # other family
        return int.from_bytes(packed, 'big') & self.mask == self.net


class Filter(object):
    """A validated filter. Build it with ``Filter.from_params(module.params)``."""

    def __init__(self):
        self.family = None
        self.protonum = None
        self.nets = {}
        self.ports = {}
        self.icmp = {}
        self.mark = None
        self.mark_mask = 0xffffffff
        self.zone = None
        self.states = None
        self.status_value = 0
        self.status_mask = 0
        self.given = {}
        self.exclusions = []  # filters whose matches are taken out of this one's
        self.any_of = []  # filters of which an entry must match at least one (when not empty)

    # --- validation -------------------------------------------------------------------------
    @classmethod
    def from_params(cls, params):
        self = cls()
        given = dict((k, params.get(k)) for k in FILTER_OPTIONS if params.get(k) not in (None, []))
        self.given = given
        self.family = given.get('family')
        self.protonum = parse_proto(given.get('proto'))

        for option in ADDRESS_OPTIONS:
            if option in given:
                net = _Net(parse_network(given[option], option))
                if self.family is None:
                    self.family = net.family
                elif net.family != self.family:
                    clash = 'family is %s' % self.family if 'family' in given else (
                        'another address filter is %s' % self.family)
                    raise ConntrackError('%s %s is an %s address but %s: addresses and family must agree'
                                         % (option, given[option], 'IPv4' if net.family == 'ipv4' else 'IPv6',
                                            clash), option=option)
                self.nets[option] = net

        for option in PORT_OPTIONS:
            if option in given:
                check_range(given[option], 0, 65535, option, 'ports')
                if self.protonum not in PORT_PROTOS:
                    raise ConntrackError('%s needs proto set to one of %s%s'
                                         % (option, ', '.join(PORT_PROTO_NAMES),
                                            '' if self.protonum is None else ' (proto is %s)'
                                            % PROTO_NAMES.get(self.protonum, self.protonum)), option=option)
                self.ports[option] = given[option]

        for option in ICMP_OPTIONS:
            if option in given:
                check_range(given[option], 0, 65535 if option == 'icmp_id' else 255, option,
                            'ICMP ids' if option == 'icmp_id' else 'ICMP types and codes')
                if self.protonum not in ICMP_PROTOS:
                    raise ConntrackError('%s needs proto icmp or icmpv6' % option, option=option)
                self.icmp[option] = given[option]
        if 'icmp_type' in self.icmp and self.icmp['icmp_type'] not in ICMP_TRACKED[self.protonum]:
            # the kernel refuses such a tuple filter (EINVAL): no entry ever has another type
            raise ConntrackError('icmp_type %s: the kernel tracks %s types %s only (requests and their replies), so no '
                                 'entry has another type' % (self.icmp['icmp_type'], PROTO_NAMES[self.protonum],
                                                             ', '.join(str(t) for t in ICMP_TRACKED[self.protonum])),
                                 option='icmp_type')
        if self.protonum == 1 and self.family == 'ipv6' or self.protonum == 58 and self.family == 'ipv4':
            raise ConntrackError('proto %s does not exist in family %s: use %s'
                                 % (PROTO_NAMES[self.protonum], self.family,
                                    'icmpv6' if self.protonum == 1 else 'icmp'), option='proto')
        if self.family is None and self.protonum in (1, 58):
            self.family = 'ipv4' if self.protonum == 1 else 'ipv6'

        if 'mark' in given:
            self.mark_mask = parse_u32(given['mark_mask'], 'mark_mask') if 'mark_mask' in given else 0xffffffff
            self.mark = parse_u32(given['mark'], 'mark') & self.mark_mask
        elif 'mark_mask' in given:
            raise ConntrackError('mark_mask needs mark (the value compared after masking)', option='mark_mask')

        if 'zone' in given:
            check_range(given['zone'], 0, 65535, 'zone', 'zones')
            self.zone = given['zone']

        if 'state' in given:
            known = set(TCP_STATES) | set(SCTP_STATES) | set(DCCP_STATES)
            allowed = PROTO_STATES.get(self.protonum)
            if self.protonum is not None and allowed is None:
                raise ConntrackError('state needs proto tcp, sctp or dccp (proto is %s): other protocols have no '
                                     'connection state' % PROTO_NAMES.get(self.protonum, self.protonum),
                                     option='state')
            states = set()
            for name in given['state']:
                upper = str(name).strip().upper().replace('-', '_')
                upper = STATE_ALIASES.get(upper, upper)  # the conntrack CLI's name of SYN_SENT2
                if upper not in (allowed or known):
                    raise ConntrackError('state %r is not a %s state: use one of %s'
                                         % (name, PROTO_NAMES.get(self.protonum, 'connection'),
                                            ', '.join(allowed or sorted(known))), option='state')
                states.add(upper)
            self.states = frozenset(states)

        if 'status' in given:
            for name in given['status']:
                upper = str(name).strip().upper()
                if upper == 'UNREPLIED':
                    self.status_mask |= STATUS_VALUES['SEEN_REPLY']
                elif upper in STATUS_VALUES:
                    self.status_mask |= STATUS_VALUES[upper]
                    self.status_value |= STATUS_VALUES[upper]
                else:
                    raise ConntrackError('status %r is not a conntrack status flag: use any of %s'
                                         % (name, ', '.join(STATUS_BITS + PSEUDO_STATUS)), option='status')
            if 'UNREPLIED' in [str(n).strip().upper() for n in given['status']] and \
                    'SEEN_REPLY' in [str(n).strip().upper() for n in given['status']]:
                raise ConntrackError('status UNREPLIED and SEEN_REPLY exclude each other', option='status')
        return self

    @classmethod
    def port_guard(cls, family, protonum, port_ranges):
        """A filter (for ``exclude``) of one protocol's entries whose original destination port is in any
        of ``port_ranges`` ([(low, high)]; empty: every port), in ``family`` (None: both)."""
        self = cls()
        self.family = family
        self.protonum = protonum
        if port_ranges:
            self.port_ranges = tuple(port_ranges)
        self.given = {'family': family, 'proto': PROTO_NAMES.get(protonum, protonum), 'dport': list(port_ranges)}
        return self

    port_ranges = None

    def exclude(self, other):
        """Take the entries ``other`` matches out of this filter's selection (checked in Python)."""
        self.exclusions.append(other)

    def excluded_part(self):
        """A filter of the entries this filter's conditions select but its exclusions take out (for counting
        what an exclusion kept), or None when it has no exclusions."""
        if not self.exclusions:
            return None
        part = copy.copy(self)
        part.exclusions = []
        part.any_of = list(self.exclusions)
        return part

    @property
    def empty(self):
        """True when the filter selects every entry."""
        return not self.given and not self.exclusions

    def describe(self):
        return ', '.join('%s=%s' % (k, v) for k, v in sorted(self.given.items())) or 'no filter'

    # --- the Python predicate ---------------------------------------------------------------
    def match(self, entry):
        """True when ``entry`` (a flat entry dict) satisfies every condition of the filter."""
        if self.family is not None and entry.get('family') != self.family:
            return False
        if self.protonum is not None and entry.get('protonum') != self.protonum:
            return False
        for option, net in self.nets.items():
            if not net.matches(entry.get(option)):
                return False
        for option, port in self.ports.items():
            if entry.get(option) != port:
                return False
        for option, value in self.icmp.items():
            if entry.get(option) != value:
                return False
        if self.mark is not None and (entry.get('mark', 0) & self.mark_mask) != self.mark:
            return False
        if self.zone is not None and entry.get('zone', 0) != self.zone:
            return False
        if self.states is not None and entry.get('state') not in self.states:
            return False
        if self.status_mask:
            value = status_value(entry.get('status', ()))
            if value & self.status_mask != self.status_value:
                return False
        if self.port_ranges is not None:
            port = entry.get('dport')
            if port is None or not any(low <= port <= high for low, high in self.port_ranges):
                return False
        for other in self.exclusions:
            if other.match(entry):
                return False
        if self.any_of and not any(other.match(entry) for other in self.any_of):
            return False
        return True

    # --- kernel-side requests ---------------------------------------------------------------
    def _tuple_part(self, prefix, family):
        """(flags, tuple dict) of what the kernel compares exactly in one direction."""
        flags = 0
        tup = {}
        src = self.nets.get(prefix + 'src')
        dst = self.nets.get(prefix + 'dst')
        if family != 'ipv4':
            # Linux (6.18 included) inverts the IPv6 address comparison of CTA_FILTER
            # (ctnetlink_filter_match_tuple: `!ipv6_addr_cmp(...)` skips the EQUAL entries): a dump
            # with an IPv6 src/dst filter returns every entry except the wanted ones, and a kernel-side
            # flush would delete every entry except them. IPv6 addresses are compared in Python only
            # (measured; see tests/integration/test_filter_kernel.py).
            src = dst = None
        if src is not None and src.host:
            flags |= FILTER_IP_SRC
            tup['src'] = src.text
        if dst is not None and dst.host:
            flags |= FILTER_IP_DST
            tup['dst'] = dst.text
        if self.protonum is not None:
            ports = dict((k[len(prefix):], v) for k, v in self.ports.items() if k.startswith(prefix) and
                         (prefix or not k.startswith('reply_')))
            if self.protonum in KERNEL_PORT_PROTOS:
                if 'sport' in ports:
                    flags |= FILTER_PROTO_SRC_PORT
                    tup['sport'] = ports['sport']
                if 'dport' in ports:
                    flags |= FILTER_PROTO_DST_PORT
                    tup['dport'] = ports['dport']
            if not prefix and self.icmp:
                v6 = self.protonum == 58
                for option, flag4, flag6 in (('icmp_type', FILTER_ICMP_TYPE, FILTER_ICMPV6_TYPE),
                                             ('icmp_code', FILTER_ICMP_CODE, FILTER_ICMPV6_CODE),
                                             ('icmp_id', FILTER_ICMP_ID, FILTER_ICMPV6_ID)):
                    if option in self.icmp:
                        flags |= flag6 if v6 else flag4
                        tup[option] = self.icmp[option]
            if flags or not prefix:
                flags |= FILTER_PROTO_NUM
                tup['protonum'] = self.protonum
        return flags, tup

    def kernel_requests(self):
        """[(nfgen family, attrs bytes)] dump requests whose union is a superset of the matches.

        Tuple filters (CTA_FILTER) need a concrete family, so a filter with tuple fields and no family
        becomes one request per family; everything else is one request.
        """
        common = self.selector_attrs()
        if not (self._tuple_part('', self.family or 'ipv4')[0] or self._tuple_part('reply_', self.family or 'ipv4')[0]):
            # mark, status and zone filters work with AF_UNSPEC: one walk of the table for both families
            return [(FAMILIES[self.family] if self.family else 0, common)]
        families = [self.family] if self.family else ['ipv4', 'ipv6']
        requests = []
        for family in families:
            orig_flags, orig = self._tuple_part('', family)
            reply_flags, reply = self._tuple_part('reply_', family)
            attrs = common
            if orig_flags or reply_flags:
                if orig_flags:
                    attrs += encode_tuple(CTA_TUPLE_ORIG, family, orig)
                if reply_flags:
                    attrs += encode_tuple(CTA_TUPLE_REPLY, family, reply)
                attrs += nla_nested(CTA_FILTER, nla(CTA_FILTER_ORIG_FLAGS, _u32(orig_flags)),
                                    nla(CTA_FILTER_REPLY_FLAGS, _u32(reply_flags)))
            requests.append((FAMILIES[family], attrs))
        return requests

    def selector_attrs(self):
        """The mark/mask, status/mask and zone attributes of this filter: what a dump and a kernel-side flush
        select by besides the tuples."""
        attrs = b''
        if self.mark is not None:
            attrs += nla_be32(CTA_MARK, self.mark) + nla_be32(CTA_MARK_MASK, self.mark_mask)
        if self.status_mask:
            attrs += nla_be32(CTA_STATUS, self.status_value) + nla_be32(CTA_STATUS_MASK, self.status_mask)
        if self.zone is not None:
            # CTA_ZONE alone filters a dump by zone (with any family, AF_UNSPEC included); the
            # tuple-zone filter flag with a zone inside the tuple is refused (EINVAL).
            attrs += nla_be16(CTA_ZONE, self.zone)
        return attrs

    def kernel_exact_shape(self, ignore_nets=False):
        """True when the kernel-side requests express every condition of the filter (on a kernel that honours
        all of them: see ``kernel_selects_exactly``); with ``ignore_nets``, every condition but the addresses."""
        if self.states is not None or self.exclusions or self.any_of or self.port_ranges is not None:
            return False
        if any(k.startswith('reply_') for k in self.given if not (ignore_nets and k in ADDRESS_OPTIONS)):
            return False
        if not ignore_nets and any(not net.host or net.family != 'ipv4' for net in self.nets.values()):
            return False  # CIDRs, and IPv6 addresses (the kernel's IPv6 tuple filter is inverted)
        if self.ports and self.protonum not in KERNEL_PORT_PROTOS:
            return False
        return True

    def uses_tuple_filter(self):
        """True when the kernel requests carry CTA_FILTER (a protocol, addresses, ports or ICMP fields)."""
        return self.protonum is not None or bool(self.nets or self.ports or self.icmp)


# The first kernel release whose dump honours each kind of filter attribute. An older kernel ignores the
# attribute and returns more than asked (every zone, every status), so the Python predicate must check.
KERNEL_DUMP_FILTER_SINCE = (
    ('tuple', (5, 8)),    # CTA_FILTER: protocol, addresses, ports, ICMP fields of the orig/reply tuple
    ('status', (5, 19)),  # CTA_STATUS + CTA_STATUS_MASK
    ('zone', (6, 8)),     # CTA_ZONE ("ctnetlink: support filtering by zone")
)


def kernel_selects_exactly(flt, release=None, ignore_nets=False):
    """True when the kernel's answer to ``flt.kernel_requests()`` is exactly the set ``flt.match`` accepts on
    the kernel ``release`` (default: the running one), so no entry needs the Python predicate. With
    ``ignore_nets``: exact but for the address conditions (which the caller then checks on the raw bytes).

    The one decision for listings (conntrack_info), selections and deletes (conntrack_flush).
    """
    if flt.empty:
        return True
    if not flt.kernel_exact_shape(ignore_nets):
        return False
    version = kernel_version(release)
    since = dict(KERNEL_DUMP_FILTER_SINCE)
    if flt.uses_tuple_filter() and version < since['tuple']:
        return False
    if flt.status_mask and version < since['status']:
        return False
    if flt.zone is not None and version < since['zone']:
        return False
    return True


def _u32(value):
    return value.to_bytes(4, 'little')  # CTA_FILTER_*_FLAGS are host-order u32
