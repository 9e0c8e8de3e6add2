# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""synflood_guard's plan and report, one host at a time.

The role reads each host with one conntrack_info call and makes every change in one conntrack_harden module run
(its steps: the knobs as conntrack_sysctl sets them, the rules as conntrack_notrack sets them); everything between
and after those calls is here, in Python, unit-tested:

* ``conntrack_synflood_role``: the input checks, the checks against the host (SYNPROXY, kernel release,
  namespace) and the plan (the knobs, the rules, the SYNPROXY options);
* ``conntrack_synflood_report``: the verification (from the modules' results) and the report, with the one line
  per host (``line``) and the reason to fail the host (``problem``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_common import (
    NAMESPACE_LEVERS, as_bool, as_json, host_line, number, outcome, sysctl_changes, table_warning, usage)

LOOSE_KEYS = ('tcp_loose', 'nf_conntrack_tcp_loose', 'net.netfilter.nf_conntrack_tcp_loose')


def _ports(values, name):
    out = []
    for value in values or []:
        if isinstance(value, bool) or number(value) is None:
            raise AnsibleFilterError('%s must be TCP port numbers, got %s' % (name, as_json(value)))
        out.append(int(value))
    return out


def _version(release):
    match = re.match(r'^([0-9]+)\.([0-9]+)', str(release or ''))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def synflood_input_error(rv, ports4, ports6):
    """The message for the first bad synflood_guard_* value, or None (the same checks as before any change)."""
    bad = sorted(set(p for p in ports4 + ports6 if p < 1 or p > 65535))
    if bad:
        return ('synflood_guard_ports (and _ipv4/_ipv6) must be TCP ports 1-65535; out of range: %s'
                % ', '.join(str(p) for p in bad))
    stamp = str(rv.get('synflood_guard_synproxy_timestamp', 'auto')).lower()
    mss, wscale = number(rv.get('synflood_guard_synproxy_mss', 1460)), number(rv.get('synflood_guard_synproxy_wscale', 7))
    if stamp not in ('auto', 'true', 'false', 'yes', 'no') or mss is None or not 536 <= mss <= 65535 or \
            wscale is None or not 0 <= wscale <= 14:
        return ('SYNPROXY options out of range: synflood_guard_synproxy_timestamp must be auto, true or false '
                '(got %s), synflood_guard_synproxy_mss 536-65535 (got %s), synflood_guard_synproxy_wscale 0-14 (got %s)'
                % (rv.get('synflood_guard_synproxy_timestamp'), rv.get('synflood_guard_synproxy_mss'),
                   rv.get('synflood_guard_synproxy_wscale')))
    connlimit = number(rv.get('synflood_guard_connlimit', 0))
    if connlimit is None or connlimit < 0:
        return ('synflood_guard_connlimit must be 0 (no limit) or a positive number of connections, got %s'
                % rv.get('synflood_guard_connlimit'))
    mode = rv.get('synflood_guard_mode', 'synproxy')
    loose = [str(v).lower() for k, v in (rv.get('synflood_guard_sysctls') or {}).items() if k in LOOSE_KEYS]
    if mode == 'synproxy' and [v for v in loose if v not in ('0', 'false', 'no', 'off')]:
        return ('synflood_guard_sysctls sets tcp_loose=%s with synflood_guard_mode=synproxy: SYNPROXY needs '
                'nf_conntrack_tcp_loose=0 (with 1 conntrack picks up the client\'s ACK as a new connection and every '
                'proxied connection is reset). Remove tcp_loose from synflood_guard_sysctls (the role sets 0) or '
                'choose mode notrack or sysctl_only.' % ','.join(loose))
    if connlimit and (not (ports4 + ports6) or mode == 'sysctl_only'):
        return ('synflood_guard_connlimit=%s needs protected ports (synflood_guard_ports) and a mode with rules '
                '(synproxy or notrack), got mode %s and %d ports' % (connlimit, mode, len(ports4 + ports6)))
    wrong = sorted(k for k in (rv.get('synflood_guard_headroom_vars') or {}) if not str(k).startswith('tuning_'))
    if wrong:
        return ('synflood_guard_headroom_vars must only hold variables of the tuning role (tuning_*), got: %s'
                % ', '.join(wrong))
    return None


def _synflood_host_error(rv, kernel, release, broken_from, stamp_on):
    """Checks against the host (still before any change), or None."""
    state, mode = rv.get('synflood_guard_state', 'present'), rv.get('synflood_guard_mode', 'synproxy')
    initial = bool(kernel.get('initial_namespace', True))
    if state == 'present' and mode == 'synproxy' and not kernel.get('synproxy'):
        return ('synflood_guard_mode=synproxy but the kernel %s of this host has no nft SYNPROXY (no '
                '/proc/net/stat/synproxy and no nft_synproxy module in /lib/modules/%s/modules.dep). Use '
                'synflood_guard_mode=notrack or sysctl_only on this host, or a kernel with CONFIG_NFT_SYNPROXY.'
                % (release, release))
    if state == 'present' and mode == 'synproxy' and stamp_on and _version(release) >= _version(broken_from):
        return ('synflood_guard_synproxy_timestamp=true on kernel %s: from Linux %s on the local stack rejects the '
                'TSEcr of the ACK that SYNPROXY forwards (server-speaks-first services never get the handshake, '
                'others stall now and then). Use auto or false.' % (release, broken_from))
    if not initial and as_bool(rv.get('synflood_guard_persist', True)):
        return ('synflood_guard_persist=true but this host is a network namespace, not the initial one: files applied '
                'at boot never reach a namespace (it starts from the kernel defaults). Set synflood_guard_persist=false '
                'here and apply the role again whenever the namespace is created.')
    if state == 'present' and not initial and as_bool(rv.get('synflood_guard_headroom', False)):
        return ('synflood_guard_headroom=true but this host is a network namespace: nf_conntrack_max and the hash size '
                'are global and only writable in the initial namespace. Set synflood_guard_headroom=false here and '
                'size the table on the host that owns the namespaces.')
    return None


def conntrack_synflood_role(info, role_vars, broken_from='6.15', kernel_overrides=None):
    """synflood_guard's plan for one host from its conntrack_info result (``kernel``: release, initial namespace,
    SYNPROXY availability, the TCP stack knobs) and every synflood_guard_* value.

    Returns ``error`` (input or host check that failed, else None), ``settings`` (the one conntrack_sysctl call),
    ``rules`` and ``drop_invalid`` (the one conntrack_notrack call), ``ports_ipv4``/``ports_ipv6``,
    ``synproxy_options``, ``timestamp`` and ``timestamp_why``, ``tuning_vars`` (for the headroom include)."""
    rv = dict(role_vars or {})
    info = info or {}
    kernel = dict(info.get('kernel') or {})
    kernel.update(kernel_overrides or {})
    release = kernel.get('release') or ''
    state, mode = rv.get('synflood_guard_state', 'present'), rv.get('synflood_guard_mode', 'synproxy')
    plan = {'error': None, 'settings': {}, 'rules': [], 'drop_invalid': False, 'ports_ipv4': [], 'ports_ipv6': [],
            'synproxy_options': {}, 'timestamp': False, 'timestamp_why': '', 'release': release,
            'absent_settings': {}, 'unpersist_settings': {},
            'tuning_vars': dict({'tuning_persist': as_bool(rv.get('synflood_guard_persist', True))},
                                **(rv.get('synflood_guard_headroom_vars') or {}))}
    try:
        common = _ports(rv.get('synflood_guard_ports'), 'synflood_guard_ports')
        ports4 = sorted(set(common + _ports(rv.get('synflood_guard_ports_ipv4'), 'synflood_guard_ports_ipv4')))
        ports6 = sorted(set(common + _ports(rv.get('synflood_guard_ports_ipv6'), 'synflood_guard_ports_ipv6')))
    except AnsibleFilterError as exc:
        return dict(plan, error=str(exc))
    plan.update(ports_ipv4=ports4, ports_ipv6=ports6)
    if info.get('failed'):
        return dict(plan, error='reading the table failed: %s' % info.get('msg'))
    stamp_given = str(rv.get('synflood_guard_synproxy_timestamp', 'auto')).lower()
    broken = _version(release) >= _version(broken_from)
    stamp_on = (not broken) if stamp_given == 'auto' else stamp_given in ('true', 'yes')
    error = synflood_input_error(rv, ports4, ports6) or _synflood_host_error(rv, kernel, release, broken_from, stamp_on)
    if error:
        return dict(plan, error=error)
    if broken:
        why = ('kernel %s >= %s: the local stack rejects the TSEcr of the ACK SYNPROXY forwards, so timestamp is off '
               '(cookies carry the MSS only: no window scaling, no SACK)' % (release, broken_from))
    else:
        why = 'kernel %s < %s: timestamp on, cookies carry window scaling and SACK' % (release, broken_from)
    plan.update(timestamp=stamp_on, timestamp_why=why)
    plan['absent_settings'] = dict(rv.get('synflood_guard_absent_sysctls') or {})
    unpersist = dict(plan['absent_settings'])
    unpersist.update(rv.get('synflood_guard_timeouts') or {})
    unpersist.update(rv.get('synflood_guard_sysctls') or {})
    plan['unpersist_settings'] = unpersist
    if state != 'present':
        return plan
    tcp = kernel.get('tcp') or {}
    settings = dict(rv.get('synflood_guard_timeouts') or {})
    if mode == 'synproxy':
        settings['tcp_loose'] = 0
    settings['net.ipv4.tcp_syncookies'] = int(rv.get('synflood_guard_tcp_syncookies', 1))
    if mode == 'synproxy' and stamp_on:
        settings['net.ipv4.tcp_timestamps'] = int(rv.get('synflood_guard_tcp_timestamps', 1))
    backlog = int(rv.get('synflood_guard_tcp_max_syn_backlog', 4096))
    if number(tcp.get('tcp_max_syn_backlog')) is not None and int(tcp['tcp_max_syn_backlog']) < backlog:
        settings['net.ipv4.tcp_max_syn_backlog'] = backlog
    settings.update(rv.get('synflood_guard_sysctls') or {})
    options = {'mss': int(rv.get('synflood_guard_synproxy_mss', 1460)), 'timestamp': stamp_on}
    if stamp_on:
        options.update(wscale=int(rv.get('synflood_guard_synproxy_wscale', 7)),
                       sack_perm=as_bool(rv.get('synflood_guard_synproxy_sack_perm', True)))
    else:
        options['sack_perm'] = False
    rules = []
    if mode != 'sysctl_only':
        if ports4 == ports6 and ports4:
            groups = [{'ports': ports4}]
        else:
            groups = ([{'family': 'ipv4', 'ports': ports4}] if ports4 else []) + \
                     ([{'family': 'ipv6', 'ports': ports6}] if ports6 else [])
        connlimit = int(rv.get('synflood_guard_connlimit', 0))
        for group in groups:
            rule = {'proto': 'tcp', 'dport': group['ports']}
            if 'family' in group:
                rule['family'] = group['family']
            if mode == 'synproxy':
                rule.update(synproxy=True, synproxy_options=options)
            if connlimit > 0:
                rule['connlimit'] = connlimit
            rules.append(rule)
    plan.update(settings=settings, rules=rules, synproxy_options=options if mode == 'synproxy' else {},
                drop_invalid=as_bool(rv.get('synflood_guard_drop_invalid', True)) and mode == 'synproxy' and bool(rules))
    return plan


def conntrack_synflood_report(plan, info, sysctl_result, rules_result, role_vars, check_mode=False, warn_percent=80,
                              host=''):
    """synflood_guard's verification (from the modules' results: knobs read back, rules read back) and report, with
    the one line per host (``line``) and the reason to fail the host (``problem``)."""
    plan, info, rv = plan or {}, info or {}, role_vars or {}
    sysctl_result, rules_result = sysctl_result or {}, rules_result or {}
    kernel = info.get('kernel') or {}
    state, mode = rv.get('synflood_guard_state', 'present'), rv.get('synflood_guard_mode', 'synproxy')
    problem = plan.get('error')
    for result in (sysctl_result, rules_result):
        if problem is None and result.get('failed'):
            problem = str(result.get('msg'))
    if problem is None and as_bool(rv.get('synflood_guard_verify', True)) and not check_mode:
        wrong = list(sysctl_result.get('mismatch') or [])
        if rules_result and not rules_result.get('skipped') and rules_result.get('in_force') is False:
            wrong.append('the nft rules read back differ from what was applied (something else changed the '
                         'collection table)')
        if wrong:
            problem = 'The hardening is not fully in force on this host: %s' % '; '.join(wrong)
    count, limit = number(info.get('count')) or 0, number(info.get('max')) or 0
    stats = info.get('stats') or {}
    changes = sysctl_changes(sysctl_result)
    if rules_result.get('changed'):
        changes.append('nft rules')
    warning = table_warning(count, limit, warn_percent, bool(kernel.get('initial_namespace', True)),
                            NAMESPACE_LEVERS.replace('tuning_timeouts', 'synflood_guard_timeouts'))
    ports = {'ipv4': plan.get('ports_ipv4') if state == 'present' and mode != 'sysctl_only' else [],
             'ipv6': plan.get('ports_ipv6') if state == 'present' and mode != 'sysctl_only' else []}
    report = {
        'state': state,
        'mode': mode if state == 'present' else 'none',
        'kernel': plan.get('release'),
        'netns_inode': kernel.get('netns_inode'),
        'protected_ports': ports,
        'synproxy_options': plan.get('synproxy_options') if state == 'present' else {},
        'synproxy_timestamp_choice': plan.get('timestamp_why') if mode == 'synproxy' and state == 'present' else '',
        'synproxy_counters': kernel.get('synproxy_counters') or {},
        'knobs_set': sysctl_result.get('settings') or {},
        'tcp_before': kernel.get('tcp') or {},
        'rules_changed': bool(rules_result.get('changed')),
        'knobs_changed': bool(sysctl_result.get('changed')),
        'changed': bool(rules_result.get('changed') or sysctl_result.get('changed')),
        'table': {'count': count, 'max': limit, 'usage_percent': usage(count, limit),
                  'headroom': limit - count if limit else None, 'drop': stats.get('drop'),
                  'early_drop': stats.get('early_drop'), 'insert_failed': stats.get('insert_failed')},
        'changes': changes,
        'warning': warning,
        'problem': problem,
    }
    head = outcome(problem, changes, check_mode)
    what = report['mode'] if state == 'present' else 'absent'
    guarded = sorted(set(ports['ipv4'] + ports['ipv6']))
    line = '%s; %s%s; table %d/%d (%s%%)' % (head, what, (' ports %s' % ','.join(str(p) for p in guarded)) if guarded else '',
                                             count, limit, report['table']['usage_percent'])
    report['line'] = host_line(host, line, warning)
    return report


class FilterModule(object):
    """synflood_guard's planning, verification and reporting."""

    def filters(self):
        return {
            'conntrack_synflood_role': conntrack_synflood_role,
            'conntrack_synflood_report': conntrack_synflood_report,
        }
