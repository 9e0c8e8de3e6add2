# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of conntrack_harden, shared by its action plugin (which acts on them) and its module (the host-side
half, whose argument spec must match the documentation)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The options of conntrack_harden: the synflood_guard role's variables (roles/synflood_guard/meta/argument_specs.yml).
HARDEN_SPEC = {
    'synflood_guard_state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
    'synflood_guard_mode': {'type': 'str', 'default': 'synproxy', 'choices': ['synproxy', 'notrack', 'sysctl_only']},
    'synflood_guard_ports': {'type': 'list', 'elements': 'int', 'default': []},
    'synflood_guard_ports_ipv4': {'type': 'list', 'elements': 'int', 'default': []},
    'synflood_guard_ports_ipv6': {'type': 'list', 'elements': 'int', 'default': []},
    'synflood_guard_synproxy_mss': {'type': 'int', 'default': 1460},
    'synflood_guard_synproxy_wscale': {'type': 'int', 'default': 7},
    'synflood_guard_synproxy_timestamp': {'type': 'raw', 'default': 'auto'},
    'synflood_guard_synproxy_sack_perm': {'type': 'bool', 'default': True},
    'synflood_guard_connlimit': {'type': 'int', 'default': 0},
    'synflood_guard_drop_invalid': {'type': 'bool', 'default': True},
    'synflood_guard_timeouts': {'type': 'dict', 'default': {'tcp_timeout_syn_sent': 30, 'tcp_timeout_syn_recv': 30}},
    'synflood_guard_sysctls': {'type': 'dict', 'default': {}},
    'synflood_guard_tcp_syncookies': {'type': 'int', 'default': 1, 'choices': [1, 2]},
    'synflood_guard_tcp_timestamps': {'type': 'int', 'default': 1, 'choices': [1, 2]},
    'synflood_guard_tcp_max_syn_backlog': {'type': 'int', 'default': 4096},
    'synflood_guard_headroom': {'type': 'bool', 'default': False},
    'synflood_guard_headroom_vars': {'type': 'dict', 'default': {}},
    'synflood_guard_persist': {'type': 'bool', 'default': True},
    'synflood_guard_verify': {'type': 'bool', 'default': True},
    'synflood_guard_absent_sysctls': {'type': 'dict', 'default': {
        'tcp_loose': 1, 'tcp_timeout_syn_sent': 120, 'tcp_timeout_syn_recv': 60}},
    'synflood_guard_warn_percent': {'type': 'int', 'default': 80},
    'synflood_guard_report_detail': {'type': 'bool', 'default': False},
}
