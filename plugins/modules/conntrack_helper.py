#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_helper
short_description: Attach a kernel conntrack helper (ftp, tftp, sip, ...) to traffic
version_added: 0.1.0
description:
  - Since Linux 6.0 helpers are never assigned automatically; protocols that open related connections (FTP data,
    TFTP transfers, SIP media, ...) need a helper attached to their control traffic explicitly.
  - Renders an nft C(ct helper) object and the rules that assign it to inbound and locally generated traffic in
    the one nftables table this collection owns, C(inet netfilter_conntrack), applied in one atomic transaction.
    No other table is read for writing, flushed or reordered; NOTRACK rules of
    M(netfilter.conntrack.conntrack_notrack) in the same table are kept.
  - Reports the helpers the kernel has and whether it still assigns helpers automatically.
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
  helper:
    description:
      - The kernel helper. C(h323) means C(h323-q931) (TCP 1720); C(h323-ras) is its UDP 1719 part.
    type: str
    required: true
    choices: [ftp, tftp, sip, irc, h323, h323-q931, h323-ras, pptp, amanda, sane, snmp, netbios-ns]
  proto:
    description:
      - The control protocol. Defaults to the helper's (C(tcp) for ftp, C(udp) for tftp, ...); C(sip) takes either.
    type: str
    choices: [tcp, udp]
  ports:
    description: Control port(s), a list or a range C(N-M). Defaults to the helper's well-known port.
    type: raw
  family:
    description: C(ipv4), C(ipv6) or C(both).
    type: str
    choices: [ipv4, ipv6, both]
    default: both
  src:
    description: Only traffic from this address or CIDR.
    type: str
  dst:
    description: Only traffic to this address or CIDR.
    type: str
  state:
    description: Whether the helper assignment should exist.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - nft (the nftables package) on the host
seealso:
  - module: netfilter.conntrack.conntrack_notrack
  - module: netfilter.conntrack.conntrack_info
'''

EXAMPLES = r'''
- name: Passive FTP through this host's firewall
  netfilter.conntrack.conntrack_helper:
    helper: ftp

- name: TFTP on a non-standard port, IPv4 only
  netfilter.conntrack.conntrack_helper:
    helper: tftp
    ports: 6969
    family: ipv4

- name: Check it works - expectations appear once a client asks for a transfer
  netfilter.conntrack.conntrack_info:
    expectations: true

- name: Detach the FTP helper
  netfilter.conntrack.conntrack_helper:
    helper: ftp
    state: absent
'''

RETURN = r'''
table:
  description: The table the module manages.
  returned: always
  type: str
  sample: inet netfilter_conntrack
helper:
  description: The normalised helper assignment, with its C(id) and the nft C(object) name.
  returned: always
  type: dict
  sample: {helper: ftp, proto: tcp, dport: ["21"], family: both, id: 6f0d2a9b1c3e, object: nc_6f0d2a9b1c3e}
kernel_helpers:
  description: Helpers this kernel has (built in or loaded).
  returned: always
  type: list
  elements: str
  sample: [amanda, ftp, h323-q931, h323-ras, irc, netbios-ns, sane, sip, snmp, tftp]
helper_assignment:
  description: C(explicit) (rules only, Linux 6.0+) or C(automatic) (C(nf_conntrack_helper=1), not recommended).
  returned: always
  type: str
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

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._nft import PERSIST_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._nftrules import HelperPlan, plan_runner
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run


def main():
    argument_spec = dict(
        helper=dict(type='str', required=True, choices=['ftp', 'tftp', 'sip', 'irc', 'h323', 'h323-q931', 'h323-ras',
                                                        'pptp', 'amanda', 'sane', 'snmp', 'netbios-ns']),
        proto=dict(type='str', choices=['tcp', 'udp']),
        ports=dict(type='raw'),
        family=dict(type='str', default='both', choices=['ipv4', 'ipv6', 'both']),
        src=dict(type='str'),
        dst=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'absent']),
    )
    argument_spec.update(PERSIST_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = new_module(argument_spec, supports_check_mode=True)
    run(module, plan_runner(HelperPlan))


if __name__ == '__main__':
    main()
