# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter model shared by conntrack_info, conntrack_flush and conntrack_entry.

User input is validated once (``Filter.from_params``, the checks live in ``_filterspec``) and split into

* kernel requests: ctnetlink dump/flush attributes for what the running kernel can filter itself (family,
  mark/mask, status/mask, zone, exact orig/reply tuple fields), one request per kernel-expressible branch
  of the "any of" lists (``src: [a, b]`` is two requests), at most ``MAX_KERNEL_REQUESTS``; and
* a Python predicate (``Filter.match``) that checks every condition on each entry.

The predicate checks every condition, so the kernel-side part is an optimisation. Where the kernel selects
exactly the matching entries, callers skip the predicate: that decision is made in one place,
``kernel_selects_exactly(flt, release)``, from the filter and the kernel release (older kernels ignore
some of the attributes and would return, or flush, more than asked).

Exclusions (``not:``, ``Filter.exclude``) remove entries from the selection; the kernel cannot express them,
so a filter with exclusions is always checked in Python. So are NAT, labels, directional zones, CIDRs,
IPv6 addresses, port ranges and states.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import itertools

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import kernel_version
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import nla, nla_be16, nla_be32, nla_nested
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    CTA_FILTER, CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS, CTA_MARK, CTA_MARK_MASK, CTA_STATUS,
    CTA_STATUS_MASK, CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE, FAMILIES, FILTER_ICMPV6_CODE, FILTER_ICMPV6_ID,
    FILTER_ICMPV6_TYPE, FILTER_ICMP_CODE, FILTER_ICMP_ID, FILTER_ICMP_TYPE, FILTER_IP_DST, FILTER_IP_SRC,
    FILTER_PROTO_DST_PORT, FILTER_PROTO_NUM, FILTER_PROTO_SRC_PORT, PROTO_NAMES, STATUS_VALUES, status_value)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import encode_tuple
from ansible_collections.netfilter.conntrack.plugins.module_utils._filterspec import (  # noqa: F401 pylint: disable=unused-import
    ADDRESS_OPTIONS, FILTER_ARGSPEC, FILTER_OPTIONS, ICMP_OPTIONS, PORT_OPTIONS, PSEUDO_STATUS, Net, check_range,
    parse_into, parse_proto, parse_u32)

KERNEL_PORT_PROTOS = frozenset((6, 17))  # the kernel's tuple filter compares ports of TCP/UDP only
MAX_KERNEL_REQUESTS = 16  # beyond this many branches: one dump for the rest, the lists checked in Python
SRC_NAT_DONE, DST_NAT_DONE = STATUS_VALUES['SRC_NAT_DONE'], STATUS_VALUES['DST_NAT_DONE']
# NAT kind -> (status bit, entry key of the original side, of the reply side, port keys likewise)
_NAT_SIDES = {'src': (SRC_NAT_DONE, 'src', 'reply_dst', 'sport', 'reply_dport'),
              'dst': (DST_NAT_DONE, 'dst', 'reply_src', 'dport', 'reply_sport')}
_Net = Net  # the name older callers import


def _one(values):
    """The value of a single-valued condition (a tuple/frozenset of one), else None."""
    if values is not None and len(values) == 1:
        return next(iter(values))
    return None


def zone_id(entry):
    """The entry's zone id whatever its direction (what the kernel's CTA_ZONE dump filter compares)."""
    return entry.get('zone') or entry.get('tuple_zone') or entry.get('reply_tuple_zone') or 0


def nat_matches(kind, spec, entry, status):
    """True when ``entry`` was translated on the ``kind`` side ('src' or 'dst') as ``spec`` says (True: at all;
    (Net, port)): conntrack --src-nat/--dst-nat. The NAT_DONE status bit must be set and the reply tuple must
    differ from the original there: the reply destination (SNAT) or source (DNAT), and with a port, the port."""
    bit, orig, reply, orig_port, reply_port = _NAT_SIDES[kind]
    if not status & bit:
        return False
    addr_changed = entry.get(reply) != entry.get(orig)
    port = entry.get(reply_port)
    port_changed = port is not None and port != entry.get(orig_port)
    if spec is True:
        return addr_changed or port_changed
    net, want_port = spec
    if not addr_changed or not net.matches(entry.get(reply)):
        return False
    return want_port is None or port_changed and port == want_port


class Filter(object):
    """A validated filter. Build it with ``Filter.from_params(module.params)``."""

    def __init__(self):
        self.family = None
        self.protonum = None
        self.nets = {}  # option -> (Net, ...): any of
        self.ports = {}  # option -> ((low, high), ...): any of
        self.icmp = {}  # option -> frozenset of values
        self.marks = None  # (value & mark_mask, ...)
        self.mark_mask = 0xffffffff
        self.zones = self.orig_zones = self.reply_zones = None  # frozensets
        self.states = None
        self.status_value = 0
        self.status_mask = 0
        self.nat = {}  # 'src'/'dst'/'any' -> (True | (Net, port), ...)
        self.labels = None  # bitmap of the labels an entry must all carry
        self.given = {}
        self.nothing = False  # an option of not: given as an empty list: the exclusion matches no entry
        self.negated = None  # the not: filter, as given
        self.exclusions = []  # filters whose matches are taken out of this one's
        self.any_of = []  # filters of which an entry must match at least one (when not empty)

    # --- validation -------------------------------------------------------------------------
    @classmethod
    def from_params(cls, params):
        return parse_into(cls(), params, cls)

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

    @property
    def mark(self):
        """The mark of a single-valued mark filter (None otherwise)."""
        return _one(self.marks)

    @property
    def zone(self):
        return _one(self.zones)

    def exclude(self, other):
        """Take the entries ``other`` matches out of this filter's selection (checked in Python)."""
        self.exclusions.append(other)

    def excluded_part(self, only=None):
        """A filter of the entries this filter's conditions select but its exclusions (or those of ``only``)
        take out (for counting what an exclusion kept), or None when there is none."""
        exclusions = self.exclusions if only is None else [e for e in self.exclusions if e in only]
        if not exclusions:
            return None
        part = copy.copy(self)
        part.exclusions = [e for e in self.exclusions if e not in exclusions]
        part.any_of = list(exclusions)
        return part

    @property
    def empty(self):
        """True when the filter selects every entry."""
        return not self.given and not self.exclusions

    @property
    def positive(self):
        """The options given besides ``not`` (what the selection is made of)."""
        return dict((k, v) for k, v in self.given.items() if k != 'not')

    def describe(self):
        return ', '.join('%s=%s' % (k, v) for k, v in sorted(self.given.items())) or 'no filter'

    # --- the Python predicate ---------------------------------------------------------------
    def match(self, entry):
        """True when ``entry`` (a flat entry dict) satisfies every condition of the filter."""
        if self.family is not None and entry.get('family') != self.family:
            return False
        if self.protonum is not None and entry.get('protonum') != self.protonum:
            return False
        for option, nets in self.nets.items():
            address = entry.get(option)
            if not any(net.matches(address) for net in nets):
                return False
        for option, spans in self.ports.items():
            port = entry.get(option)
            if port is None or not any(low <= port <= high for low, high in spans):
                return False
        for option, values in self.icmp.items():
            if entry.get(option) not in values:
                return False
        if self.marks is not None and (entry.get('mark', 0) & self.mark_mask) not in self.marks:
            return False
        if self.zones is not None and zone_id(entry) not in self.zones:
            return False
        if self.orig_zones is not None and entry.get('tuple_zone', entry.get('zone', 0)) not in self.orig_zones:
            return False
        if self.reply_zones is not None and entry.get('reply_tuple_zone', entry.get('zone', 0)) not in self.reply_zones:
            return False
        if self.states is not None and entry.get('state') not in self.states:
            return False
        if self.status_mask or self.nat:
            value = status_value(entry.get('status', ()))
            if value & self.status_mask != self.status_value:
                return False
            for kind, specs in self.nat.items():
                kinds = ('src', 'dst') if kind == 'any' else (kind,)
                if not any(nat_matches(k, spec, entry, value) for spec in specs for k in kinds):
                    return False
        if self.labels is not None:
            bits = 0
            for bit in entry.get('labels') or ():
                bits |= 1 << bit
            if bits & self.labels != self.labels:
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
    def _branch_dims(self):
        """[(attribute, key, values)] of the conditions with several values that the kernel can take one value
        per request (IPv4 host addresses, single TCP/UDP ports, ICMP fields, marks, zones)."""
        dims = []
        for option in ADDRESS_OPTIONS:
            nets = self.nets.get(option)
            if nets and len(nets) > 1 and all(net.host and net.family == 'ipv4' for net in nets):
                dims.append(('nets', option, nets))
        if self.protonum in KERNEL_PORT_PROTOS:
            for option in PORT_OPTIONS:
                spans = self.ports.get(option)
                if spans and len(spans) > 1 and all(low == high for low, high in spans):
                    dims.append(('ports', option, spans))
        for option in ICMP_OPTIONS:
            values = self.icmp.get(option)
            if values and len(values) > 1:
                dims.append(('icmp', option, tuple(sorted(values))))
        if self.marks is not None and len(self.marks) > 1:
            dims.append(('marks', None, self.marks))
        if self.zones is not None and len(self.zones) > 1:
            dims.append(('zones', None, tuple(sorted(self.zones))))
        return dims

    def _plan(self):
        """(branch dimensions taken, every multi-valued condition taken): the largest lists are left to
        Python when the product of the list lengths (times two families) would pass MAX_KERNEL_REQUESTS."""
        dims = sorted(self._branch_dims(), key=lambda dim: len(dim[2]))
        per_family = 2 if self.family is None and self.uses_tuple_filter() else 1
        taken = []
        product = per_family
        for dim in dims:
            if product * len(dim[2]) > MAX_KERNEL_REQUESTS:
                break
            product *= len(dim[2])
            taken.append(dim)
        multi = sum(1 for nets in self.nets.values() if len(nets) > 1) + \
            sum(1 for spans in self.ports.values() if len(spans) > 1) + \
            sum(1 for values in self.icmp.values() if len(values) > 1) + \
            (self.marks is not None and len(self.marks) > 1) + (self.zones is not None and len(self.zones) > 1)
        return taken, len(taken) == multi

    def branches(self):
        """Copies of this filter, one per kernel request branch: the taken lists become single values."""
        taken, _all = self._plan()
        if not taken:
            return [self]
        out = []
        for values in itertools.product(*[dim[2] for dim in taken]):
            view = copy.copy(self)
            view.nets, view.ports, view.icmp = dict(self.nets), dict(self.ports), dict(self.icmp)
            for (attr, key, _values), value in zip(taken, values):
                if attr in ('nets', 'ports'):
                    getattr(view, attr)[key] = (value,)
                elif attr == 'icmp':
                    view.icmp[key] = frozenset((value,))
                elif attr == 'marks':
                    view.marks = (value,)
                else:
                    view.zones = frozenset((value,))
            out.append(view)
        return out

    def _tuple_part(self, prefix, family):
        """(flags, tuple dict) of what the kernel compares exactly in one direction."""
        flags = 0
        tup = {}
        src = _one(self.nets.get(prefix + 'src'))
        dst = _one(self.nets.get(prefix + 'dst'))
        if family != 'ipv4':
            # Linux (6.18 included) inverts the IPv6 address comparison of CTA_FILTER
            # (ctnetlink_filter_match_tuple: `!ipv6_addr_cmp(...)` skips the EQUAL entries): a dump
            # with an IPv6 src/dst filter returns every entry except the wanted ones, and a kernel-side
            # flush would delete every entry except them. IPv6 addresses are compared in Python only
            # (measured; see tests/integration/test_filter_kernel.py).
            src = dst = None
        if src is not None and src.host and src.family == family:
            flags |= FILTER_IP_SRC
            tup['src'] = src.text
        if dst is not None and dst.host and dst.family == family:
            flags |= FILTER_IP_DST
            tup['dst'] = dst.text
        if self.protonum is not None:
            if self.protonum in KERNEL_PORT_PROTOS:
                for name, flag in (('sport', FILTER_PROTO_SRC_PORT), ('dport', FILTER_PROTO_DST_PORT)):
                    span = _one(self.ports.get(prefix + name))
                    if span is not None and span[0] == span[1]:
                        flags |= flag
                        tup[name] = span[0]
            if not prefix and self.icmp:
                v6 = self.protonum == 58
                for option, flag4, flag6 in (('icmp_type', FILTER_ICMP_TYPE, FILTER_ICMPV6_TYPE),
                                             ('icmp_code', FILTER_ICMP_CODE, FILTER_ICMPV6_CODE),
                                             ('icmp_id', FILTER_ICMP_ID, FILTER_ICMPV6_ID)):
                    value = _one(self.icmp.get(option))
                    if value is not None:
                        flags |= flag6 if v6 else flag4
                        tup[option] = value
            if flags or not prefix:
                flags |= FILTER_PROTO_NUM
                tup['protonum'] = self.protonum
        return flags, tup

    def kernel_requests(self):
        """[(nfgen family, attrs bytes)] dump requests whose union is a superset of the matches, disjoint.

        One per branch of the kernel-expressible lists (``branches``). Tuple filters (CTA_FILTER) need a concrete
        family, so a branch with tuple fields and no family becomes one request per family.
        """
        requests = []
        for view in self.branches():
            requests += view._requests()
        return requests

    def _requests(self):
        common = self.selector_attrs()
        if not (self._tuple_part('', self.family or 'ipv4')[0] or self._tuple_part('reply_', self.family or 'ipv4')[0]):
            # mark, status and zone filters work with AF_UNSPEC: one walk of the table for both families
            return [(FAMILIES[self.family] if self.family else 0, common)]
        requests = []
        for family in [self.family] if self.family else ['ipv4', 'ipv6']:
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

    def nat_status_bits(self):
        """The NAT_DONE bits a src_nat/dst_nat filter needs (the kernel can select them by status)."""
        return (SRC_NAT_DONE if 'src' in self.nat else 0) | (DST_NAT_DONE if 'dst' in self.nat else 0)

    def selector_attrs(self):
        """The mark/mask, status/mask and zone attributes of this filter: what a dump and a kernel-side flush
        select by besides the tuples."""
        attrs = b''
        mark = _one(self.marks)
        if mark is not None:
            attrs += nla_be32(CTA_MARK, mark) + nla_be32(CTA_MARK_MASK, self.mark_mask)
        nat_bits = self.nat_status_bits()
        if self.status_mask or nat_bits:
            attrs += nla_be32(CTA_STATUS, self.status_value | nat_bits) + \
                nla_be32(CTA_STATUS_MASK, self.status_mask | nat_bits)
        zone = _one(self.zones)
        if zone is not None:
            # CTA_ZONE alone filters a dump by zone id, whatever the zone's direction (measured on 6.18), with
            # any family, AF_UNSPEC included; the tuple-zone filter flag with a zone in the tuple is refused.
            attrs += nla_be16(CTA_ZONE, zone)
        return attrs

    def kernel_exact_shape(self, ignore_nets=False):
        """True when the kernel-side requests express every condition of the filter (on a kernel that honours
        all of them: see ``kernel_selects_exactly``); with ``ignore_nets``, every condition but the addresses."""
        if self.states is not None or self.exclusions or self.any_of or self.port_ranges is not None or \
                self.nat or self.labels is not None or self.orig_zones is not None or self.reply_zones is not None:
            return False
        if any(k.startswith('reply_') for k in self.given if not (ignore_nets and k in ADDRESS_OPTIONS)):
            return False
        if not ignore_nets and any(not net.host or net.family != 'ipv4' for nets in self.nets.values() for net in nets):
            return False  # CIDRs, and IPv6 addresses (the kernel's IPv6 tuple filter is inverted)
        if ignore_nets and any(len(nets) > 1 for nets in self.nets.values()):
            return False
        if self.ports and (self.protonum not in KERNEL_PORT_PROTOS or
                           any(low != high for spans in self.ports.values() for low, high in spans)):
            return False
        return self._plan()[1]

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
    if flt.zones is not None and version < since['zone']:
        return False
    return True


def _u32(value):
    return value.to_bytes(4, 'little')  # CTA_FILTER_*_FLAGS are host-order u32
