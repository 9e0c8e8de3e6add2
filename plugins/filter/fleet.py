# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' logic at fleet scale: plan from one conntrack_info result, verify from the modules' own results,
say one line per host and sum the fleet up.

The roles (tuning, synflood_guard) do one conntrack_info call, one conntrack_sysctl call and (synflood_guard)
one conntrack_notrack call per host; everything between and after those calls is here, in Python, unit-tested:

* ``conntrack_tuning_role``: the tuning role's input checks and sizing plan (``sizing.conntrack_tuning_plan``);
* ``conntrack_tuning_report``: the tuning role's verification (from conntrack_sysctl's ``in_force``/``persisted``)
  and its report, with the one line per host (``line``) and the reason to fail the host (``problem``);
* ``conntrack_synflood_role`` / ``conntrack_synflood_report``: the same for synflood_guard;
* ``conntrack_fleet_summary``: the lines of the fleet summary, from the registered results in ``hostvars``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.netfilter.conntrack.plugins.filter.sizing import conntrack_tuning_plan

MAX_KEY = 'net.netfilter.nf_conntrack_max'
WHOLE = re.compile(r'^[0-9]+$')
# what a host that is a network namespace can do about a full table (max is global, read-only there)
NAMESPACE_LEVERS = ('max cannot be raised from inside a network namespace: shorten the per-namespace timeouts '
                    '(tuning_timeouts, e.g. tcp_timeout_established, udp_timeout), flush stale entries with a '
                    'targeted conntrack_flush, or raise nf_conntrack_max on the machine that hosts it')


def _outcome(problem, changes, check_mode):
    """The start of a host's one line: FAILED and why, what changed (would change in check mode), or no change."""
    if problem:
        return 'FAILED %s' % problem
    if changes:
        return '%s %s' % ('would change' if check_mode else 'changed', ', '.join(changes))
    return 'no change'


def _bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't')


def _json(value):
    return json.dumps(value)


def _whole(value, minimum=1):
    """True for a whole number (int or digits) of at least ``minimum``; never for a boolean."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= minimum
    return bool(WHOLE.match(str(value))) and int(str(value)) >= minimum


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- tuning -----------------------------------------------------------------------------------------

def tuning_input_error(role_vars):
    """The message for the first bad tuning_* value (the checks the role documents), or None."""
    tmax = role_vars.get('tuning_max', 'auto')
    if tmax != 'auto' and not _whole(tmax):
        return 'tuning_max is %s: give auto or a whole number of entries (1 or more), e.g. tuning_max: 1048576' % _json(tmax)
    if role_vars.get('tuning_policy', 'kernel') == 'fixed' and tmax == 'auto':
        return 'tuning_policy is fixed but tuning_max is auto: set tuning_max to a number, or choose kernel or per_core'
    buckets = role_vars.get('tuning_buckets', 'auto')
    if buckets not in ('auto', 'keep') and not _whole(buckets):
        return 'tuning_buckets is %s: give auto, keep or a whole number of buckets (1 or more)' % _json(buckets)
    numbers = dict((name, _number(role_vars.get(name, default))) for name, default in (
        ('tuning_per_core', 32768), ('tuning_min', 131072), ('tuning_max_ceiling', 0), ('tuning_bucket_ratio', 1),
        ('tuning_warn_percent', 80)))
    if any(numbers[n] is None or numbers[n] < 0 for n in ('tuning_per_core', 'tuning_min', 'tuning_max_ceiling')) or \
            numbers['tuning_bucket_ratio'] is None or numbers['tuning_bucket_ratio'] < 1:
        return ('tuning_per_core (%s), tuning_min (%s) and tuning_max_ceiling (%s) must be 0 or more, '
                'tuning_bucket_ratio (%s) 1 or more' % tuple(role_vars.get(n) for n in (
                    'tuning_per_core', 'tuning_min', 'tuning_max_ceiling', 'tuning_bucket_ratio')))
    if numbers['tuning_warn_percent'] is None or not 0 <= numbers['tuning_warn_percent'] <= 100:
        return 'tuning_warn_percent is %s: give a percentage 0-100' % _json(role_vars.get('tuning_warn_percent'))
    return None


def _info_error(info, load_module):
    """A message when the conntrack_info call failed (it runs with failed_when: false), else None.

    nf_conntrack not loaded yet is no error when the role may load it (conntrack_sysctl load_module)."""
    if not info.get('failed'):
        return None
    msg = str(info.get('msg') or 'conntrack_info failed')
    if load_module and 'connection tracking is not active' in msg:
        return None
    return 'reading the table failed: %s' % msg


def conntrack_tuning_role(info, role_vars, profiles=None, memtotal_mb=None, vcpus=None):
    """The tuning role's plan for one host: ``role_vars`` (every tuning_* value in force, already merged with what
    a caller such as synflood_guard passed) checked, then sized with ``conntrack_tuning_plan``.

    Returns the plan's keys plus ``error`` (a message naming the variable, or None), ``timeouts`` (profile merged
    with the overrides) and ``args`` (the conntrack_sysctl options of the one call that applies everything)."""
    info = info or {}
    role_vars = dict(role_vars or {})
    profiles = profiles or {}
    load_module = _bool(role_vars.get('tuning_load_module', True))
    profile = role_vars.get('tuning_timeouts_profile', 'default')
    timeouts = dict(profiles.get(profile) or {})
    timeouts.update(role_vars.get('tuning_timeouts') or {})
    error = tuning_input_error(role_vars) or _info_error(info, load_module)
    if error is None and profile not in profiles:
        error = 'tuning_timeouts_profile is %s: choose one of %s' % (_json(profile), ', '.join(sorted(profiles)))
    plan = {'max': None, 'buckets': None, 'settings': {}, 'notes': [], 'persist': False, 'refusal': None,
            'global_ok': bool((info.get('kernel') or {}).get('initial_namespace', True)),
            'by_kernel': None, 'by_cpus': None}
    if error is None:
        # not loaded yet (the conntrack_sysctl call loads it): nothing in the table, the kernel facts of the failure
        sized = info if not info.get('failed') else {'count': 0, 'max': 0, 'buckets': 0, 'kernel': info.get('kernel') or {}}
        raise_only = _bool(role_vars.get('tuning_raise_only', True)) and not info.get('failed')
        try:
            plan = conntrack_tuning_plan(
                sized, memtotal_mb=memtotal_mb, vcpus=vcpus, max=role_vars.get('tuning_max', 'auto'),
                policy=role_vars.get('tuning_policy', 'kernel'), per_core=role_vars.get('tuning_per_core', 32768),
                min=role_vars.get('tuning_min', 131072), ceiling=role_vars.get('tuning_max_ceiling', 0),
                raise_only=raise_only, buckets=role_vars.get('tuning_buckets', 'auto'),
                bucket_ratio=role_vars.get('tuning_bucket_ratio', 1), timeouts=timeouts,
                persist=_bool(role_vars.get('tuning_persist', True)), namespace=role_vars.get('tuning_namespace') or '',
                force_lower=_bool(role_vars.get('tuning_force_lower', False)))
        except AnsibleFilterError as exc:
            error = str(exc)
    plan = dict(plan, error=error, timeouts=timeouts)
    plan['args'] = {
        'settings': plan['settings'], 'persist': plan['persist'],
        'force': _bool(role_vars.get('tuning_force_lower', False)), 'load_module': load_module,
        'namespace': role_vars.get('tuning_namespace') or None,
        'sysctl_file': role_vars.get('tuning_sysctl_file') or None,
        'modprobe_file': role_vars.get('tuning_modprobe_file') or None,
        'modules_load_file': role_vars.get('tuning_modules_load_file') or None,
    }
    plan['apply'] = error is None and plan['refusal'] is None and bool(plan['settings'])
    return plan


def _changes(result):
    """'name old->new' for every knob conntrack_sysctl changed (short names)."""
    out = []
    for name, item in sorted(((result or {}).get('settings') or {}).items()):
        if isinstance(item, dict) and item.get('changed'):
            short = name.replace('net.netfilter.nf_conntrack_', '').replace('net.ipv4.', '')
            out.append('%s %s->%s' % (short, item.get('old'), item.get('new')))
    files = (result or {}).get('files') or {}
    out.extend('wrote %s' % path for path in files.get('written') or [])
    out.extend('removed %s' % path for path in files.get('removed') or [])
    return out


def _usage(count, limit):
    return round(100.0 * count / limit, 1) if limit else 0.0


def table_warning(count, limit, warn_percent, initial_namespace, levers):
    """A warning when the table is at or above ``warn_percent`` full, naming what can still be done, else None."""
    usage = _usage(count, limit)
    if not limit or usage < float(warn_percent):
        return None
    text = 'WARNING table %s%% full (%d/%d)' % (usage, count, limit)
    if not initial_namespace:
        return '%s; %s' % (text, levers)
    return ('%s even with nf_conntrack_max %d: raise tuning_max (or tuning_policy/tuning_per_core), shorten the '
            'timeouts, or flush stale entries with a targeted conntrack_flush' % (text, limit))


def conntrack_tuning_report(plan, result, info, check_mode=False, verify=True, warn_percent=80, host=''):
    """The tuning role's verification and report for one host.

    ``result`` is the registered conntrack_sysctl result (or a skipped result). Verification comes from it:
    every value read back (``in_force``), the sysctl.d file read back (``persisted``). Returns the report dict of
    the role's documentation plus ``line`` (one line for the default output) and ``problem`` (why the host fails,
    or None)."""
    plan = plan or {}
    result = result or {}
    info = info or {}
    kernel = info.get('kernel') or {}
    initial = bool(kernel.get('initial_namespace', True))
    settings = result.get('settings') or {}
    problem = plan.get('error') or plan.get('refusal')
    if problem is None and result.get('failed'):
        problem = str(result.get('msg'))
    applied = bool(plan.get('apply')) and not result.get('skipped')
    if problem is None and applied and _bool(verify) and not check_mode:
        if result.get('in_force') is False:
            problem = 'not in force after the write: %s' % '; '.join(result.get('mismatch') or ['(no detail)'])
        elif plan.get('persist') and not result.get('persisted'):
            problem = 'asked to persist, but conntrack_sysctl did not confirm the sysctl.d file'
    now_max = _number((settings.get(MAX_KEY) or {}).get('new')) if MAX_KEY in settings else None
    limit = now_max if now_max is not None else (_number(info.get('max')) or 0)
    count = _number(info.get('count')) or 0
    buckets_key = 'net.netfilter.nf_conntrack_buckets'
    buckets = _number((settings.get(buckets_key) or {}).get('new')) if buckets_key in settings else info.get('buckets')
    timeouts = {}
    for name in (plan.get('timeouts') or {}):
        short = re.sub(r'^(net[./]netfilter[./])?(nf_conntrack_)?', '', str(name))
        full = 'net.netfilter.nf_conntrack_' + short
        value = (settings.get(full) or {}).get('new') if full in settings else (info.get('sysctls') or {}).get(full)
        timeouts[short] = value
    changes = _changes(result)
    warning = table_warning(count, limit, warn_percent, initial, NAMESPACE_LEVERS)
    report = {
        'changed': bool(result.get('changed')),
        'check_mode': bool(check_mode),
        'max': limit,
        'max_wanted': plan.get('max'),
        'count': count,
        'headroom': limit - count if limit else None,
        'headroom_percent': round(100.0 - _usage(count, limit), 1) if limit else 100.0,
        'usage_percent': _usage(count, limit),
        'buckets': buckets,
        'buckets_wanted': plan.get('buckets'),
        'global_knobs': 'applied' if plan.get('global_ok') else 'skipped (network namespace)',
        'persisted': result.get('persisted') or (False if not check_mode else bool(plan.get('persist'))),
        'in_force': result.get('in_force'),
        'netns_inode': kernel.get('netns_inode'),
        'notes': plan.get('notes') or [],
        'timeouts': timeouts,
        'changes': changes,
        'warning': warning,
        'problem': problem,
    }
    head = _outcome(problem, changes, check_mode)
    line = '%s; table %d/%d (%s%%)' % (head, count, limit, report['usage_percent'])
    if report['persisted'] and not problem:
        line += '; would persist' if check_mode else '; persisted'
    if warning:
        line += '; ' + warning
    report['line'] = ('%s: %s' % (host, line)) if host else line
    return report


# --- synflood_guard -----------------------------------------------------------------------------------

LOOSE_KEYS = ('tcp_loose', 'nf_conntrack_tcp_loose', 'net.netfilter.nf_conntrack_tcp_loose')


def _ports(values, name):
    out = []
    for value in values or []:
        if isinstance(value, bool) or _number(value) is None:
            raise AnsibleFilterError('%s must be TCP port numbers, got %s' % (name, _json(value)))
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
    mss, wscale = _number(rv.get('synflood_guard_synproxy_mss', 1460)), _number(rv.get('synflood_guard_synproxy_wscale', 7))
    if stamp not in ('auto', 'true', 'false', 'yes', 'no') or mss is None or not 536 <= mss <= 65535 or \
            wscale is None or not 0 <= wscale <= 14:
        return ('SYNPROXY options out of range: synflood_guard_synproxy_timestamp must be auto, true or false '
                '(got %s), synflood_guard_synproxy_mss 536-65535 (got %s), synflood_guard_synproxy_wscale 0-14 (got %s)'
                % (rv.get('synflood_guard_synproxy_timestamp'), rv.get('synflood_guard_synproxy_mss'),
                   rv.get('synflood_guard_synproxy_wscale')))
    connlimit = _number(rv.get('synflood_guard_connlimit', 0))
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
    if not initial and _bool(rv.get('synflood_guard_persist', True)):
        return ('synflood_guard_persist=true but this host is a network namespace, not the initial one: files applied '
                'at boot never reach a namespace (it starts from the kernel defaults). Set synflood_guard_persist=false '
                'here and apply the role again whenever the namespace is created.')
    if state == 'present' and not initial and _bool(rv.get('synflood_guard_headroom', False)):
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
            'tuning_vars': dict({'tuning_persist': _bool(rv.get('synflood_guard_persist', True))},
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
    if _number(tcp.get('tcp_max_syn_backlog')) is not None and int(tcp['tcp_max_syn_backlog']) < backlog:
        settings['net.ipv4.tcp_max_syn_backlog'] = backlog
    settings.update(rv.get('synflood_guard_sysctls') or {})
    options = {'mss': int(rv.get('synflood_guard_synproxy_mss', 1460)), 'timestamp': stamp_on}
    if stamp_on:
        options.update(wscale=int(rv.get('synflood_guard_synproxy_wscale', 7)),
                       sack_perm=_bool(rv.get('synflood_guard_synproxy_sack_perm', True)))
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
                drop_invalid=_bool(rv.get('synflood_guard_drop_invalid', True)) and mode == 'synproxy' and bool(rules))
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
    if problem is None and _bool(rv.get('synflood_guard_verify', True)) and not check_mode:
        wrong = list(sysctl_result.get('mismatch') or [])
        if rules_result and not rules_result.get('skipped') and rules_result.get('in_force') is False:
            wrong.append('the nft rules read back differ from what was applied (something else changed the '
                         'collection table)')
        if wrong:
            problem = 'The hardening is not fully in force on this host: %s' % '; '.join(wrong)
    count, limit = _number(info.get('count')) or 0, _number(info.get('max')) or 0
    stats = info.get('stats') or {}
    changes = _changes(sysctl_result)
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
        'table': {'count': count, 'max': limit, 'usage_percent': _usage(count, limit),
                  'headroom': limit - count if limit else None, 'drop': stats.get('drop'),
                  'early_drop': stats.get('early_drop'), 'insert_failed': stats.get('insert_failed')},
        'changes': changes,
        'warning': warning,
        'problem': problem,
    }
    head = _outcome(problem, changes, check_mode)
    what = report['mode'] if state == 'present' else 'absent'
    guarded = sorted(set(ports['ipv4'] + ports['ipv6']))
    line = '%s; %s%s; table %d/%d (%s%%)' % (head, what, (' ports %s' % ','.join(str(p) for p in guarded)) if guarded else '',
                                             count, limit, report['table']['usage_percent'])
    if warning:
        line += '; ' + warning
    report['line'] = ('%s: %s' % (host, line)) if host else line
    return report


# --- the fleet ------------------------------------------------------------------------------------------

def _host_record(hostvars, host, role, warn_percent):
    """(changed, refused/failed, usage, initial namespace, line) of one host from its registered results."""
    facts = hostvars.get(host) or {}
    prefix = '__tuning' if role == 'tuning' else '__synflood_guard'
    info = facts.get(prefix + '_info') or {}
    reported = facts.get(prefix + '_reported')
    if role == 'tuning':
        results = [facts.get('__tuning_result') or {}]
    else:
        results = [facts.get('__synflood_guard_sysctl_result') or {}, facts.get('__synflood_guard_rules_result') or {}]
    changed = any(r.get('changed') for r in results)
    failed = reported is None or bool(reported.get('failed')) or any(r.get('failed') for r in results)
    count = _number(info.get('count')) or 0
    limit = _number(info.get('max')) or 0
    settings = results[0].get('settings') or {}
    if MAX_KEY in settings:
        limit = _number(settings[MAX_KEY].get('new')) or limit
    line = reported.get('msg') if isinstance(reported, dict) else None
    if isinstance(line, dict):
        line = line.get('line')
    initial = bool((info.get('kernel') or {}).get('initial_namespace', True))
    return changed, failed, _usage(count, limit), initial, line


def conntrack_fleet_summary(hostvars, hosts, role='tuning', warn_percent=80, check_mode=False):
    """The fleet summary's lines: how many hosts changed, failed or were refused, were above ``warn_percent``,
    and are network namespaces, naming the hosts that need a look (fullest first)."""
    if role not in ('tuning', 'synflood_guard'):
        raise AnsibleFilterError('role must be tuning or synflood_guard, got %r' % (role,))
    records = dict((host, _host_record(hostvars, host, role, warn_percent)) for host in hosts or [])
    changed = sorted(h for h, r in records.items() if r[0])
    failed = sorted(h for h, r in records.items() if r[1])
    warned = sorted((h for h, r in records.items() if r[2] >= float(warn_percent)), key=lambda h: -records[h][2])
    namespaces = [h for h, r in records.items() if not r[3]]
    verb = 'would change' if check_mode else 'changed'
    lines = ['%s: %d hosts, %d %s, %d failed or refused, %d at or above %s%% of nf_conntrack_max'
             % (role, len(records), len(changed), verb, len(failed), len(warned), warn_percent)]

    def names(items, limit=20):
        shown = ', '.join(items[:limit])
        return shown + (' and %d more' % (len(items) - limit) if len(items) > limit else '')

    if failed:
        lines.append('failed or refused: %s' % names(failed))
    for host in warned[:20]:
        lines.append('near the limit: %s' % (records[host][4] or '%s: %s%% full' % (host, records[host][2])))
    if len(warned) > 20:
        lines.append('near the limit: %d more hosts' % (len(warned) - 20))
    if namespaces and role == 'tuning':
        lines.append('%d hosts are network namespaces: global knobs skipped (network namespace) there, nf_conntrack_max '
                     'and the buckets belong to the machine that hosts them; nothing persisted there' % len(namespaces))
    return lines


class FilterModule(object):
    """The roles' planning, verification and reporting at fleet scale."""

    def filters(self):
        return {
            'conntrack_tuning_role': conntrack_tuning_role,
            'conntrack_tuning_report': conntrack_tuning_report,
            'conntrack_synflood_role': conntrack_synflood_role,
            'conntrack_synflood_report': conntrack_synflood_report,
            'conntrack_fleet_summary': conntrack_fleet_summary,
        }
