#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: conntrack_sysctl
short_description: Set, persist and remove the connection-tracking sysctls (max, hash size, timeouts)
version_added: 0.1.0
description:
  - Sets one conntrack knob (O(name)/O(value)) or many at once (O(settings)) in the running kernel,
    and optionally persists them so they survive a reboot.
  - The knobs are the ones the running kernel has under C(/proc/sys/net/netfilter) (C(nf_conntrack_*)).
    Each has a known type and range (timeouts in seconds, booleans, counts); an unknown name is an error
    that lists the knobs this kernel has.
  - C(nf_conntrack_max), C(nf_conntrack_buckets) (the hash size) and C(nf_conntrack_expect_max) are
    global and can only be changed in the initial network namespace; asking for them inside another
    namespace is an error that says so. All other knobs (timeouts, C(tcp_loose), ...) belong to each
    network namespace. C(nf_conntrack_count) is read-only.
  - The hash size is changed at run time; the kernel rounds it up to a whole page of buckets
    (a multiple of 512 on x86_64), and the module compares and reports the rounded value.
  - With O(persist=true) the values are written atomically (temporary file and rename, mode 0644) to a
    sysctl.d file of this collection. Where nf_conntrack is a loadable module, the hash size also goes
    to a modprobe.d file and a modules-load.d entry makes sure the module is loaded before
    systemd-sysctl applies the sysctl.d files at boot (without it, the persisted values silently do not
    apply). Where nf_conntrack is built into the kernel, modprobe.d is not read; the module warns and
    persists the hash size as C(net.netfilter.nf_conntrack_buckets) in the sysctl.d file.
  - When no knob is given the module changes nothing and returns the catalogue of knobs with their
    values in force.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
  - netfilter.conntrack.namespace
notes:
  - Persisted files are applied at boot in the initial network namespace only; a network namespace
    starts from the kernel defaults whenever it is created. So O(persist=true) and O(state=absent)
    are refused inside a network namespace (O(namespace), or a host that is itself a namespace);
    set namespace values from whatever creates the namespace instead.
  - Supports check mode and diff mode.
seealso:
  - plugin: netfilter.conntrack.conntrack_max_auto
    plugin_type: filter
    description: >-
      The kernel's own sizing formula as a filter; the sizing guide C(docs/sizing.md) in the installed
      collection explains how to size nf_conntrack_max and the hash table.
  - name: Kernel documentation of the conntrack sysctls
    description: The meaning of every knob.
    link: https://docs.kernel.org/networking/nf_conntrack-sysctl.html
attributes:
  check_mode:
    details: Computes the same result without writing anything.
    support: full
  diff_mode:
    details: Shows the values in force and every file before and after.
    support: full
options:
  name:
    description:
      - One knob to set (with O(value)) or to remove from the persisted files (with O(state=absent)).
      - The full sysctl name (C(net.netfilter.nf_conntrack_max), C(net.nf_conntrack_max)), the file name
        (C(nf_conntrack_tcp_timeout_established)) or the short form (C(max), C(buckets), C(hashsize),
        C(tcp_timeout_established)).
      - Three TCP-stack knobs that conntrack hardening depends on are managed the same way, per namespace,
        C(net.ipv4.tcp_syncookies) (SYNPROXY needs 1), C(net.ipv4.tcp_timestamps) and
        C(net.ipv4.tcp_max_syn_backlog), also by their short names.
    type: str
  value:
    description:
      - The value for O(name). Counts and booleans are whole numbers (booleans also accept C(true)/C(false)).
      - Timeouts take seconds or a duration with a unit C(s), C(m), C(h), C(d) or C(w), such as C(30s),
        C(5m), C(12h), C(5d) or C(1h30m).
    type: raw
  settings:
    description:
      - Several knobs at once, as a mapping of name to value (names and values as for O(name) and O(value)).
      - All values are validated before anything is written; if the kernel refuses one, the knobs already
        written in this task are set back.
      - With O(state=absent), the keys name the knobs to remove from the persisted files (values are ignored).
    type: dict
  state:
    description:
      - V(present) sets the values (and persists them with O(persist=true)).
      - V(absent) removes the given knobs from the persisted files, or all the files of this module when no
        knob is given. The values in force are not changed.
    type: str
    choices: [present, absent]
    default: present
  apply:
    description:
      - Write the values to the running kernel. Set V(false) to only persist them for the next boot
        (for example on an image, or when a change should wait for a maintenance window).
    type: bool
    default: true
  persist:
    description:
      - Also write the values to O(sysctl_file) (and the modprobe.d and modules-load.d files where
        nf_conntrack is a loadable module) so that they survive a reboot.
      - Knobs already in the file from other tasks are kept.
    type: bool
    default: false
  force:
    description:
      - Allow setting C(nf_conntrack_max) below the number of entries in the table now.
      - Without it such a request is refused, because every new flow would be dropped until the table drains.
    type: bool
    default: false
  sysctl_file:
    description: The sysctl.d file this module owns.
    type: path
    default: /etc/sysctl.d/90-netfilter-conntrack.conf
  modprobe_file:
    description: The modprobe.d file with C(options nf_conntrack hashsize=N) (only where nf_conntrack is loadable).
    type: path
    default: /etc/modprobe.d/netfilter-conntrack.conf
  modules_load_file:
    description: The modules-load.d file that loads nf_conntrack at boot (only where nf_conntrack is loadable).
    type: path
    default: /etc/modules-load.d/netfilter-conntrack.conf
  conntrack_module:
    description:
      - How the kernel provides nf_conntrack, which decides the files written with O(persist=true).
      - V(auto) detects it on the running kernel (C(/proc/modules), C(/sys/module/nf_conntrack), modules.builtin).
        Set V(builtin) or V(loadable) when preparing files for a kernel that differs from the running one.
    type: str
    choices: [auto, builtin, loadable]
    default: auto
  load_module:
    description:
      - Load nf_conntrack with C(modprobe) first when it is a loadable module that is not loaded yet.
    type: bool
    default: false
requirements:
  - Root (or CAP_NET_ADMIN and write access to /proc/sys and the persisted files' directories).
'''

EXAMPLES = r'''
- name: Raise the table limit on a NAT gateway and keep it after reboot
  netfilter.conntrack.conntrack_sysctl:
    name: nf_conntrack_max
    value: 1048576
    persist: true

- name: Size the table and the hash together, with Kubernetes-like timeouts
  netfilter.conntrack.conntrack_sysctl:
    settings:
      max: 524288
      buckets: 131072
      tcp_timeout_established: 1d
      tcp_timeout_close_wait: 1h
    persist: true

- name: Shorter UDP timeouts inside a container's network namespace (per-namespace knobs only)
  netfilter.conntrack.conntrack_sysctl:
    namespace: blue
    settings:
      udp_timeout: 30s
      udp_timeout_stream: 2m

- name: Prepare the next boot only, without touching the running kernel
  netfilter.conntrack.conntrack_sysctl:
    name: hashsize
    value: 262144
    apply: false
    persist: true

- name: List the knobs this kernel has, with their values
  netfilter.conntrack.conntrack_sysctl:
  register: knobs

- name: Forget the persisted hash size (the running value stays)
  netfilter.conntrack.conntrack_sysctl:
    name: buckets
    state: absent

- name: Remove every file this module persisted
  netfilter.conntrack.conntrack_sysctl:
    state: absent

- name: Lower the limit below the current number of entries (new flows are dropped until it drains)
  netfilter.conntrack.conntrack_sysctl:
    name: max
    value: 65536
    force: true
'''

RETURN = r'''
settings:
  description:
    - Per knob, by full sysctl name, the value before and after, and whether it changed.
    - In check mode C(new) is the value that would be written.
  returned: when values were applied
  type: dict
  sample:
    net.netfilter.nf_conntrack_max: {old: 262144, new: 524288, changed: true}
    net.netfilter.nf_conntrack_tcp_timeout_established: {old: 432000, new: 86400, changed: true}
files:
  description: The files written and removed (or that would be, in check mode).
  returned: always
  type: dict
  sample:
    written: [/etc/sysctl.d/90-netfilter-conntrack.conf]
    removed: []
initial_namespace:
  description: Whether the module ran in the initial network namespace, where global knobs are writable.
  returned: always
  type: bool
  sample: true
conntrack_module:
  description: How the kernel provides nf_conntrack (V(builtin), V(loadable) or V(unknown)), or the O(conntrack_module) given.
  returned: always
  type: str
  sample: builtin
catalogue:
  description: When no knob was given, every conntrack knob of this kernel with its type, range, scope and value.
  returned: when neither O(name) nor O(settings) is given and O(state=present)
  type: dict
  sample:
    max: {name: max, sysctl: net.netfilter.nf_conntrack_max, kind: count, scope: global, writable: true,
          minimum: 0, maximum: 2147483647, unit: entries, value: 262144}
in_force:
  description:
    - Whether every value read back after the write equals the one asked for (the proof a caller can verify
      from, without reading again); V(null) in check mode or when nothing was applied.
  returned: when knobs were given
  type: bool
  sample: true
mismatch:
  description: The knobs whose value read back differs from the one asked for (also given as warnings).
  returned: when knobs were given
  type: list
  elements: str
  sample: []
persisted:
  description:
    - The sysctl.d file, read back after the write and holding every value asked for; V(null) when not persisted
      or in check mode. A file that does not hold them fails the task (and what was changed is put back).
  returned: when knobs were given
  type: str
  sample: /etc/sysctl.d/90-netfilter-conntrack.conf
diff:
  description: Values in force and file contents before and after (also shown with C(--diff)).
  returned: when something changed
  type: list
  elements: dict
  sample:
    - before_header: running kernel (before)
      after_header: running kernel (after)
      before: "net.netfilter.nf_conntrack_max = 262144\n"
      after: "net.netfilter.nf_conntrack_max = 524288\n"
namespace:
  description: The O(namespace) the module ran in, or null for the process's own.
  returned: always
  type: str
  sample: null
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import in_initial_namespace
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run
from ansible_collections.netfilter.conntrack.plugins.module_utils._sysctltask import (
    SYSCTL_ARGSPEC, SYSCTL_CHECKS, sysctl_task)


def main():
    module = new_module(SYSCTL_ARGSPEC, supports_check_mode=True, **SYSCTL_CHECKS)

    def work(params, check_mode):
        return sysctl_task(params, check_mode, lambda argv: module.run_command(
            [module.get_bin_path(argv[0], required=True)] + argv[1:]), in_initial_namespace())[0]

    run(module, work)


if __name__ == '__main__':
    main()
