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
  - O(max_delete) is a blast-radius guard for fleet runs; the matching entries are counted first and,
    if there are more, the task fails and deletes nothing.
  - Filters the kernel can apply by itself (family, mark and mask, zone, status flags) become one kernel-side flush;
    any other filter deletes the matching entries of a kernel-filtered dump with batched delete requests
    (sent while the dump runs, no acknowledgement per entry). An entry that disappears on its own in the
    meantime is not an error.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.namespace
  - netfilter.conntrack.filter
attributes:
  check_mode:
    support: full
    description: Counts the entries that would be deleted (RV(deleted), RV(sample)) and deletes nothing.
  diff_mode:
    support: full
    description: The diff shows how many entries go, and the sample.
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
seealso:
  - module: netfilter.conntrack.conntrack_info
  - module: netfilter.conntrack.conntrack_entry
'''

EXAMPLES = r'''
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

- name: Flush the whole table of a container's namespace (explicitly)
  netfilter.conntrack.conntrack_flush:
    namespace: /proc/4242/ns/net
    all: true
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
  sample: {proto: udp, dport: 53}
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC, ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctwrite import FLUSH_ARGSPEC, flush, validate_flush
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import enter_namespace


def main():
    argument_spec = dict(FLUSH_ARGSPEC)
    argument_spec.update(FILTER_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    namespace = module.params['namespace']
    try:
        validate_flush(module.params)  # bad input is reported before anything is opened
        enter_namespace(namespace)
        result = flush(module.params, check_mode=module.check_mode)
    except ConntrackError as exc:
        module.fail_json(msg=exc.msg, namespace=namespace, **exc.details)
    what = 'expectations' if result['table'] == 'expect' else 'entries'
    result.update(namespace=namespace, changed=result['deleted'] > 0)
    if module._diff:
        result['diff'] = {'before': '%d matching %s\n' % (result['deleted'], what),
                          'after': '0 matching %s\n' % what}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
