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
      - Implied by address filters of one family; a filter address of the other family is an error.
    type: str
    choices: [ipv4, ipv6]
  proto:
    description:
      - Layer-4 protocol of the entry, as a name (C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), C(dccp), C(udplite),
        C(gre), C(igmp)) or a number 0-255. Like C(conntrack -p).
      - Required by the port, ICMP and O(state) filters.
    type: str
  src:
    description:
      - Source address of the original direction, an address or a CIDR (C(192.0.2.0/24), C(192.0.2.0/255.255.255.0),
        C(2001:db8::/32)). Like C(conntrack --orig-src) (with C(--mask-src)).
      - A list (or a comma-separated string) matches any of its items; hosts, CIDRs and both families may be mixed.
    type: raw
  dst:
    description:
      - Destination address of the original direction, address, CIDR or a list of them (any of). Like C(conntrack
        --orig-dst).
    type: raw
  reply_src:
    description:
      - Source address of the reply direction, address, CIDR or a list of them (any of). Like C(conntrack
        --reply-src).
      - With NAT this is the address that really answered (for DNAT, the backend); O(not.reply_src) with the live
        backends selects the stale entries.
    type: raw
  reply_dst:
    description:
      - Destination address of the reply direction, address, CIDR or a list of them (any of). Like C(conntrack
        --reply-dst).
    type: raw
  sport:
    description:
      - Source port of the original direction, 0-65535, a range C(N-M), or a list of them (any of). Needs O(proto)
        C(tcp), C(udp), C(sctp), C(dccp) or C(udplite).
    type: raw
  dport:
    description:
      - Destination port of the original direction, 0-65535, a range C(N-M), or a list of them (any of), such as
        C([53, 5353]). Needs a port protocol in O(proto).
    type: raw
  reply_sport:
    description:
      - Source port of the reply direction, a port, a range or a list (any of). Needs a port protocol in O(proto).
    type: raw
  reply_dport:
    description:
      - Destination port of the reply direction, a port, a range or a list (any of). Needs a port protocol in
        O(proto).
    type: raw
  icmp_type:
    description:
      - ICMP or ICMPv6 type of the original direction, 0-255 (C(8) is echo request), or a list (any of). Needs
        O(proto) C(icmp) or C(icmpv6).
    type: raw
  icmp_code:
    description:
      - ICMP or ICMPv6 code, 0-255, or a list (any of). Needs O(proto) C(icmp) or C(icmpv6).
    type: raw
  icmp_id:
    description:
      - ICMP or ICMPv6 echo identifier, 0-65535, or a list (any of). Needs O(proto) C(icmp) or C(icmpv6).
    type: raw
  mark:
    description:
      - Connection mark, an integer or a string in decimal or C(0x) hex, 0-4294967295, or a list of them (any of).
      - Entries match when C(entry mark & mark_mask == mark & mark_mask). Note that C(mark=0) is a real filter
        (entries without a mark), not "no filter".
    type: raw
  mark_mask:
    description:
      - Mask applied to the entry's mark and to O(mark) before comparing. Default C(0xffffffff). Needs O(mark).
    type: raw
  zone:
    description:
      - Conntrack zone id, 0-65535, or a list (any of). Entries outside zones are in zone 0.
      - The zone id whatever its direction, as the kernel's zone filter compares it (C(conntrack -w) of
        conntrack-tools 1.4.7 compares only zones of both directions); see O(orig_zone) and O(reply_zone).
    type: raw
  orig_zone:
    description:
      - The zone the original direction is in, 0-65535, or a list (any of); a zone of both directions, or one set
        for the original direction only (C(conntrack --orig-zone)). Checked on the host.
    type: raw
  reply_zone:
    description:
      - The zone the reply direction is in, 0-65535, or a list (any of). Like C(conntrack --reply-zone). Checked on
        the host.
    type: raw
  state:
    description:
      - Connection states to match (any of them), such as C(ESTABLISHED), C(SYN_SENT), C(SYN_RECV), C(TIME_WAIT) for
        TCP (C(LISTEN) is the kernel's C(SYN_SENT2)). SCTP and DCCP states are accepted too. Needs a stateful
        O(proto) when O(proto) is given.
    type: list
    elements: str
  status:
    description:
      - Status flags the entry must all have, such as C(ASSURED), C(SEEN_REPLY), C(CONFIRMED), C(SRC_NAT),
        C(DST_NAT), C(FIXED_TIMEOUT), C(OFFLOAD). C(UNREPLIED) matches entries without C(SEEN_REPLY), as C(conntrack
        -L) shows them.
    type: list
    elements: str
  src_nat:
    description:
      - Entries whose source was translated (SNAT, masquerade), like C(conntrack --src-nat); C(true) for any, or the
        address it was translated to, as C(IP), C(IP:port), C([IPv6]:port) or a CIDR, or a list of them (any of).
      - Translated means the kernel set C(SRC_NAT_DONE) and the reply destination (and, with a port, the reply
        destination port) differs from the original source; ICMP entries count by address only.
    type: raw
  dst_nat:
    description:
      - Entries whose destination was translated (DNAT, a service to its backend), like C(conntrack --dst-nat);
        C(true) for any, or the address it was translated to (C(IP), C(IP:port), C([IPv6]:port), a CIDR), or a list
        (any of).
    type: raw
  any_nat:
    description:
      - Entries translated on either side to this address (C(IP), C(IP:port), C([IPv6]:port), a CIDR, a list), or at
        all with C(true). Like C(conntrack --any-nat). Cannot be combined with O(src_nat) or O(dst_nat).
    type: raw
  label:
    description:
      - Entries carrying all these connection labels (C(conntrack -l)); bit numbers 0-127, or names from
        C(/etc/xtables/connlabel.conf) (else C(/etc/connlabel.conf)), the file C(conntrack) and nft use. Checked on
        the host.
    type: list
    elements: raw
  not:
    description:
      - Take the entries matching these conditions out of the selection ("all but these"). The same options as
        the filter itself, each a value or a list (any of); an entry is excluded when it matches all of them.
      - The stale-endpoint reconcile is one task; O(proto), O(dst) and O(dport) name the service,
        C(not.reply_src) lists the live backends, and every other entry of the service is deleted.
      - An option given as an empty list (no live backend) makes the exclusion match nothing, so everything
        the filter selects goes. Checked on the host, after the kernel selected by the other options.
      - In conntrack_flush, a flush whose only condition is O(not) needs C(all=true).
    type: dict
    suboptions:
      family:
        description:
          - As O(family), for the entries to keep.
        type: str
        choices: [ipv4, ipv6]
      proto:
        description:
          - As O(proto), for the entries to keep.
        type: str
      src:
        description:
          - As O(src), for the entries to keep.
        type: raw
      dst:
        description:
          - As O(dst), for the entries to keep.
        type: raw
      reply_src:
        description:
          - As O(reply_src), for the entries to keep.
        type: raw
      reply_dst:
        description:
          - As O(reply_dst), for the entries to keep.
        type: raw
      sport:
        description:
          - As O(sport), for the entries to keep.
        type: raw
      dport:
        description:
          - As O(dport), for the entries to keep.
        type: raw
      reply_sport:
        description:
          - As O(reply_sport), for the entries to keep.
        type: raw
      reply_dport:
        description:
          - As O(reply_dport), for the entries to keep.
        type: raw
      icmp_type:
        description:
          - As O(icmp_type), for the entries to keep.
        type: raw
      icmp_code:
        description:
          - As O(icmp_code), for the entries to keep.
        type: raw
      icmp_id:
        description:
          - As O(icmp_id), for the entries to keep.
        type: raw
      mark:
        description:
          - As O(mark), for the entries to keep.
        type: raw
      mark_mask:
        description:
          - As O(mark_mask), for the entries to keep.
        type: raw
      zone:
        description:
          - As O(zone), for the entries to keep.
        type: raw
      orig_zone:
        description:
          - As O(orig_zone), for the entries to keep.
        type: raw
      reply_zone:
        description:
          - As O(reply_zone), for the entries to keep.
        type: raw
      state:
        description:
          - As O(state), for the entries to keep.
        type: list
        elements: str
      status:
        description:
          - As O(status), for the entries to keep.
        type: list
        elements: str
      src_nat:
        description:
          - As O(src_nat), for the entries to keep.
        type: raw
      dst_nat:
        description:
          - As O(dst_nat), for the entries to keep.
        type: raw
      any_nat:
        description:
          - As O(any_nat), for the entries to keep.
        type: raw
      label:
        description:
          - As O(label), for the entries to keep.
        type: list
        elements: raw
notes:
  - Family, mark and mask, zone, status, IPv4 host addresses of either direction, TCP/UDP ports of either direction
    and ICMP fields are filtered by the kernel (Linux 5.8+; status 5.19+, zone 6.8+), one request per combination of
    the listed values (at most 16; longer lists are checked on the host); CIDR prefixes, IPv6 addresses (the
    kernel's IPv6 tuple match is inverted on Linux 6.18), port ranges, states, the ports of other protocols, NAT
    (the kernel selects the C(*_NAT_DONE) status bit), labels, directional zones and O(not) are checked on the host
    while the table streams. Every condition is checked either way.
'''
