#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_flush
short_description: Delete the connection-tracking entries or expectations that match a filter
version_added: 0.1.0
description:
  - The safe form of C(conntrack -D) and C(conntrack -F), and of C(conntrack -F expect).
  - Deletes every entry matching the filter options (the same options, validation and matching as
    M(netfilter.conntrack.conntrack_info)), and nothing else.
  - With no filter option nothing is deleted unless O(all=true) is given.
  - Filter options take lists (any of) and O(not) takes the entries to keep, so "delete the entries of this
    service whose backend is not one of these" is one idempotent task (see the examples and docs/reconcile.md).
  - O(max_delete) is a blast-radius guard for fleet runs; the matching entries are counted first and,
    if there are more, the task fails and deletes nothing.
  - Filters the kernel can apply by itself (family, mark and mask, zone, status flags) become one kernel-side flush;
    any other filter deletes the matching entries of a kernel-filtered dump with batched delete requests
    (sent while the dump runs, no acknowledgement per entry). An entry that disappears on its own in the
    meantime is not an error.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
  - netfilter.conntrack.namespace
  - netfilter.conntrack.filter
attributes:
  check_mode:
    support: full
    details: Counts the entries that would be deleted (RV(deleted), RV(sample)) and deletes nothing.
  diff_mode:
    support: full
    details: The diff shows how many entries go, and the sample.
options:
  table:
    description:
      - C(conntrack) deletes connection-tracking entries; C(expect) deletes expectations (related connections
        a helper such as FTP or SIP waits for).
      - On the expect table the filter options O(family), O(proto), O(src), O(dst), O(sport), O(dport) and
        O(zone) select by the master connection (the control connection that created the expectation);
        O(helper) selects by helper name.
    type: str
    choices: [conntrack, expect]
    default: conntrack
  all:
    description:
      - Delete every entry of the table (C(conntrack -F)). Required when no filter option is given, and
        refused together with filter options, so a forgotten or misspelt variable cannot turn a filtered
        delete into a full flush.
      - Also required when O(not) is the only condition (everything but what it names is deleted).
    type: bool
    default: false
  max_delete:
    description:
      - Fail, deleting nothing, when more than this many entries match. The count is taken right before
        the delete.
      - Use it on fleet runs, where a filter that matches far more than expected should stop the play
        rather than drop every connection of a host.
    type: int
  sample_size:
    description:
      - How many of the deleted entries to return in RV(sample).
    type: int
    default: 10
  helper:
    description:
      - With O(table=expect), delete only the expectations of this helper (C(ftp), C(sip), C(tftp), ...).
    type: str
  break_synproxy_connections:
    description:
      - Also delete the entries of traffic that the collection's nft table puts behind SYNPROXY
        (M(netfilter.conntrack.conntrack_notrack) rules with C(synproxy), as the C(netfilter.conntrack.synflood_guard)
        role writes them).
      - SYNPROXY needs C(nf_conntrack_tcp_loose=0), so the kernel never re-creates such an entry from a mid-stream
        packet; and the sequence adjustment SYNPROXY keeps in the entry is gone with it. Deleting one breaks its
        connection for good. Without this option those entries are kept, whatever the filter (O(all=true)
        included), and RV(protected_kept) says how many.
      - Entries of other traffic are not affected by this option.
    type: bool
    default: false
  method:
    description:
      - C(auto) uses a kernel-side flush when the filter is one the kernel applies exactly (family, mark, zone,
        status; Linux 6.8 or later) and batched deletes otherwise.
      - C(batched_delete) always dumps the matching entries and deletes them one by one (in batches); each entry
        is checked against the whole filter in Python before its delete is sent.
    type: str
    choices: [auto, batched_delete]
    default: auto
notes:
  - Needs CAP_NET_ADMIN (root).
  - RV(deleted) counts the entries deleted by this task. With a kernel-side flush it is the number of entries
    that matched right before the flush (the kernel does not report a count).
  - A delete request carries the entry's id, so an entry replaced by a new one with the same tuple after it
    was listed is not deleted.
  - With C(nf_conntrack_tcp_loose=0) (as SYNPROXY hardening sets it) the kernel does not pick up a TCP connection
    from a mid-stream packet. After a flush, an established connection has no entry any more and its packets are
    classified C(invalid). The collection's own rules drop invalid packets only on SYNPROXY-protected ports, so
    other connections keep working (untracked by state from then on); a host firewall that drops C(ct state
    invalid) for all traffic would cut them. See the synflood_guard role's documentation.
seealso:
  - module: netfilter.conntrack.conntrack_info
  - module: netfilter.conntrack.conntrack_entry
'''

EXAMPLES = r'''
- name: Reconcile a UDP service, kube-proxy style - delete the entries whose backend is gone
  # one task, idempotent: the second run finds nothing to delete (changed false); an empty
  # live_backends list deletes every entry of the service
  netfilter.conntrack.conntrack_flush:
    proto: udp
    dst: 203.0.113.10
    dport: 53
    not:
      reply_src: "{{ live_backends }}"
    max_delete: 5000

- name: Several services at once, IPv4 and IPv6 backends mixed (any of each list)
  netfilter.conntrack.conntrack_flush:
    proto: udp
    dst: [203.0.113.10, 203.0.113.11, "2001:db8::53"]
    dport: [53, 5353]
    not:
      reply_src: [198.51.100.21, 198.51.100.22, "2001:db8:1::21"]

- name: Entries DNATed to a backend that was removed (conntrack -D --dst-nat 198.51.100.7)
  netfilter.conntrack.conntrack_flush:
    dst_nat: 198.51.100.7

- name: Drop the UDP entries still pinned to the old DNS backend
  netfilter.conntrack.conntrack_flush:
    proto: udp
    dport: 53
    reply_src: 198.51.100.7

- name: Delete the entries of one client network, at most 5000 of them
  netfilter.conntrack.conntrack_flush:
    src: 203.0.113.0/24
    max_delete: 5000

- name: How many entries marked 0x10 (low byte) would go? (nothing is deleted)
  netfilter.conntrack.conntrack_flush:
    mark: "0x10"
    mark_mask: "0xff"
  check_mode: true
  register: would

- name: Flush the FTP helper's expectations
  netfilter.conntrack.conntrack_flush:
    table: expect
    helper: ftp

- name: Everything but the entries of the management network (all is needed with not alone)
  netfilter.conntrack.conntrack_flush:
    all: true
    not:
      src: [192.0.2.0/24, "2001:db8::/64"]
  check_mode: true

- name: Flush the whole table of a container's namespace (explicitly)
  netfilter.conntrack.conntrack_flush:
    namespace: /proc/4242/ns/net
    all: true

- name: Flush everything on a SYNPROXY-hardened host, its protected connections too (they break)
  netfilter.conntrack.conntrack_flush:
    all: true
    break_synproxy_connections: true
'''

RETURN = r'''
deleted:
  description: How many entries (or expectations) were deleted; in check mode, how many would be.
  returned: success
  type: int
  sample: 1200
sample:
  description:
    - Up to O(sample_size) of the deleted entries, as M(netfilter.conntrack.conntrack_info) shows them
      (expectations as its C(expectations) list does).
  returned: success
  type: list
  elements: dict
  sample:
    - {family: ipv4, proto: udp, protonum: 17, src: 192.0.2.10, dst: 192.0.2.53, sport: 40000, dport: 53,
       reply_src: 198.51.100.7, reply_dst: 192.0.2.10, reply_sport: 53, reply_dport: 40000,
       status: [SEEN_REPLY, CONFIRMED], mark: 0, zone: 0, timeout: 27, id: 1234567, use: 1}
method:
  description: C(kernel_flush) (one kernel-side flush by filter) or C(batched_delete) (per-entry deletes).
  returned: success
  type: str
  sample: kernel_flush
table:
  description: The table that was flushed, C(conntrack) or C(expect).
  returned: success
  type: str
  sample: conntrack
filter:
  description: The filter options that were given.
  returned: success
  type: dict
  sample: {proto: udp, dport: 53, not: {reply_src: [198.51.100.21]}}
protected:
  description:
    - The traffic the collection's nft table puts behind SYNPROXY, whose entries are kept unless
      O(break_synproxy_connections=true).
  returned: when the table has SYNPROXY rules
  type: list
  elements: str
  sample: [ipv4/ipv6 tcp dport 443, 8443]
protected_kept:
  description: How many matching entries of SYNPROXY-protected traffic were kept (not deleted).
  returned: when the table has SYNPROXY rules and O(break_synproxy_connections=false)
  type: int
  sample: 12
msg:
  description: Why entries were kept, when some were.
  returned: when RV(protected_kept) is not 0
  type: str
  sample: "kept 12 entries of SYNPROXY-protected traffic (ipv4/ipv6 tcp dport 443): ..."
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctflush import FLUSH_ARGSPEC, flush, validate_flush
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run


def main():
    argument_spec = dict(FLUSH_ARGSPEC)
    argument_spec.update(FILTER_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = new_module(argument_spec, supports_check_mode=True)
    run(module, flush, validate=validate_flush)


if __name__ == '__main__':
    main()
