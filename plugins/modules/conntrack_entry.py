#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_entry
short_description: Create, update or delete one connection-tracking entry
version_added: 0.1.0
description:
  - The idempotent form of C(conntrack -I), C(-U), C(-D) and C(-G) for one entry.
  - O(state=present) creates the entry when it does not exist and changes what differs when it does (mark,
    labels, status flags, TCP state, and the timeout as O(timeout_policy) says); O(state=absent) deletes it
    when it exists.
  - The entry is identified by its original tuple (O(src), O(dst), ports or ICMP fields) and O(zone), or by its
    reply tuple (O(reply_src), O(reply_dst), O(reply_sport), O(reply_dport)) when no original address is given,
    as C(conntrack -I -r -q) allows.
  - Every option is checked before the kernel is touched; the kernel's refusals come back as plain messages.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
  - netfilter.conntrack.namespace
attributes:
  check_mode:
    support: full
    details: Reads the entry and reports what would be created, changed or deleted, without writing.
  diff_mode:
    support: full
    details: Before and after, as C(key value) lines (the timeout only when it changes).
options:
  state:
    description:
      - C(present) creates or updates the entry, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  family:
    description:
      - Address family. Implied by the addresses (and by O(proto=icmp)/C(icmpv6)); an address of the other family
        is an error.
    type: str
    choices: [ipv4, ipv6]
  proto:
    description:
      - Layer-4 protocol, a name (C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), C(dccp), C(udplite)) or a number.
    type: str
    required: true
  src:
    description: Source address of the original direction (a single address). Like C(conntrack --orig-src).
    type: str
  dst:
    description: Destination address of the original direction. Like C(conntrack --orig-dst).
    type: str
  sport:
    description: Source port of the original direction, for TCP, UDP, SCTP, DCCP and UDPlite.
    type: int
  dport:
    description: Destination port of the original direction.
    type: int
  reply_src:
    description:
      - Source address of the reply direction. By default the reply tuple is the inverse of the original one.
      - Without O(src)/O(dst), the reply tuple names the entry and the original tuple is its inverse.
      - A reply tuple that is not the inverse describes a translated connection (the answer comes from another
        address); O(nat_src)/O(nat_dst) say the same in NAT terms.
    type: str
  reply_dst:
    description: Destination address of the reply direction.
    type: str
  reply_sport:
    description: Source port of the reply direction.
    type: int
  reply_dport:
    description: Destination port of the reply direction.
    type: int
  icmp_type:
    description: ICMP or ICMPv6 type (C(8) echo request, C(128) ICMPv6 echo request). Part of an ICMP entry's identity.
    type: int
  icmp_code:
    description: ICMP or ICMPv6 code.
    type: int
  icmp_id:
    description: ICMP or ICMPv6 echo identifier.
    type: int
  zone:
    description:
      - Conntrack zone, 0-65535. The same tuple in two zones are two entries.
    type: int
    default: 0
  timeout:
    description:
      - Seconds the entry lives without traffic. Required to create an entry.
      - For an existing entry see O(timeout_policy).
    type: int
  timeout_policy:
    description:
      - Timeouts count down, so an existing entry never has "the same" timeout twice.
      - C(on_create) sets O(timeout) only when the entry is created; an existing entry keeps counting down, and a
        second run changes nothing.
      - C(refresh_below) also re-arms an existing entry to O(timeout) when fewer than O(timeout_min) seconds remain,
        so a periodic run keeps the entry alive; a run right after another changes nothing.
    type: str
    choices: [on_create, refresh_below]
    default: on_create
  timeout_min:
    description:
      - With O(timeout_policy=refresh_below), the remaining time below which the timeout is re-armed.
        Default half of O(timeout).
    type: int
  tcp_state:
    description:
      - Connection state, required to create a TCP, SCTP or DCCP entry (C(ESTABLISHED), C(SYN_SENT), C(TIME_WAIT)...
        for TCP). Changed on an existing entry when it differs.
    type: str
  status:
    description:
      - Status flags the entry must have, such as C(SEEN_REPLY), C(ASSURED), C(FIXED_TIMEOUT).
      - C(CONFIRMED) is always added (the kernel creates confirmed entries only).
      - On an existing entry missing flags are added; flags are never removed (the kernel does not let
        C(SEEN_REPLY) and C(ASSURED) be cleared). C(SRC_NAT), C(DST_NAT) and C(SEQ_ADJUST) can only be given
        at creation.
    type: list
    elements: str
  mark:
    description:
      - Connection mark, an integer or a decimal/C(0x) hex string, 0-4294967295.
      - With O(mark_mask), only the bits of the mask are set; the others keep their value.
    type: raw
  mark_mask:
    description:
      - The bits of the mark this task owns (C(new = old & ~mask | mark & mask)). Default C(0xffffffff).
    type: raw
  labels:
    description:
      - Connection labels, as bit numbers 0-127 or names from C(/etc/xtables/connlabel.conf).
      - The kernel keeps labels only when something in the namespace uses them (an nftables C(ct label) or
        iptables C(connlabel) rule).
    type: list
    elements: raw
  labels_mode:
    description:
      - C(add) sets the listed labels and keeps the others, C(remove) clears the listed labels, C(exact) makes
        the listed labels the only ones.
    type: str
    choices: [add, remove, exact]
    default: add
  nat_src:
    description:
      - Source NAT of a new entry (the original source is rewritten to this address and port), like
        C(conntrack -I --src-nat). Needs NAT support in the kernel.
    type: dict
    suboptions:
      address:
        description: The translated source address.
        type: str
        required: true
      port:
        description: The translated source port.
        type: int
  nat_dst:
    description:
      - Destination NAT of a new entry (the original destination is rewritten to this address and port), like
        C(conntrack -I --dst-nat).
    type: dict
    suboptions:
      address:
        description: The translated destination address.
        type: str
        required: true
      port:
        description: The translated destination port.
        type: int
notes:
  - Needs CAP_NET_ADMIN (root).
  - The tuples of an existing entry cannot be changed; delete the entry and create it again.
seealso:
  - module: netfilter.conntrack.conntrack_info
  - module: netfilter.conntrack.conntrack_flush
'''

EXAMPLES = r'''
- name: An established TCP entry for a pinned flow (created once, then left alone)
  netfilter.conntrack.conntrack_entry:
    proto: tcp
    src: 192.0.2.10
    dst: 198.51.100.20
    sport: 40000
    dport: 443
    tcp_state: ESTABLISHED
    status: [SEEN_REPLY, ASSURED]
    timeout: 3600

- name: Mark an existing entry (only the low byte of the mark is ours)
  netfilter.conntrack.conntrack_entry:
    proto: udp
    src: 192.0.2.10
    dst: 192.0.2.53
    sport: 5353
    dport: 53
    mark: "0x2a"
    mark_mask: "0xff"

- name: Keep an entry alive from a periodic job (re-armed when less than 10 minutes remain)
  netfilter.conntrack.conntrack_entry:
    proto: udp
    src: 2001:db8::10
    dst: 2001:db8::53
    sport: 5353
    dport: 53
    timeout: 1800
    timeout_policy: refresh_below
    timeout_min: 600

- name: Delete the entry named by its reply tuple
  netfilter.conntrack.conntrack_entry:
    state: absent
    proto: tcp
    reply_src: 198.51.100.20
    reply_dst: 192.0.2.10
    reply_sport: 443
    reply_dport: 40000
'''

RETURN = r'''
entry:
  description:
    - The entry after the task, as M(netfilter.conntrack.conntrack_info) shows it (in check mode, as it would be).
      Null when it does not exist.
  returned: success
  type: dict
  sample: {family: ipv4, proto: tcp, protonum: 6, src: 192.0.2.10, dst: 198.51.100.20, sport: 40000, dport: 443,
           reply_src: 198.51.100.20, reply_dst: 192.0.2.10, reply_sport: 443, reply_dport: 40000,
           state: ESTABLISHED, status: [SEEN_REPLY, ASSURED, CONFIRMED], mark: 0, zone: 0, timeout: 3600,
           id: 2684354560, use: 1}
action:
  description: What was done (or would be in check mode), C(created), C(updated), C(deleted) or C(none).
  returned: success
  type: str
  sample: created
changes:
  description: The attributes an update changed (C(mark), C(labels), C(status), C(tcp_state), C(timeout)).
  returned: when RV(action=updated)
  type: list
  elements: str
  sample: [mark]
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._entry import ensure
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import ENTRY_ARGSPEC, EntrySpec
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run


def main():
    argument_spec = dict(ENTRY_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = new_module(argument_spec, supports_check_mode=True)
    run(module, lambda params, check_mode, spec: ensure(spec, check_mode=check_mode), validate=EntrySpec.from_params)


if __name__ == '__main__':
    main()
