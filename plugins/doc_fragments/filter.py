# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The entry filter shared by conntrack_info, conntrack_flush (one model, one validation).
    DOCUMENTATION = r'''
options:
  family:
    description:
      - Only entries of this address family. Omit for both.
      - Implied by address filters; a filter address of the other family is an error.
    type: str
    choices: [ipv4, ipv6]
  proto:
    description:
      - Layer-4 protocol of the entry, as a name (C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), C(dccp),
        C(udplite), C(gre), C(igmp)) or a number 0-255. Like C(conntrack -p).
      - Required by the port, ICMP and O(state) filters.
    type: str
  src:
    description:
      - Source address of the original direction, an address or a CIDR (C(192.0.2.0/24),
        C(192.0.2.0/255.255.255.0), C(2001:db8::/32)). Like C(conntrack --orig-src) (with C(--mask-src)).
    type: str
  dst:
    description:
      - Destination address of the original direction, address or CIDR. Like C(conntrack --orig-dst).
    type: str
  reply_src:
    description:
      - Source address of the reply direction, address or CIDR. Like C(conntrack --reply-src).
      - With NAT this is the address that really answered (for DNAT, the backend).
    type: str
  reply_dst:
    description:
      - Destination address of the reply direction, address or CIDR. Like C(conntrack --reply-dst).
    type: str
  sport:
    description:
      - Source port of the original direction, 0-65535. Needs O(proto) C(tcp), C(udp), C(sctp), C(dccp) or C(udplite).
    type: int
  dport:
    description:
      - Destination port of the original direction, 0-65535. Needs a port protocol in O(proto).
    type: int
  reply_sport:
    description:
      - Source port of the reply direction, 0-65535. Needs a port protocol in O(proto).
    type: int
  reply_dport:
    description:
      - Destination port of the reply direction, 0-65535. Needs a port protocol in O(proto).
    type: int
  icmp_type:
    description:
      - ICMP or ICMPv6 type of the original direction, 0-255 (C(8) is echo request). Needs O(proto) C(icmp) or C(icmpv6).
    type: int
  icmp_code:
    description:
      - ICMP or ICMPv6 code, 0-255. Needs O(proto) C(icmp) or C(icmpv6).
    type: int
  icmp_id:
    description:
      - ICMP or ICMPv6 echo identifier, 0-65535. Needs O(proto) C(icmp) or C(icmpv6).
    type: int
  mark:
    description:
      - Connection mark, an integer or a string in decimal or C(0x) hex, 0-4294967295.
      - Entries match when C(entry mark & mark_mask == mark & mark_mask). Note that C(mark=0) is a real
        filter (entries without a mark), not "no filter".
    type: raw
  mark_mask:
    description:
      - Mask applied to the entry's mark and to O(mark) before comparing. Default C(0xffffffff). Needs O(mark).
    type: raw
  zone:
    description:
      - Conntrack zone, 0-65535. Entries outside zones are in zone 0.
    type: int
  state:
    description:
      - Connection states to match (any of them), such as C(ESTABLISHED), C(SYN_SENT), C(SYN_RECV), C(TIME_WAIT)
        for TCP. SCTP and DCCP states are accepted too. Needs a stateful O(proto) when O(proto) is given.
    type: list
    elements: str
  status:
    description:
      - Status flags the entry must all have, such as C(ASSURED), C(SEEN_REPLY), C(CONFIRMED), C(SRC_NAT),
        C(DST_NAT), C(FIXED_TIMEOUT), C(OFFLOAD). C(UNREPLIED) matches entries without C(SEEN_REPLY),
        as C(conntrack -L) shows them.
    type: list
    elements: str
notes:
  - Family, mark and mask, zone, status, IPv4 addresses of either direction, TCP/UDP ports of either direction
    and ICMP fields are filtered by the kernel (Linux 5.8+); CIDR prefixes, IPv6 addresses (the kernel's IPv6
    tuple match is inverted on Linux 6.18), states and the ports of other protocols are filtered in Python
    while the table streams. Every condition is checked either way.
'''
