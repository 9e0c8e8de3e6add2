#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The action plugin plugins/action/conntrack_harden.py reads and plans on the controller; this module is the host-side
# half it runs once with the changes as _steps (plugins/module_utils/_steps.py).
DOCUMENTATION = r'''
module: conntrack_harden
short_description: Harden a host against SYN floods, verified, in one task (the synflood_guard role's engine)
version_added: 0.1.0
description:
  - The engine of the C(netfilter.conntrack.synflood_guard) role, which is the normal way to use it (its variables
    are this module's options, same names, types and defaults; C(ansible-doc -t role netfilter.conntrack.synflood_guard)).
  - One task per host. It reads everything once with M(netfilter.conntrack.conntrack_info) (the table, the kernel
    release, nft SYNPROXY support, the TCP stack knobs, the namespace) and checks every input and what the kernel
    supports on the controller before it changes anything.
  - Then one module process on the host makes every change, in this order.
  - V(present) - the knobs the mode needs, as M(netfilter.conntrack.conntrack_sysctl) sets them (they are in force
    before the rules see a packet), then the rules in the collection's nft table in one atomic change, as
    M(netfilter.conntrack.conntrack_notrack) makes it. With O(synflood_guard_headroom) the tuning plan (as
    M(netfilter.conntrack.conntrack_tune) computes it) is made from the same read, checked with the rest before any
    change, and applied last.
  - V(absent) - the rules are removed first, then the knobs are set back to O(synflood_guard_absent_sysctls) and,
    with O(synflood_guard_persist), removed from the persisted files.
  - All or nothing - when a change fails, every change made before it is put back (the knobs' old values, the nft
    table as it was, the persisted files as they were) and the task fails naming the step, the option and what
    was put back. A change that could not be put back is named in C(msg).
  - Verification comes from the changes' own results (knobs read back after the write, the nft table read back
    after the change). Returns one result, C(msg) being the host's one line; a refusal, an input error, a failed
    change or something not in force fails the task with C(msg) saying why.
  - Never flushes the table; established connections (the management session too) keep working.
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - netfilter.conntrack.attributes
attributes:
  action:
    description:
      - Runs on the controller as an action plugin, which reads the host with M(netfilter.conntrack.conntrack_info)
        and makes the changes with this module, in one process on the host.
    support: full
    details:
      - Runs M(netfilter.conntrack.conntrack_info), then at most two M(netfilter.conntrack.conntrack_sysctl) calls and
        one M(netfilter.conntrack.conntrack_notrack) call. The M(netfilter.conntrack.conntrack_notrack) call is left
        out when it could change nothing - no rules wanted, O(synflood_guard_persist=false), and the read says the
        collection's nft table does not exist.
  check_mode:
    support: full
    details: The same plan and report (C(would change)), nothing changed; nothing is verified.
  diff_mode:
    support: full
    details: The diffs of the module calls (knobs and files, the nft table before and after), as a list.
notes:
  - Needs root on the host (C(/proc/sys), nft, C(/etc) writes).
  - The output per stdout callback is described in C(docs/performance.md) of the collection.
seealso:
  - module: netfilter.conntrack.conntrack_notrack
  - module: netfilter.conntrack.conntrack_sysctl
  - module: netfilter.conntrack.conntrack_tune
options:
  synflood_guard_state:
    description:
      - V(present) applies the hardening; V(absent) removes the rules and the persisted settings of this
        role and sets its knobs back to O(synflood_guard_absent_sysctls).
    type: str
    choices: [present, absent]
    default: present
  synflood_guard_mode:
    description:
      - V(synproxy) answers SYNs to the protected ports with SYN cookies from the kernel's SYNPROXY
        (needs a kernel with nft SYNPROXY); SYNs of those ports are not tracked.
      - V(notrack) only exempts the SYNs of the protected ports from tracking (the local stack answers
        with its own SYN cookies); no SYNPROXY needed.
      - V(sysctl_only) changes no rules; SYN cookies, half-open timeouts and the other knobs only.
    type: str
    choices: [synproxy, notrack, sysctl_only]
    default: synproxy
  synflood_guard_ports:
    description:
      - TCP ports to protect, for IPv4 and IPv6 (1-65535).
      - Empty means no rules at all, only the kernel settings are applied.
    type: list
    elements: int
    default: []
  synflood_guard_ports_ipv4:
    description: Extra TCP ports to protect for IPv4 only.
    type: list
    elements: int
    default: []
  synflood_guard_ports_ipv6:
    description: Extra TCP ports to protect for IPv6 only.
    type: list
    elements: int
    default: []
  synflood_guard_synproxy_mss:
    description: MSS announced in the SYNPROXY's SYN-ACK (536-65535); match the path MTU (1460 for 1500).
    type: int
    default: 1460
  synflood_guard_synproxy_wscale:
    description:
      - Window scale announced by SYNPROXY (0-14). Only used with the timestamp option (the cookie
        carries window scaling and SACK inside the timestamp).
    type: int
    default: 7
  synflood_guard_synproxy_timestamp:
    description:
      - Whether SYNPROXY announces TCP timestamps. V(auto) turns it on before Linux 6.15 and off from
        6.15 on, where the local stack rejects the forwarded ACK's TSEcr (server-speaks-first protocols
        fail, others stall now and then). Off means cookies carry the MSS only (no window scaling or SACK).
      - V(true) on a kernel 6.15 or later is refused.
      - One of V(auto), V(true) or V(false).
    type: raw
    default: auto
  synflood_guard_synproxy_sack_perm:
    description: Whether SYNPROXY announces SACK (only with the timestamp option).
    type: bool
    default: true
  synflood_guard_connlimit:
    description: Per-source limit of concurrent connections to the protected ports; 0 for no limit.
    type: int
    default: 0
  synflood_guard_drop_invalid:
    description:
      - Drop packets that conntrack classifies as invalid on the protected ports (mode C(synproxy), which needs it).
      - The drop is scoped to each SYNPROXY rule's matches; traffic on other ports is never dropped by it.
    type: bool
    default: true
  synflood_guard_timeouts:
    description:
      - Half-open timeouts, as conntrack knob names (short or full) to seconds or durations (C(30s)).
      - Shorter values empty the table faster after a flood that got through (kernel defaults 120/60).
    type: dict
    default:
      tcp_timeout_syn_sent: 30
      tcp_timeout_syn_recv: 30
  synflood_guard_sysctls:
    description:
      - Other conntrack knobs to set, merged over the ones the mode needs (short or full names).
      - C(tcp_loose=1) together with V(synproxy) is refused (every proxied connection would be reset).
    type: dict
    default: {}
  synflood_guard_tcp_syncookies:
    description:
      - Value set for C(net.ipv4.tcp_syncookies) (1 or 2) through C(netfilter.conntrack.conntrack_sysctl);
        every mode needs SYN cookies so a full SYN queue still answers real clients.
    type: int
    default: 1
    choices: [1, 2]
  synflood_guard_tcp_timestamps:
    description:
      - Value set for C(net.ipv4.tcp_timestamps) in mode V(synproxy) when the SYNPROXY timestamp option is used.
    type: int
    default: 1
    choices: [1, 2]
  synflood_guard_tcp_max_syn_backlog:
    description:
      - Floor for C(net.ipv4.tcp_max_syn_backlog); raised to this value when lower, never lowered.
    type: int
    default: 4096
  synflood_guard_headroom:
    description:
      - Also give the table headroom (global max and buckets) the way the C(netfilter.conntrack.tuning) role does,
        with O(synflood_guard_headroom_vars) - the tuning plan is made from the same read and checked with the rest
        before any change. Only in the initial network namespace.
    type: bool
    default: false
  synflood_guard_headroom_vars:
    description:
      - Variables of the tuning role for the headroom (only C(tuning_*) names, for example C(tuning_max),
        C(tuning_policy)), checked like the tuning role's own, over the host's own C(tuning_*) variables
        (group_vars, play vars, extra vars) and the tuning role's defaults.
      - C(tuning_persist) defaults to O(synflood_guard_persist).
      - They are used for this task only (no host facts), so they never outrank the play's own C(tuning_*)
        variables later in the run.
    type: dict
    default: {}
  synflood_guard_persist:
    description:
      - Persist the knobs (sysctl.d) and the rules (the collection's nft file) so they survive a reboot.
      - Must be V(false) on a host that is itself a network namespace (namespaces start from defaults).
    type: bool
    default: true
  synflood_guard_verify:
    description: Verify after applying (rules in place, knobs in force, headroom) and fail when not.
    type: bool
    default: true
  synflood_guard_warn_percent:
    description:
      - The one-line report and the fleet summary warn when the table is at least this full (percent of
        C(nf_conntrack_max)), naming what can still be done on that host.
    type: int
    default: 80
  synflood_guard_report_detail:
    description:
      - The task's message is the whole report per host instead of one line, and Ansible's default callback
        prints it (C(-v) shows the whole result anyway). The report is also the variable
        C(synflood_guard_report) after the role.
    type: bool
    default: false
  synflood_guard_absent_sysctls:
    description: The knobs and values V(absent) sets back (the kernel defaults).
    type: dict
    default:
      tcp_loose: 1
      tcp_timeout_syn_sent: 120
      tcp_timeout_syn_recv: 60
  _steps:
    description:
      - Internal, set by the action plugin; not for tasks. The changes to make on the host, in order, each with the
        options of its module (checked as that module checks them before any change).
    type: list
    elements: dict
    suboptions:
      name:
        description: The step's name (C(sysctl), C(rules), C(unpersist), C(headroom_sysctl)); its result's key.
        type: str
        required: true
      module:
        description: The module whose change this step makes.
        type: str
        required: true
        choices: [conntrack_notrack, conntrack_sysctl]
      args:
        description: That module's options.
        type: dict
        default: {}
'''

EXAMPLES = r'''
# The normal way: the role, whose one task is this module.
- name: Harden the web servers
  ansible.builtin.import_role:
    name: netfilter.conntrack.synflood_guard
  vars:
    synflood_guard_ports: [80, 443]

- name: The same task without the role, with headroom for the table
  netfilter.conntrack.conntrack_harden:
    synflood_guard_ports: [80, 443]
    synflood_guard_connlimit: 200
    synflood_guard_headroom: true
    synflood_guard_headroom_vars:
      tuning_policy: per_core

- name: Remove the hardening
  netfilter.conntrack.conntrack_harden:
    synflood_guard_state: absent
'''

RETURN = r'''
msg:
  description:
    - The host's one line (outcome, mode and protected ports, table usage, the near-full warning, the headroom's
      outcome), or why the task failed.
    - With O(synflood_guard_report_detail=true) the whole report (a dict) instead of the line.
  returned: always
  type: raw
  sample: "h7: changed tcp_loose 1->0, nft rules; synproxy ports 443; table 310/262144 (0.1%)"
report:
  description:
    - The host's report (also the role's variable C(synflood_guard_report)). Its keys include C(state), C(mode),
      C(kernel), C(netns_inode), C(protected_ports), C(synproxy_options), C(synproxy_timestamp_choice),
      C(synproxy_counters), C(knobs_set), C(tcp_before), C(rules_changed), C(knobs_changed), C(table), C(changes),
      C(warning), C(problem), C(line), and C(headroom) (the tuning report) with O(synflood_guard_headroom).
  returned: when the arguments are valid
  type: dict
calls:
  description:
    - The results of the read and of each change, by step - C(info), C(sysctl), C(rules)
      (as M(netfilter.conntrack.conntrack_notrack) returns it), C(unpersist) (V(absent) with O(synflood_guard_persist))
      and C(headroom_sysctl) - without their arguments, facts, diffs and bulk. A change put back after a later one
      failed has C(undone=true); the failed one has C(undone), the steps put back.
  returned: when the arguments are valid
  type: dict
diff:
  description: The diffs of the module calls.
  returned: when the calls returned some (C(--diff))
  type: raw
warnings:
  description: The modules' warnings, and the near-full warning naming what can still be done on that host.
  returned: when there are some
  type: list
  elements: str
'''

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._hardenspec import HARDEN_SPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import in_initial_namespace
from ansible_collections.netfilter.conntrack.plugins.module_utils._runner import new_module, run
from ansible_collections.netfilter.conntrack.plugins.module_utils._steps import STEP_SPEC, check_steps, run_steps


def main():
    argument_spec = dict(HARDEN_SPEC, _steps=dict(type='list', elements='dict', options=STEP_SPEC))
    module = new_module(argument_spec, supports_check_mode=True)

    def work(params, check_mode):
        if params['_steps'] is None:
            raise ConntrackError('_steps: conntrack_harden runs through its action plugin (the collection installed '
                                 'as a whole), which reads and plans on the controller; nothing was changed',
                                 option='_steps')
        checked = check_steps(params['_steps'])
        results, failure = run_steps(checked, check_mode, lambda argv: module.run_command(
            [module.get_bin_path(argv[0], required=True)] + argv[1:]), in_initial_namespace())
        for result in results.values():
            if not module._diff:  # pylint: disable=protected-access
                result.pop('diff', None)
        if failure:
            raise ConntrackError(failure, option='_steps', steps=results)
        return dict(changed=any(result.get('changed') for result in results.values()), steps=results)

    run(module, work)


if __name__ == '__main__':
    main()
