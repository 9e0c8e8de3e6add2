#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_entry
short_description: Create, update or delete connection-tracking entries, one or a whole saved table
version_added: 0.1.0
description:
  - The idempotent form of C(conntrack -I), C(-U), C(-D) and C(-G) for one entry.
  - O(state=present) creates the entry when it does not exist and changes what differs when it does (mark,
    labels, status flags, TCP state, and the timeout as O(timeout_policy) says); O(state=absent) deletes it
    when it exists.
  - The entry is identified by its original tuple (O(src), O(dst), ports or ICMP fields) and O(zone), or by its
    reply tuple (O(reply_src), O(reply_dst), O(reply_sport), O(reply_dport)) when no original address is given,
    as C(conntrack -I -r -q) allows.
  - With O(entries), many entries at once, like C(conntrack -R). Each item takes the same options, and an entry as
    M(netfilter.conntrack.conntrack_info) lists it is taken back unchanged, so a saved listing restores a table.
  - With O(saved), a whole table saved by M(netfilter.conntrack.conntrack_info) O(netfilter.conntrack.conntrack_info#module:saved=true)
    is restored, faster than C(conntrack -R) restores the same table.
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
      - With O(entries), the state of every item that does not give its own.
    type: str
    choices: [present, absent]
    default: present
  entries:
    description:
      - Many entries, each a dictionary of the entry options below (O(proto), O(src), O(dst)...), made present or
        absent in one task, like C(conntrack -R) restores a saved table. Mutually exclusive with O(proto) and
        the other entry options, which go in each item.
      - An entry as M(netfilter.conntrack.conntrack_info) lists it is an item as it is (save and restore); its
        read-only keys (C(id), C(use), counters, timestamps, C(snat)/C(dnat)...) are ignored, its C(state) is the
        protocol state, status flags the kernel sets by itself (C(SRC_NAT_DONE)...) are ignored, and a C(SRC_NAT)
        or C(DST_NAT) entry's reply tuple says where it is translated to (O(nat_src)/O(nat_dst)).
      - Every item is checked, and what exists read, before anything changes; the entries are then created,
        updated or deleted hundreds per netlink message batch. When the kernel refuses any of them, the task fails
        naming the items (C(entries[3]) ...) and undoes what it had done.
      - An entry that exists already is no error (it is updated where it differs, as the single form does).
    type: list
    elements: dict
    suboptions:
      state:
        description:
          - C(present) or C(absent) (default the task's O(state)), or the protocol state as
            M(netfilter.conntrack.conntrack_info) lists it (C(ESTABLISHED)...), which means the task's O(state) with
            that O(entries[].tcp_state), so a listing deleted with O(state=absent) is deleted whole.
        type: str
      family:
        description: As O(family).
        type: str
        choices: [ipv4, ipv6]
      proto:
        description: As O(proto); required in each item.
        type: str
      src:
        description: As O(src).
        type: str
      dst:
        description: As O(dst).
        type: str
      sport:
        description: As O(sport).
        type: int
      dport:
        description: As O(dport).
        type: int
      reply_src:
        description: As O(reply_src).
        type: str
      reply_dst:
        description: As O(reply_dst).
        type: str
      reply_sport:
        description: As O(reply_sport).
        type: int
      reply_dport:
        description: As O(reply_dport).
        type: int
      icmp_type:
        description: As O(icmp_type).
        type: int
      icmp_code:
        description: As O(icmp_code).
        type: int
      icmp_id:
        description: As O(icmp_id).
        type: int
      reply_icmp_type:
        description: As O(reply_icmp_type).
        type: int
      reply_icmp_code:
        description: As O(reply_icmp_code).
        type: int
      reply_icmp_id:
        description: As O(reply_icmp_id).
        type: int
      zone:
        description: As O(zone).
        type: int
        default: 0
      orig_zone:
        description: As O(orig_zone).
        type: int
      reply_zone:
        description: As O(reply_zone).
        type: int
      timeout:
        description: As O(timeout); C(0) is taken too (an entry listed in its last second).
        type: int
      timeout_policy:
        description: As O(timeout_policy).
        type: str
        choices: [on_create, refresh_below]
        default: on_create
      timeout_min:
        description: As O(timeout_min).
        type: int
      tcp_state:
        description: As O(tcp_state).
        type: str
      status:
        description: As O(status); flags the kernel sets by itself are ignored.
        type: list
        elements: str
      mark:
        description: As O(mark).
        type: raw
      mark_mask:
        description: As O(mark_mask).
        type: raw
      labels:
        description: As O(labels).
        type: list
        elements: raw
      labels_mode:
        description: As O(labels_mode).
        type: str
        choices: [add, remove, exact]
        default: add
      nat_src:
        description: As O(nat_src).
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
        description: As O(nat_dst).
        type: dict
        suboptions:
          address:
            description: The translated destination address.
            type: str
            required: true
          port:
            description: The translated destination port.
            type: int
      protonum:
        description: Read-only (listed by M(netfilter.conntrack.conntrack_info)), ignored; O(entries[].proto) says the protocol.
        type: raw
      id:
        description: Read-only, ignored. The kernel gives every entry its own id.
        type: raw
      use:
        description: Read-only, ignored.
        type: raw
      packets:
        description: Read-only (a counter), ignored.
        type: raw
      bytes:
        description: Read-only (a counter), ignored.
        type: raw
      reply_packets:
        description: Read-only (a counter), ignored.
        type: raw
      reply_bytes:
        description: Read-only (a counter), ignored.
        type: raw
      timestamp_start:
        description: Read-only, ignored.
        type: raw
      timestamp_stop:
        description: Read-only, ignored.
        type: raw
      dnat:
        description: Read-only (the description of the translation the tuples and status say), ignored.
        type: raw
      snat:
        description: Read-only (the description of the translation the tuples and status say), ignored.
        type: raw
      helper:
        description: Read-only, ignored (a restored entry has no helper).
        type: raw
      secmark:
        description: Read-only, ignored.
        type: raw
      secctx:
        description: Read-only, ignored.
        type: raw
      master:
        description: Read-only (the master of an expected connection), ignored.
        type: raw
      tuple_zone:
        description: As O(entries[].orig_zone) (the key M(netfilter.conntrack.conntrack_info) lists it under).
        type: int
      reply_tuple_zone:
        description: As O(entries[].reply_zone) (the key M(netfilter.conntrack.conntrack_info) lists it under).
        type: int
  saved:
    description:
      - A whole table as M(netfilter.conntrack.conntrack_info) returns it with
        O(netfilter.conntrack.conntrack_info#module:saved=true) (its RV(netfilter.conntrack.conntrack_info#module:saved)),
        restored like C(conntrack -R) restores the lines of C(conntrack -L -o save). Mutually exclusive with
        O(proto), O(entries) and the entry options; only O(state=present).
      - The saved form holds the kernel's own netlink messages of the entries, compressed, with a checksum. Every
        message is checked before anything is sent (header, checksum, lengths, families, attributes, both tuples
        and a timeout in each); a value that was changed or cut fails the task naming O(saved).
      - Each saved entry that is not in the table is created with its tuples, status, protocol state, timeout,
        mark, zone (directional zones too), labels, helper and sequence adjustments; a NAT entry with its
        translation, and without helper (as O(entries) creates a listed NAT entry). An entry that is there
        already is left as it is and counted in RV(unchanged), so a second run changes nothing. When the kernel
        refuses an entry (no room for labels, a helper it does not have...), the task fails naming it
        (C(saved[3])) and the entries it had created are deleted again.
      - Check mode reads the tuples of the table and counts what would be created. So does a restore that could
        pass C(nf_conntrack_max); it fails before anything is sent if it would, since the kernel makes room by
        dropping entries not yet assured (live connections).
    type: str
  family:
    description:
      - Address family. Implied by the addresses (and by O(proto=icmp)/C(icmpv6)); an address of the other family
        is an error.
    type: str
    choices: [ipv4, ipv6]
  proto:
    description:
      - Layer-4 protocol, a name (C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), C(dccp), C(udplite)) or a number.
      - Required unless O(entries) or O(saved) is given.
    type: str
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
  reply_icmp_type:
    description:
      - ICMP or ICMPv6 type of the reply tuple, with an explicit reply tuple. Default the reply of O(icmp_type)
        (C(0) for C(8), C(129) for C(128)), as M(netfilter.conntrack.conntrack_info) lists it.
    type: int
  reply_icmp_code:
    description: ICMP or ICMPv6 code of the reply tuple. Default O(icmp_code).
    type: int
  reply_icmp_id:
    description: ICMP or ICMPv6 identifier of the reply tuple. Default O(icmp_id).
    type: int
  zone:
    description:
      - Conntrack zone, 0-65535, of both directions of the entry. The same tuple in two zones are two entries.
    type: int
    default: 0
  orig_zone:
    description:
      - A zone, 0-65535, of the original direction only (C(conntrack -I --orig-zone)); the reply tuple stays in
        zone 0. M(netfilter.conntrack.conntrack_info) lists such an entry with C(tuple_zone).
      - The kernel keeps one zone per entry, for both directions or for one, so O(zone), O(orig_zone) and
        O(reply_zone) exclude each other (O(orig_zone) and O(reply_zone) of the same value are O(zone)).
      - The zone of an existing entry cannot change; the task fails and names the zone it has.
    type: int
  reply_zone:
    description:
      - A zone, 0-65535, of the reply direction only (C(conntrack -I --reply-zone)); listed as C(reply_tuple_zone).
        See O(orig_zone).
    type: int
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
  - A created TCP entry gets the window-tracking flags C(conntrack -I) gives it (C(BE_LIBERAL) and C(SACK_PERM) in
    both directions), so that the packets of a connection that was not seen from its start are not judged out of
    window (INVALID), with C(nf_conntrack_tcp_loose=0) too. An update sets them only together with a new
    O(tcp_state); otherwise the kernel's window tracking of an existing entry is left alone.
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

- name: Save a table (entries as conntrack_info lists them)
  netfilter.conntrack.conntrack_info:
    entries: true
    limit: 0
  register: saved

- name: Keep the saved entries in a file on the controller
  ansible.builtin.copy:
    content: "{{ saved.entries | to_json }}"
    dest: "saved/{{ inventory_hostname }}-conntrack.json"
    mode: "0600"
  delegate_to: localhost

- name: Restore them after a reboot or on a standby firewall (each one created unless it is there already)
  netfilter.conntrack.conntrack_entry:
    entries: "{{ lookup('ansible.builtin.file', 'saved/' ~ inventory_hostname ~ '-conntrack.json') | from_json }}"

- name: Save the whole table in its saved form (one string, the fastest way back)
  netfilter.conntrack.conntrack_info:
    saved: true
  register: table

- name: Keep it on the controller
  ansible.builtin.copy:
    content: "{{ table.saved }}"
    dest: "saved/{{ inventory_hostname }}-conntrack.saved"
    mode: "0600"
  delegate_to: localhost

- name: Restore it (each entry created unless it is there already; a second run changes nothing)
  netfilter.conntrack.conntrack_entry:
    saved: "{{ lookup('ansible.builtin.file', 'saved/' ~ inventory_hostname ~ '-conntrack.saved') }}"

- name: Move the entries of zone 10 into zone 11 (list, insert into 11, delete from 10)
  block:
    - name: List zone 10
      netfilter.conntrack.conntrack_info:
        entries: true
        zone: 10
        limit: 0
      register: zone10
    - name: Insert them into zone 11
      netfilter.conntrack.conntrack_entry:
        entries: "{{ zone10.entries | map('combine', {'zone': 11}) | list }}"
    - name: Delete them from zone 10
      netfilter.conntrack.conntrack_entry:
        entries: "{{ zone10.entries }}"
        state: absent

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
created:
  description: With O(entries) or O(saved), how many entries were created (in check mode, would be).
  returned: with O(entries) or O(saved)
  type: int
  sample: 99998
updated:
  description: With O(entries), how many existing entries were changed (0 with O(saved), which changes no entry).
  returned: with O(entries) or O(saved)
  type: int
  sample: 1
deleted:
  description: With O(entries), how many entries were deleted (0 with O(saved)).
  returned: with O(entries) or O(saved)
  type: int
  sample: 0
unchanged:
  description:
    - With O(entries), how many items needed no change (the entry is there as asked, or absent already).
    - With O(saved), how many saved entries were there already (left as they are).
  returned: with O(entries) or O(saved)
  type: int
  sample: 1
total:
  description: With O(entries), the number of items; with O(saved), the number of saved entries.
  returned: with O(entries) or O(saved)
  type: int
  sample: 100000
sample:
  description:
    - With O(entries), the first 20 changes by item, each with its C(index) in O(entries), its C(action)
      (C(created), C(updated), C(deleted)), the C(entry) created or the C(changes) of an update.
    - With O(saved), the first 20 entries created, each with its C(index) in the saved table.
  returned: with O(entries) or O(saved)
  type: list
  elements: dict
  sample: [{index: 0, action: updated, changes: [mark]}]
batches:
  description:
    - With O(entries) or O(saved) and not in check mode, how the writes went to the kernel, C(datagrams)
      (netlink messages sent together) and C(acks) (acknowledgements asked for, one per datagram).
  returned: with O(entries) or O(saved), not in check mode
  type: dict
  sample: {datagrams: 116, acks: 116}
failed_entries:
  description:
    - When the task fails on items, each of them as C(option) (C(entries[3].dport), or C(entries[3])) and C(msg).
    - With O(saved), the saved entries the kernel refused, as C(saved[3]).
  returned: failure on O(entries) or O(saved)
  type: list
  elements: dict
  sample: [{option: "entries[3].timeout", msg: "entries[3].timeout: the entry does not exist, and creating it needs timeout"}]
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._entrybatch import ENTRIES_ARGSPEC, ensure_task, validate_task
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import ENTRY_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run


def main():
    argument_spec = dict(ENTRY_ARGSPEC)
    argument_spec.update(ENTRIES_ARGSPEC)
    argument_spec.update(NAMESPACE_ARGSPEC)
    module = new_module(argument_spec, supports_check_mode=True, required_one_of=[('proto', 'entries', 'saved')],
                        mutually_exclusive=[('proto', 'entries', 'saved')])
    run(module, lambda params, check_mode, checked: ensure_task(checked, check_mode), validate=validate_task)


if __name__ == '__main__':
    main()
