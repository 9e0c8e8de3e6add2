#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_info
short_description: Read the connection-tracking table, its limits, statistics and expectations
version_added: 0.1.0
description:
  - The read side of C(conntrack -L), C(-G), C(-C) and C(-S), and of C(conntrack -L expect), in one task.
  - Always returns the entry count, the limit (C(nf_conntrack_max)), the usage in percent, the hash buckets,
    per-CPU and summed statistics (drops, early drops, insert failures, ...), every
    C(net.netfilter.nf_conntrack_*) value and kernel facts (accounting, timestamps, helper assignment).
  - With O(entries=true) lists the entries that match the filter; with O(summary=true) counts them by family,
    protocol, state and zone and finds the top sources, destinations and destination ports, while the table
    streams (memory stays bounded whatever the table size).
  - With O(query) a JMESPath expression is applied on the host, so a fleet-wide ad-hoc run brings back only
    what was asked.
  - With O(events) watches the table for a bounded time (like C(conntrack -E) and C(conntrack -E expect)) and
    returns per event type the count and rate per second, the breakdowns of O(summary), and a loss account.
  - Never changes anything. Entries are read over ctnetlink with a lean decoder; the kernel filters what it
    can. The netlink codec needs only Python's standard library (no pyroute2 on the host).
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
  - netfilter.conntrack.namespace
  - netfilter.conntrack.filter
attributes:
  check_mode:
    support: full
    details: The module never changes anything; it runs normally in check mode.
  diff_mode:
    support: none
    details: Nothing changes, so there is nothing to diff.
options:
  entries:
    description:
      - List the entries matching the filter options (like C(conntrack -L) with the same filter).
    type: bool
    default: false
  limit:
    description:
      - Return at most this many entries (the count of all matching entries is still returned as RV(matched)).
      - C(0) means no limit. Large tables make large results; prefer O(summary) or O(query) across a fleet.
    type: int
    default: 1000
  summary:
    description:
      - Count the matching entries by family, protocol, TCP state, zone and status, and find the top O(top)
        sources, destinations and destination ports, without keeping the entries.
    type: bool
    default: false
  top:
    description:
      - How many rows the top lists of O(summary) have.
    type: int
    default: 10
  expectations:
    description:
      - List the expect table (C(conntrack -L expect)), the related connections helpers are waiting for.
    type: bool
    default: false
  events:
    description:
      - Listen to the table's events (new, updated and destroyed entries, or expectations) for
        O(events.seconds), in the module's namespace, and return RV(events).
      - The filter options select which events count (the same filter model as listings). A filter on
        O(family) and/or O(proto) is applied in the kernel by a socket filter, so unwanted events never reach
        the host; every other condition is checked on the host.
      - Read-only, so it runs normally in check mode. The guide C(docs/watching.md) says what the rates mean.
    type: dict
    suboptions:
      seconds:
        description:
          - How long to listen, 1 to 3600 seconds. The listen ends on time whatever the traffic.
        type: int
        default: 10
      types:
        description:
          - Which event types to listen to (C(conntrack -E -e NEW,DESTROY)). Each is a kernel multicast group;
            the kernel sends nothing for the others.
        type: list
        elements: str
        choices: [new, update, destroy]
        default: [new, update, destroy]
      table:
        description:
          - V(conntrack) for entries, V(expect) for expectations (C(conntrack -E expect)), the related
            connections helpers such as ftp wait for. The filter options apply to V(conntrack) only.
        type: str
        choices: [conntrack, expect]
        default: conntrack
      sample:
        description:
          - Keep this many decoded events (the first ones, each with an C(event) key) in C(events.sample);
            the rest are only counted. 0 to 10000.
        type: int
        default: 0
      buffer_size:
        description:
          - The event socket's receive buffer in bytes (C(conntrack -E -b)), 65536 to 1073741824. It holds
            the events the module has not read yet; when it is full the kernel drops events (an overrun, counted
            in C(events.overruns)) and the listen goes on.
          - Set with C(SO_RCVBUFFORCE) (beyond C(net.core.rmem_max), as root), else capped by C(rmem_max).
          - The default, 64 MiB, holds about 60,000 queued events, the best part of a second of the highest
            new-flow rates of a small host; the kernel only uses what is queued.
        type: int
      kernel_filter:
        description:
          - Use the kernel socket filter for O(family)/O(proto) filters. V(false) checks every event on the host.
        type: bool
        default: true
  query:
    description:
      - A JMESPath expression applied on the host to the whole result. The module then returns only
        RV(query_result) (plus RV(backend) and RV(namespace)).
      - For example C(summary.top_dports) or C(entries[?state=='SYN_RECV'].src).
    type: str
  backend:
    description:
      - How to read the table. C(auto) and C(netlink) use ctnetlink; C(procfs) reads C(/proc/net/nf_conntrack)
        (which shows only part of the status flags and no labels), for hosts where ctnetlink is not available.
    type: str
    choices: [auto, netlink, procfs]
    default: auto
  as_facts:
    description:
      - Also return the result as C(ansible_facts.conntrack), for later tasks and templates.
    type: bool
    default: false
  table:
    description:
      - Which list of entries O(entries) and O(summary) read. C(conntrack) is the table; C(dying) the entries
        removed from it that still wait for their destroy event, C(unconfirmed) those not yet inserted (like
        C(conntrack -L dying) and C(conntrack -L unconfirmed)). Entries stuck in either list are how leaks are
        diagnosed; on a healthy host both are empty or nearly so.
      - The kernel filters only the main table; on C(dying) and C(unconfirmed) the filter options are checked on
        the host. Needs the netlink backend.
    type: str
    choices: [conntrack, dying, unconfirmed]
    default: conntrack
  saved:
    description:
      - Also return the whole table in its saved form, RV(saved), which
        M(netfilter.conntrack.conntrack_entry) O(netfilter.conntrack.conntrack_entry#module:saved) restores (like
        C(conntrack -L -o save) and C(conntrack -R)).
      - The saved form is the kernel's own netlink message of each entry, less what a restore does not take (ids,
        use counts, counters, timestamps, security contexts), compressed, in base64, after a header line with the
        entry count, the size and a SHA-256 checksum. About 40 characters per entry.
      - Always the whole main table, over netlink; refused with filter options, O(table) other than
        C(conntrack) or O(backend=procfs).
    type: bool
    default: false
requirements:
  - jmespath (for O(query))
notes:
  - Needs CAP_NET_ADMIN (root) to read the table over netlink.
  - Counters (C(packets), C(bytes)) appear when C(net.netfilter.nf_conntrack_acct=1), start timestamps when
    C(net.netfilter.nf_conntrack_timestamp=1).
  - Event counts are exact unless C(events.overruns) is above 0 or C(events.loss.unexplained) is not 0. On Linux
    6.18 the per-CPU C(insert) statistic stays 0 for entries created by packets, so it is no independent count of
    new entries; the table's count before and after is (C(events.loss)).
  - Key=value arguments are split at spaces by Ansible before the module runs; ad hoc, write
    C(events={"seconds":5}) (JSON without spaces) or C(events=seconds=5).
  - With O(entries) or O(summary), a dump of the table is received by a short-lived child process (forked, so
    it runs on another CPU) that also decodes a share of it; where C(fork) is not possible, and for filters
    that need one dump per family, threads receive the dumps instead. The child ends with the dump.
seealso:
  - module: netfilter.conntrack.conntrack_flush
  - module: netfilter.conntrack.conntrack_entry
'''

EXAMPLES = r'''
- name: How full is the table, and is it dropping?
  netfilter.conntrack.conntrack_info:
  register: ct

- name: Fail early when the table is nearly full
  ansible.builtin.assert:
    that: ct.usage_percent < 90
    fail_msg: "conntrack table {{ ct.usage_percent }}% full ({{ ct.count }}/{{ ct.max }}), drops: {{ ct.stats.drop }}"

- name: What fills the table? (counts and top talkers, computed on the host)
  netfilter.conntrack.conntrack_info:
    summary: true
    top: 5

- name: Half-open TCP connections to port 443 (a SYN flood looks like this)
  netfilter.conntrack.conntrack_info:
    entries: true
    proto: tcp
    dport: 443
    state: [SYN_RECV, SYN_SENT]
    limit: 100

- name: UDP entries still pinned to an old NAT target
  netfilter.conntrack.conntrack_info:
    entries: true
    proto: udp
    reply_src: 198.51.100.7

- name: Entries of a container's namespace, marked 0x10 in the low byte
  netfilter.conntrack.conntrack_info:
    namespace: /proc/4242/ns/net
    entries: true
    mark: "0x10"
    mark_mask: "0xff"

- name: Only the top destination ports, fleet-wide (ad hoc, as a one-liner)
  # ansible all -m netfilter.conntrack.conntrack_info -a 'summary=true query=summary.top_dports'
  netfilter.conntrack.conntrack_info:
    summary: true
    query: summary.top_dports

- name: Watch new and destroyed flows for 10 seconds
  netfilter.conntrack.conntrack_info:
    events:
      seconds: 10
      types: [new, destroy]
  register: churn

- name: New flows per second, fleet-wide (ad hoc, as a one-liner)
  # ansible all -m netfilter.conntrack.conntrack_info -a 'events={"seconds":5} query=events.new.rate'
  netfilter.conntrack.conntrack_info:
    events:
      seconds: 5
    query: events.new.rate

- name: Who opens new TCP connections to port 443, and how fast (the kernel drops other protocols' events)
  netfilter.conntrack.conntrack_info:
    events:
      seconds: 30
      types: [new]
      sample: 20
    proto: tcp
    dport: 443
    top: 5

- name: Expectations created and destroyed while an FTP client works (conntrack -E expect)
  netfilter.conntrack.conntrack_info:
    events:
      seconds: 20
      table: expect
      sample: 10

- name: DNS entries of one service whose backend is not one of the live ones (what a reconcile would delete)
  netfilter.conntrack.conntrack_info:
    entries: true
    proto: udp
    dst: 203.0.113.10
    dport: [53, 5353]
    not:
      reply_src: [198.51.100.21, 198.51.100.22]

- name: Entries source-NATed to the gateway's public address, port 40000 (conntrack -L --src-nat 203.0.113.1:40000)
  netfilter.conntrack.conntrack_info:
    entries: true
    src_nat: "203.0.113.1:40000"

- name: Entries stuck in the dying list (a leak shows here)
  netfilter.conntrack.conntrack_info:
    table: dying
    summary: true

- name: Expectations created by the FTP helper
  netfilter.conntrack.conntrack_info:
    expectations: true
    query: "expectations[?helper=='ftp']"

- name: Save the whole table (conntrack_entry saved restores it; see playbooks/save_table.yml)
  netfilter.conntrack.conntrack_info:
    saved: true
  register: table
'''

RETURN = r'''
count:
  description: Entries in the table (C(conntrack -C)).
  returned: success, without O(query)
  type: int
  sample: 18231
max:
  description: The table limit, C(net.netfilter.nf_conntrack_max).
  returned: success, without O(query)
  type: int
  sample: 262144
usage_percent:
  description: RV(count) as a percentage of RV(max), two decimals.
  returned: success, without O(query)
  type: float
  sample: 6.95
buckets:
  description: Hash table buckets (C(nf_conntrack_buckets), the module's C(hashsize)).
  returned: success, without O(query)
  type: int
  sample: 262144
stats:
  description:
    - Statistics summed over CPUs (C(conntrack -S)). C(drop) counts packets dropped because the table was full,
      C(early_drop) entries evicted to make room, C(insert_failed) entries that could not be inserted.
  returned: success, without O(query)
  type: dict
  sample: {found: 0, invalid: 12, insert: 0, insert_failed: 0, drop: 0, early_drop: 0, error: 0,
           search_restart: 3, clash_resolve: 0, chaintoolong: 0}
stats_per_cpu:
  description: The same statistics per CPU, each with a C(cpu) number.
  returned: success, without O(query)
  type: list
  elements: dict
sysctls:
  description: Every C(net.netfilter.nf_conntrack_*) value of the namespace, by full sysctl name.
  returned: success, without O(query)
  type: dict
  sample: {net.netfilter.nf_conntrack_max: 262144, net.netfilter.nf_conntrack_tcp_timeout_established: 432000}
kernel:
  description:
    - Kernel facts. C(accounting) and C(timestamps) tell whether entries carry counters and start times;
      C(helper_assignment) is C(explicit) (helpers only through rules, Linux 6.0+) or C(automatic);
      C(conntrack_builtin) whether nf_conntrack is built in (then modprobe.d options do nothing);
      C(initial_namespace) whether global knobs such as C(nf_conntrack_max) are writable here.
    - C(netns_inode) is the inode of the network namespace the module ran in (what C(lsns -t net),
      C(ip netns identify) and the C(net:[N]) link of C(/proc/PID/ns/net) show), to tell hosts' tables apart.
    - C(memtotal_mb) and C(cpus) size the table (the tuning role needs no fact gathering); C(synproxy) says whether
      nft SYNPROXY is there (built in, loaded or a module on disk), C(synproxy_counters) its counters;
      C(tcp) the TCP stack knobs SYN-flood hardening depends on (C(tcp_syncookies), C(tcp_timestamps),
      C(tcp_max_syn_backlog)).
    - C(owned_nft_table) whether the collection's nft table (C(inet netfilter_conntrack), the one
      M(netfilter.conntrack.conntrack_notrack) and M(netfilter.conntrack.conntrack_helper) manage) exists in the
      namespace, asked from nf_tables over netlink (no nft process); V(null) when the kernel cannot be asked.
  returned: success, without O(query)
  type: dict
  sample: {release: 6.18.0, conntrack_loaded: true, conntrack_builtin: true, accounting: false, timestamps: false,
           events: 2, helper_assignment: explicit, hashsize: 262144, initial_namespace: true, proc_table: true,
           netns_inode: 4026531840, memtotal_mb: 7837, cpus: 2, synproxy: true,
           synproxy_counters: {syn_received: 0, cookie_invalid: 0, cookie_valid: 0, cookie_retrans: 0, conn_reopened: 0},
           tcp: {tcp_syncookies: 1, tcp_timestamps: 1, tcp_max_syn_backlog: 4096}, owned_nft_table: false}
backend:
  description: How the table was read, C(netlink) or C(procfs).
  returned: always
  type: str
  sample: netlink
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
filter:
  description: The filter options that were given.
  returned: success, without O(query)
  type: dict
  sample: {proto: tcp, dport: 443}
table:
  description: The list of entries that was read (O(table)).
  returned: success, without O(query)
  type: str
  sample: conntrack
saved:
  description:
    - The whole table in its saved form, for M(netfilter.conntrack.conntrack_entry)
      O(netfilter.conntrack.conntrack_entry#module:saved). Keep it as it is (a file, a variable).
  returned: when O(saved)
  type: str
  sample: "NFCT-SAVED 1 2 440 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\neJzt..."
saved_entries:
  description: How many entries RV(saved) holds.
  returned: when O(saved)
  type: int
  sample: 2
matched:
  description: How many entries matched the filter (all of them, even beyond O(limit)).
  returned: when O(entries) or O(summary)
  type: int
  sample: 1200
truncated:
  description: True when more entries matched than O(limit) allowed to return.
  returned: when O(entries)
  type: bool
entries:
  description:
    - The matching entries. Keys follow the filter options; C(reply_*) keys describe the reply direction.
    - Ports for TCP/UDP/SCTP/DCCP/UDPlite, C(icmp_type)/C(icmp_code)/C(icmp_id) for ICMP and ICMPv6;
      C(state) for TCP/SCTP/DCCP; C(packets)/C(bytes) and C(reply_packets)/C(reply_bytes) with accounting;
      C(timestamp_start)/C(timestamp_stop) (ns) with timestamps; C(helper); C(labels) (bit numbers);
      C(zone) (0 outside zones).
    - A translated entry has C(SRC_NAT)/C(DST_NAT) in C(status) and C(snat)/C(dnat) dicts (C(from), C(to),
      C(from_port), C(to_port)) derived from its tuples, like the C(--src-nat)/C(--dst-nat) view of conntrack.
    - Present only when the kernel reports them, C(secmark) (int) and C(secctx) (str, the SELinux context) on
      hosts with a security module labelling connections; C(master) (a dict with C(src), C(dst), C(sport),
      C(dport)) on a connection a helper expected, such as an FTP data connection; C(nat_src)/C(nat_dst) (dicts
      with C(min_ip), C(max_ip), C(min_port), C(max_port)), the NAT ranges, which Linux 6.x does not include
      in dumps (use C(snat)/C(dnat)).
  returned: when O(entries)
  type: list
  elements: dict
  sample:
    - {family: ipv4, proto: tcp, protonum: 6, src: 192.0.2.11, dst: 192.0.2.12, sport: 40312, dport: 22,
       reply_src: 192.0.2.12, reply_dst: 192.0.2.11, reply_sport: 22, reply_dport: 40312, state: ESTABLISHED,
       status: [SEEN_REPLY, ASSURED, CONFIRMED], timeout: 431999, mark: 0, id: 3384022411, use: 1}
summary:
  description:
    - Counts of the matching entries. C(top_*) lists are exact up to 20,000 distinct keys and flagged
      C(approximate) beyond.
    - C(by_status) counts the entries with the status flags C(ASSURED) and C(UNREPLIED) (spelled as in an
      entry's C(status)); C(by_state) keys are TCP states, C(PROTO/STATE) for the other protocols.
  returned: when O(summary)
  type: dict
  sample: {total: 3, by_family: {ipv4: 2, ipv6: 1}, by_proto: {tcp: 2, udp: 1}, by_state: {ESTABLISHED: 2},
           by_zone: {"0": 3}, by_status: {ASSURED: 2, UNREPLIED: 1},
           top_sources: [{src: 192.0.2.11, count: 2}], top_destinations: [{dst: 192.0.2.12, count: 2}],
           top_dports: [{dport: tcp/22, count: 2}], approximate: false}
expectations:
  description:
    - The expect table; each with C(master) and C(tuple) (expected connection), C(mask), C(timeout),
      C(helper), C(zone), C(flags), C(id).
    - C(family) (C(ipv4) or C(ipv6)); C(master) and C(tuple) carry C(proto) and C(protonum) besides addresses
      and ports; C(class) (the helper's expectation class, a number) and C(fn) (the name of the kernel function
      that sets up the expected connection, such as C(nf_nat_follow_master)) when the kernel reports them.
  returned: when O(expectations)
  type: list
  elements: dict
events:
  description:
    - What was seen during O(events.seconds). C(table), C(seconds) (asked), C(elapsed) (the listen itself),
      C(types); C(received) (event messages received, before the filter), C(filtered_out) (received but not
      selected by the filter), C(drained) (datagrams already queued at the deadline, read afterwards);
      C(kernel_filter) (C(bpf) when the kernel dropped unwanted events, else null); C(buffer_size) (the kernel's
      value, twice the size asked, as it counts its bookkeeping) and C(buffer_forced); C(overruns) (ENOBUFS seen).
    - Per event type listened to (C(new), C(update), C(destroy)) a dict with C(count) and C(rate) (per second of
      C(elapsed)) and, for the C(conntrack) table, the breakdowns of RV(summary) (C(by_family), C(by_proto),
      C(by_state), C(by_zone), C(by_status), C(top_sources), C(top_destinations), C(top_dports), C(approximate)).
      C(destroy) adds C(duration) (C(flows), C(min), C(mean), C(max) seconds and a C(histogram); needs
      C(nf_conntrack_timestamp=1)) and C(counters) (C(flows), C(packets), C(bytes), C(reply_packets),
      C(reply_bytes), C(mean_bytes); needs C(nf_conntrack_acct=1)), null when off. For the C(expect) table,
      C(count), C(rate), C(by_helper), C(by_proto).
    - C(loss) is the loss account. C(overruns); C(table_count_before) and C(table_count_after) (the
      table's count when the listen started and at its deadline), C(table_delta), C(received_delta) (new -
      destroy received) and C(unexplained) (their difference, events lost or still queued at the end), the
      last two only when every type was listened to without a filter on the C(conntrack) table (else null).
    - C(sample) holds the first O(events.sample) decoded events (entry dicts with an C(event) key).
  returned: when O(events)
  type: dict
  sample:
    table: conntrack
    seconds: 5
    elapsed: 5.001
    types: [new, update, destroy]
    received: 1243
    filtered_out: 0
    drained: 0
    kernel_filter: null
    buffer_size: 134217728
    buffer_forced: true
    overruns: 0
    new: {count: 400, rate: 80.0, by_family: {ipv4: 400}, by_proto: {udp: 300, tcp: 100}, by_state: {SYN_SENT: 100},
          by_zone: {"0": 400}, by_status: {ASSURED: 0, UNREPLIED: 400}, top_sources: [{src: 192.0.2.12, count: 400}],
          top_destinations: [{dst: 192.0.2.11, count: 400}], top_dports: [{dport: tcp/8080, count: 100}],
          approximate: false}
    update: {count: 595, rate: 119.0}
    destroy: {count: 248, rate: 49.6, duration: {flows: 248, min: 0.01, mean: 12.5, max: 30.0,
              histogram: {under_1s: 10, under_10s: 0, under_1m: 238, under_10m: 0, longer: 0}},
              counters: {flows: 248, packets: 744, bytes: 28272, reply_packets: 0, reply_bytes: 0, mean_bytes: 114.0}}
    loss: {overruns: 0, table_count_before: 100, table_count_after: 252, table_delta: 152, received_delta: 152,
           unexplained: 0}
    sample: []
query:
  description: The O(query) expression that was applied.
  returned: when O(query)
  type: str
  sample: "entries[?state=='SYN_SENT'].dst"
query_result:
  description: The result of O(query) applied to the full result.
  returned: when O(query)
  type: raw
ansible_facts:
  description: The result under C(conntrack), when O(as_facts=true).
  returned: when O(as_facts)
  type: dict
'''

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    NAMESPACE_ARGSPEC, ConntrackError, MissingLibraryError, exit_with_bulk)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctevspec import EVENTS_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._info import INFO_ARGSPEC, gather, validate
from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import enter_namespace, in_initial_namespace
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module


def main():
    argument_spec = dict(INFO_ARGSPEC)
    argument_spec.update(EVENTS_ARGSPEC)
    argument_spec.update(FILTER_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = new_module(argument_spec, supports_check_mode=True)
    namespace = module.params['namespace']
    try:
        flt = validate(module.params)  # bad input is reported before anything is opened
        enter_namespace(namespace)
        result, warnings = gather(module.params, namespace=namespace, initial_namespace=in_initial_namespace(),
                                  flt=flt)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library, reason=exc.reason))
    except ConntrackError as exc:
        module.fail_json(msg=exc.msg, namespace=namespace, **exc.details)
    for warning in warnings:
        module.warn(warning)
    result['changed'] = False
    if module.params['as_facts']:
        result['ansible_facts'] = {'conntrack': dict((k, v) for k, v in result.items() if k != 'changed')}
    exit_with_bulk(module, result)


if __name__ == '__main__':
    main()
