#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation only: the work is done on the controller by the action plugin plugins/action/conntrack_tune.py.
DOCUMENTATION = r'''
module: conntrack_tune
short_description: Size, apply, persist and verify the conntrack table of a host in one task (the tuning role's engine)
version_added: 0.1.0
description:
  - The engine of the C(netfilter.conntrack.tuning) role, which is the normal way to use it (its variables are this
    module's options, same names, types and defaults; C(ansible-doc -t role netfilter.conntrack.tuning)).
  - One task per host, whatever the fleet's size. It reads the table once with
    M(netfilter.conntrack.conntrack_info) (max, buckets, count, the knobs, the host's memory and CPUs, the namespace),
    computes the plan on the controller (input checks, sizing of C(nf_conntrack_max) and the buckets, timeouts from
    the profile and the overrides, the refusal of a max below the entries in the table now), applies and persists
    everything in one M(netfilter.conntrack.conntrack_sysctl) call when there is something to do, and verifies from
    that call's own result (every value read back after the write, the sysctl.d file read back).
  - Returns one result. C(msg) is the host's one line (what changed, how full the table is, a warning with what can
    still be done when it is near the limit); the whole report is C(report). A refusal, an input error, a module
    failure or a value not in force fails the task with C(msg) saying why; nothing after a failing module call runs.
  - C(nf_conntrack_max) and the buckets are global; on a host that is itself a network namespace, or with
    O(tuning_namespace), only the per-namespace knobs (timeouts) are applied and the global ones are reported as
    skipped, not failed. Nothing is persisted there.
  - Memory and CPUs come from gathered facts (C(ansible_memtotal_mb), C(ansible_processor_vcpus)) where there are
    some, else from what M(netfilter.conntrack.conntrack_info) read.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
attributes:
  action:
    description: Runs on the controller as an action plugin, which runs the collection's modules on the host.
    support: full
    details: Runs M(netfilter.conntrack.conntrack_info) and at most one M(netfilter.conntrack.conntrack_sysctl) call.
  check_mode:
    support: full
    details: The same plan and report (C(would change)), nothing written; the values are not verified.
  diff_mode:
    support: full
    details: The diff of the M(netfilter.conntrack.conntrack_sysctl) call (values in force and the files).
notes:
  - Needs root on the host for the changes (C(/proc/sys) and C(/etc) writes).
  - The output per stdout callback is described in C(docs/performance.md) of the collection.
seealso:
  - module: netfilter.conntrack.conntrack_sysctl
  - module: netfilter.conntrack.conntrack_info
  - module: netfilter.conntrack.conntrack_harden
options:
  tuning_max:
    description:
      - C(nf_conntrack_max). V(auto) computes it with O(tuning_policy); a whole number (1 or more) is set as given.
    type: raw
    default: auto
  tuning_policy:
    description:
      - How V(auto) sizes the table. V(kernel) is the kernel's own default for the host's RAM (buckets from
        RAM / 16384 / 8, 65536 above 1 GiB, 262144 above 4 GiB; max = buckets).
      - V(per_core) is kube-proxy's policy, max(O(tuning_per_core) x CPUs, O(tuning_min)).
      - V(fixed) requires a number in O(tuning_max).
    type: str
    choices: [kernel, per_core, fixed]
    default: kernel
  tuning_per_core:
    description: Entries per CPU for V(per_core) (kube-proxy's C(--conntrack-max-per-core), default 32768).
    type: int
    default: 32768
  tuning_min:
    description: Lower bound for V(per_core) (kube-proxy's C(--conntrack-min), default 131072).
    type: int
    default: 131072
  tuning_max_ceiling:
    description: Upper bound for a computed C(nf_conntrack_max); V(0) means none.
    type: int
    default: 0
  tuning_raise_only:
    description:
      - When C(max) or the buckets are computed (V(auto)), never set them below what the host has now, so a
        fleet run does not shrink a host someone sized up by hand. Explicit numbers are set as given.
    type: bool
    default: true
  tuning_buckets:
    description:
      - Hash buckets. V(auto) is ceil(max / O(tuning_bucket_ratio)) rounded up like the kernel (a multiple
        of 512); V(keep) leaves them; a whole number is set as given (rounded by the kernel).
      - Changing the bucket count rehashes the whole table (brief, but it holds a lock on every CPU).
    type: raw
    default: auto
  tuning_bucket_ratio:
    description:
      - Entries per bucket for V(auto) buckets. 1 is the kernel's default since Linux 5.15; kube-proxy uses 4.
    type: int
    default: 1
  tuning_timeouts_profile:
    description:
      - V(default) sets no timeout (each host keeps its kernel's values).
      - V(nat_gateway) sets C(tcp_timeout_established=7440) (RFC 5382 REQ-5, the shortest a NAT may use),
        C(udp_timeout_stream=120) (RFC 4787 REQ-5 minimum) and C(udp_timeout=30) (kernel default).
      - V(kubernetes) sets kube-proxy's defaults, C(tcp_timeout_established=86400) and
        C(tcp_timeout_close_wait=3600).
    type: str
    choices: [default, nat_gateway, kubernetes]
    default: default
  tuning_timeouts:
    description:
      - Per-knob overrides on top of the profile, by short name (C(udp_timeout)) or sysctl name; seconds or
        durations (C(30s), C(5m), C(12h), C(5d)). Any per-namespace knob may be given (C(tcp_be_liberal)).
    type: dict
    default: {}
  tuning_persist:
    description: Persist the values for the next boot (initial namespace only; skipped with a note elsewhere).
    type: bool
    default: true
  tuning_sysctl_file:
    description: The sysctl.d file written by C(conntrack_sysctl).
    type: path
    default: /etc/sysctl.d/90-netfilter-conntrack.conf
  tuning_modprobe_file:
    description: The modprobe.d file for the hash size (loadable nf_conntrack only).
    type: path
    default: /etc/modprobe.d/netfilter-conntrack.conf
  tuning_modules_load_file:
    description: The modules-load.d file that loads nf_conntrack before sysctl.d is applied (loadable only).
    type: path
    default: /etc/modules-load.d/netfilter-conntrack.conf
  tuning_force_lower:
    description: Allow C(nf_conntrack_max) below the entries in the table now (new flows drop until it drains).
    type: bool
    default: false
  tuning_load_module:
    description: Load nf_conntrack with modprobe first where it is a loadable module that is not loaded.
    type: bool
    default: true
  tuning_namespace:
    description:
      - Tune the table of this named network namespace of the host (or a C(/proc/PID/ns/net) path) instead of
        the host's own. Only per-namespace knobs apply there; nothing is persisted. Empty means the host.
    type: str
    default: ""
  tuning_verify:
    description:
      - Fail the host when a value is not in force after the write, or the sysctl.d file does not hold it.
      - The proof is C(conntrack_sysctl)'s own result (it reads every value and the file back after writing);
        no second read is made.
    type: bool
    default: true
  tuning_warn_percent:
    description:
      - The one-line report and the fleet summary warn when the table is at least this full (percent of
        C(nf_conntrack_max) after the run), naming what can still be done on that host.
    type: int
    default: 80
  tuning_report_detail:
    description:
      - The task's message is the whole report per host (max, count, headroom, buckets, timeouts, notes) instead
        of one line, and Ansible's default callback prints it. C(-v) shows the whole result anyway. The report is
        also the variable C(tuning_report) after the role.
    type: bool
    default: false
'''

EXAMPLES = r'''
# The normal way: the role, whose one task is this module.
- name: Size the table of every gateway
  ansible.builtin.import_role:
    name: netfilter.conntrack.tuning
  vars:
    tuning_policy: per_core
    tuning_timeouts_profile: nat_gateway

- name: The same task without the role
  netfilter.conntrack.conntrack_tune:
    tuning_policy: per_core
    tuning_per_core: 131072
    tuning_timeouts_profile: nat_gateway
    tuning_timeouts:
      udp_timeout: 20s
  register: tuned

- name: Lower nf_conntrack_max below the entries in the table now (new flows drop until it drains)
  netfilter.conntrack.conntrack_tune:
    tuning_max: 65536
    tuning_raise_only: false
    tuning_force_lower: true
'''

RETURN = r'''
msg:
  description:
    - The host's one line (outcome, table usage, persisted, the near-full warning), or why the task failed.
    - With O(tuning_report_detail=true) the whole report (a dict) instead of the line.
  returned: always
  type: raw
  sample: "h7: changed max 65536->262144, buckets 65536->262144; table 1200/262144 (0.5%); persisted"
report:
  description:
    - The host's report (also the role's variable C(tuning_report)). Its keys include C(max), C(max_wanted),
      C(count), C(headroom), C(headroom_percent), C(usage_percent), C(buckets), C(buckets_wanted),
      C(global_knobs), C(persisted), C(in_force), C(netns_inode), C(notes), C(timeouts), C(changes), C(warning),
      C(problem) and C(line).
  returned: when the arguments are valid
  type: dict
  sample: {max: 262144, count: 1200, usage_percent: 0.5, global_knobs: applied, problem: null}
calls:
  description:
    - The results of the module calls made, by step, C(info) (M(netfilter.conntrack.conntrack_info)) and
      C(sysctl) (M(netfilter.conntrack.conntrack_sysctl), only when the plan applied something), without their
      arguments, facts, diffs and bulk (all knob values, per-CPU statistics).
  returned: when the arguments are valid
  type: dict
diff:
  description: The diff of the M(netfilter.conntrack.conntrack_sysctl) call.
  returned: when the call returned one (C(--diff))
  type: dict
warnings:
  description: The modules' warnings, and the near-full warning naming what can still be done on that host.
  returned: when there are some
  type: list
  elements: str
'''
