# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Conntrack's vocabulary: attribute numbers, families, protocols, states and status bits, named once.

The CTA_* numbers are those of include/uapi/linux/netfilter/nfnetlink_conntrack.h; the family and protocol
maps are the one place where a name becomes a number and back (the filter options, the entry options, the
decoders, /proc parsing and the nftables rules all use them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

# --- CTA_* attributes ------------------------------------------------------------------------------
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_HELP = 1, 2, 3, 4, 5
CTA_NAT_SRC, CTA_TIMEOUT, CTA_MARK, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY = 6, 7, 8, 9, 10
CTA_USE, CTA_ID, CTA_NAT_DST, CTA_TUPLE_MASTER, CTA_SEQ_ADJ_ORIG, CTA_SEQ_ADJ_REPLY = 11, 12, 13, 14, 15, 16
CTA_SECMARK, CTA_ZONE, CTA_SECCTX, CTA_TIMESTAMP, CTA_MARK_MASK, CTA_LABELS = 17, 18, 19, 20, 21, 22
CTA_LABELS_MASK, CTA_SYNPROXY, CTA_FILTER, CTA_STATUS_MASK = 23, 24, 25, 26
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_TUPLE_ZONE = 1, 2, 3
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE = 7, 8, 9
CTA_PROTOINFO_TCP, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_SCTP = 1, 2, 3
CTA_PROTOINFO_TCP_STATE, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, CTA_PROTOINFO_TCP_WSCALE_REPLY = 1, 2, 3
CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, CTA_PROTOINFO_TCP_FLAGS_REPLY = 4, 5
CTA_PROTOINFO_DCCP_STATE = 1
CTA_PROTOINFO_SCTP_STATE, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, CTA_PROTOINFO_SCTP_VTAG_REPLY = 1, 2, 3
CTA_HELP_NAME = 1
CTA_COUNTERS_PACKETS, CTA_COUNTERS_BYTES, CTA_COUNTERS32_PACKETS, CTA_COUNTERS32_BYTES = 1, 2, 3, 4
CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP = 1, 2
CTA_NAT_V4_MINIP, CTA_NAT_V4_MAXIP, CTA_NAT_PROTO, CTA_NAT_V6_MINIP, CTA_NAT_V6_MAXIP = 1, 2, 3, 4, 5
CTA_PROTONAT_PORT_MIN, CTA_PROTONAT_PORT_MAX = 1, 2
CTA_SECCTX_NAME = 1
CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS = 1, 2
# CTA_FILTER_FLAG(x): which tuple fields a kernel-side filter compares
FILTER_IP_SRC, FILTER_IP_DST, FILTER_TUPLE_ZONE, FILTER_PROTO_NUM = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FILTER_PROTO_SRC_PORT, FILTER_PROTO_DST_PORT = 1 << 4, 1 << 5
FILTER_ICMP_TYPE, FILTER_ICMP_CODE, FILTER_ICMP_ID = 1 << 6, 1 << 7, 1 << 8
FILTER_ICMPV6_TYPE, FILTER_ICMPV6_CODE, FILTER_ICMPV6_ID = 1 << 9, 1 << 10, 1 << 11

CTA_EXPECT_MASTER, CTA_EXPECT_TUPLE, CTA_EXPECT_MASK, CTA_EXPECT_TIMEOUT = 1, 2, 3, 4
CTA_EXPECT_ID, CTA_EXPECT_HELP_NAME, CTA_EXPECT_ZONE, CTA_EXPECT_FLAGS = 5, 6, 7, 8
CTA_EXPECT_CLASS, CTA_EXPECT_NAT, CTA_EXPECT_FN = 9, 10, 11
# NF_CT_EXPECT_* flag bits, in bit order
EXPECT_FLAGS = ('PERMANENT', 'INACTIVE', 'USERSPACE')

# --- statistics ------------------------------------------------------------------------------------
CTA_STATS_NAMES = {
    2: 'found', 4: 'invalid', 8: 'insert', 9: 'insert_failed', 10: 'drop', 11: 'early_drop',
    12: 'error', 13: 'search_restart', 14: 'clash_resolve', 15: 'chaintoolong',
}
STATS_KEYS = tuple(CTA_STATS_NAMES[num] for num in sorted(CTA_STATS_NAMES))
CTA_STATS_GLOBAL_ENTRIES, CTA_STATS_GLOBAL_MAX_ENTRIES = 1, 2
CTA_STATS_GLOBAL_NAMES = {CTA_STATS_GLOBAL_ENTRIES: 'count', CTA_STATS_GLOBAL_MAX_ENTRIES: 'max'}
CTA_STATS_EXP_NAMES = {1: 'new', 2: 'create', 3: 'delete'}

# --- families --------------------------------------------------------------------------------------
AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
FAMILY_NAMES = {AF_INET: 'ipv4', AF_INET6: 'ipv6'}
FAMILIES = {'ipv4': AF_INET, 'ipv6': AF_INET6}


def af_of(family):
    """The address family number of a family name ('ipv4' or 'ipv6')."""
    return AF_INET if family == 'ipv4' else AF_INET6


# --- protocols -------------------------------------------------------------------------------------
PROTO_NAMES = {1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 58: 'icmpv6',
               132: 'sctp', 136: 'udplite'}
# name -> number: the names above, and the other names conntrack-tools and /etc/protocols use
PROTO_NUMBERS = dict((name, num) for num, name in PROTO_NAMES.items())
PROTO_NUMBERS.update({'icmp6': 58, 'ipv6-icmp': 58, 'udp-lite': 136})
# the protocols with ports, in the order messages list them
PORT_PROTO_NAMES = ('tcp', 'udp', 'sctp', 'dccp', 'udplite')
PORT_PROTOS = frozenset(PROTO_NUMBERS[name] for name in PORT_PROTO_NAMES)
ICMP_PROTOS = frozenset((PROTO_NUMBERS['icmp'], PROTO_NUMBERS['icmpv6']))
# the ICMP types the kernel tracks (requests and their replies: the invmap of nf_conntrack_proto_icmp(v6).c);
# a tuple of another type is refused (EINVAL), and no entry ever has one
ICMP_TRACKED = {1: (0, 8, 13, 14, 15, 16, 17, 18), 58: (128, 129, 139, 140)}

# enum tcp_conntrack, sctp_conntrack, ct_dccp_states
TCP_STATES = ('NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK',
              'TIME_WAIT', 'CLOSE', 'SYN_SENT2')
SCTP_STATES = ('NONE', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED', 'SHUTDOWN_SENT',
               'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT', 'HEARTBEAT_ACKED')
DCCP_STATES = ('NONE', 'REQUEST', 'RESPOND', 'PARTOPEN', 'OPEN', 'CLOSEREQ', 'CLOSING', 'TIMEWAIT',
               'IGNORE', 'INVALID')
# the protocols with a connection state: protocol number -> its state names (by state number)
PROTO_STATES = {6: TCP_STATES, 132: SCTP_STATES, 33: DCCP_STATES}
# the conntrack CLI's state names that differ from the kernel's
STATE_ALIASES = {'LISTEN': 'SYN_SENT2'}

# --- status ----------------------------------------------------------------------------------------
# enum ip_conntrack_status bits, in bit order
STATUS_BITS = ('EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT', 'DST_NAT', 'SEQ_ADJUST',
               'SRC_NAT_DONE', 'DST_NAT_DONE', 'DYING', 'FIXED_TIMEOUT', 'TEMPLATE', 'NAT_CLASH',
               'HELPER', 'OFFLOAD', 'HW_OFFLOAD')
STATUS_VALUES = dict((name, 1 << bit) for bit, name in enumerate(STATUS_BITS))
# the bits the kernel lets userspace set on create/update (IPS_UNCHANGEABLE_MASK is the rest)
STATUS_SETTABLE = ('EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT', 'DST_NAT',
                   'SEQ_ADJUST', 'FIXED_TIMEOUT')
NAT_BITS = STATUS_VALUES['SRC_NAT'] | STATUS_VALUES['DST_NAT']

_STATUS_CACHE = {}


def status_names(value):
    """Status bit names for a CTA_STATUS value (cached: a table has few distinct values)."""
    names = _STATUS_CACHE.get(value)
    if names is None:
        names = [name for bit, name in enumerate(STATUS_BITS) if value & (1 << bit)]
        _STATUS_CACHE[value] = names
    return names


def status_value(names):
    value = 0
    for name in names:
        value |= STATUS_VALUES[name]
    return value
