#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_notrack
short_description: Exempt traffic from connection tracking (NOTRACK), optionally behind SYNPROXY
version_added: 0.1.0
description:
  - Manages NOTRACK rules in the one nftables table this collection owns, C(inet netfilter_conntrack).
    Traffic that needs no state (DNS to a resolver, a flooded service port) then never takes a conntrack entry.
  - The table is rendered whole from the desired state and applied in one atomic C(nft -f) transaction.
    No other table (firewalld's, docker's, your own) is read for writing, flushed or reordered.
  - Each rule is identified by a hash of its normalised options, kept in the rule's comment, so a second run with
    the same input changes nothing; rules of ours not in the task are left alone unless O(exclusive=true).
  - A TCP rule can put its ports behind SYNPROXY (O(rules[].synproxy)). SYNs are then not tracked and are answered
    with SYN cookies by the kernel; only clients that complete the handshake get a conntrack entry. This is what
    the C(netfilter.conntrack.synflood_guard) role uses.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
  - netfilter.conntrack.namespace
  - netfilter.conntrack.nft_table
attributes:
  check_mode:
    support: full
    details: Computes the table and checks it with C(nft -c) without changing anything.
  diff_mode:
    support: full
    details: The nft text of the table before and after.
options:
  rules:
    description:
      - The NOTRACK rules, each with O(rules[].state).
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: Protocol (C(tcp), C(udp), C(sctp), C(dccp), C(udplite), C(icmp), C(icmpv6), C(gre), C(esp), C(ah)).
        type: str
      dport:
        description: Destination port(s) 0-65535, a list, or a range C(N-M). Needs a port protocol.
        type: raw
      sport:
        description: Source port(s) 0-65535, a list, or a range C(N-M). Needs a port protocol.
        type: raw
      src:
        description: Source address or CIDR (sets the family).
        type: str
      dst:
        description: Destination address or CIDR (sets the family).
        type: str
      iif:
        description:
          - Input interface (inbound rules only), 1-15 bytes, with no whitespace, control characters, quotes,
            backslashes, slashes or colons; a trailing C(*) matches a prefix (C(veth*)).
        type: str
      oif:
        description: Output interface (O(rules[].direction=output) only), with the same rules as O(rules[].iif).
        type: str
      direction:
        description: C(inbound) (prerouting), C(output) (locally generated) or C(both).
        type: str
        choices: [inbound, output, both]
        default: inbound
      family:
        description: C(ipv4), C(ipv6) or C(both) (default, unless an address sets it).
        type: str
        choices: [ipv4, ipv6, both]
      state:
        description: Whether the rule should be in the table.
        type: str
        choices: [present, absent]
        default: present
      all:
        description:
          - A rule without any match (O(rules[].proto), ports, addresses, interfaces) would exempt all traffic of its
            family and direction from tracking. Such a rule is refused unless it says C(all=true), so an empty or
            misspelt rule cannot silently turn tracking off for the whole host. Refused together with matches.
        type: bool
        default: false
      synproxy:
        description:
          - TCP, inbound only. Notrack only the SYNs of these ports and answer them with SYNPROXY in the input hook
            (before a host firewall at priority C(filter)); a connection gets an entry only once the client has
            returned a valid cookie. Needs C(net.netfilter.nf_conntrack_tcp_loose=0) and
            C(net.ipv4.tcp_syncookies=1) (see M(netfilter.conntrack.conntrack_sysctl)).
        type: bool
        default: false
      synproxy_options:
        description: The options SYNPROXY announces in its SYN-ACK.
        type: dict
        suboptions:
          mss:
            description: Maximum segment size, 536-65535 (default 1460).
            type: int
          wscale:
            description: Window scale shift, 0-14 (default 7).
            type: int
          timestamp:
            description:
              - Announce TCP timestamps (default false, because on Linux 6.15 and later the timestamp option breaks
                handshakes with local services).
            type: bool
          sack_perm:
            description: Announce selective acknowledgements (default true).
            type: bool
      connlimit:
        description:
          - Reject new connections from a source that already has this many tracked connections to these ports
            (C(ct count) in a dynamic set), 1-4294967295. Only tracked connections count, so use it with
            O(rules[].synproxy).
        type: int
  exclusive:
    description:
      - Make the present rules of this task the whole set of NOTRACK rules in our table (every other NOTRACK rule
        of ours is removed). Rules of other kinds (helpers) stay.
    type: bool
    default: false
  drop_invalid:
    description:
      - Add (true) or remove (false) the C(ct state invalid drop) rules in our input chain. Omit to leave it as is.
      - The drop is scoped to the traffic of the table's SYNPROXY rules (one drop rule per SYNPROXY rule, with that
        rule's matches), where SYNPROXY needs it; traffic on any other port is never dropped by a rule of ours, so a
        flushed or expired entry costs an unprotected connection nothing. Without SYNPROXY rules it adds nothing
        (with a warning).
      - Tables written by earlier releases had one unscoped drop; the next run replaces it.
    type: bool
requirements:
  - nft (the nftables package) on the host
notes:
  - Untracked traffic bypasses every C(ct state) rule of the host firewall; accept C(ct state untracked) for it
    where the firewall's policy is drop.
seealso:
  - module: netfilter.conntrack.conntrack_sysctl
  - module: netfilter.conntrack.conntrack_info
'''

EXAMPLES = r'''
- name: Do not track DNS to the local resolver (both directions of the exchange)
  netfilter.conntrack.conntrack_notrack:
    rules:
      - proto: udp
        dport: 53
        direction: inbound
      - proto: udp
        sport: 53
        direction: output

- name: Put HTTPS behind SYNPROXY, limit 100 connections per source, drop invalid packets
  netfilter.conntrack.conntrack_notrack:
    rules:
      - proto: tcp
        dport: [80, 443]
        synproxy: true
        connlimit: 100
    drop_invalid: true
    persist: true

- name: Remove one rule, keep the others
  netfilter.conntrack.conntrack_notrack:
    rules:
      - proto: udp
        dport: 53
        state: absent

- name: Remove every NOTRACK rule of ours
  netfilter.conntrack.conntrack_notrack:
    rules: []
    exclusive: true
    drop_invalid: false
'''

RETURN = r'''
table:
  description: The table the module manages.
  returned: always
  type: str
  sample: inet netfilter_conntrack
rules:
  description: The present rules of the task, normalised, each with its C(id) (the hash in the rule comments).
  returned: always
  type: list
  elements: dict
  sample: [{proto: tcp, dport: ["443"], family: both, direction: inbound, id: 3f9a0c1d2e4b}]
kept:
  description: Ids of rules of ours that were already in the table and stay.
  returned: always
  type: list
  elements: str
removed:
  description: Ids of rules of ours that the task removes.
  returned: always
  type: list
  elements: str
drop_invalid:
  description: Whether scoped invalid-drop rules (for the SYNPROXY rules) are in the table after the task.
  returned: always
  type: bool
in_force:
  description:
    - Whether the table read back after the change holds exactly the rules of the task (and their scoped drops);
      V(null) in check mode.
  returned: always
  type: bool
  sample: true
persisted:
  description: What O(persist) wrote or removed.
  returned: when O(persist=true)
  type: dict
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._nftrules import NOTRACK_ARGSPEC, NotrackPlan, plan_runner
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run


def main():
    module = new_module(NOTRACK_ARGSPEC, supports_check_mode=True)
    run(module, plan_runner(NotrackPlan))


if __name__ == '__main__':
    main()
