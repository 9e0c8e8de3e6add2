# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tuning role's plan and report, one host at a time.

The role does one conntrack_info call and one conntrack_sysctl call per host; everything between and after
those calls is here, in Python, unit-tested:

* ``conntrack_tuning_role``: the tuning role's input checks and sizing plan (``sizing.conntrack_tuning_plan``);
* ``conntrack_tuning_report``: the tuning role's verification (from conntrack_sysctl's ``in_force``/``persisted``)
  and its report, with the one line per host (``line``) and the reason to fail the host (``problem``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.netfilter.conntrack.plugins.filter.sizing import conntrack_tuning_plan
from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_common import (
    MAX_KEY, NAMESPACE_LEVERS, as_bool, as_json, host_line, is_whole, number, outcome, sysctl_changes, table_warning,
    usage)


def tuning_input_error(role_vars):
    """The message for the first bad tuning_* value (the checks the role documents), or None."""
    tmax = role_vars.get('tuning_max', 'auto')
    if tmax != 'auto' and not is_whole(tmax):
        return 'tuning_max is %s: give auto or a whole number of entries (1 or more), e.g. tuning_max: 1048576' % as_json(tmax)
    if role_vars.get('tuning_policy', 'kernel') == 'fixed' and tmax == 'auto':
        return 'tuning_policy is fixed but tuning_max is auto: set tuning_max to a number, or choose kernel or per_core'
    buckets = role_vars.get('tuning_buckets', 'auto')
    if buckets not in ('auto', 'keep') and not is_whole(buckets):
        return 'tuning_buckets is %s: give auto, keep or a whole number of buckets (1 or more)' % as_json(buckets)
    numbers = dict((name, number(role_vars.get(name, default))) for name, default in (
        ('tuning_per_core', 32768), ('tuning_min', 131072), ('tuning_max_ceiling', 0), ('tuning_bucket_ratio', 1),
        ('tuning_warn_percent', 80)))
    if any(numbers[n] is None or numbers[n] < 0 for n in ('tuning_per_core', 'tuning_min', 'tuning_max_ceiling')) or \
            numbers['tuning_bucket_ratio'] is None or numbers['tuning_bucket_ratio'] < 1:
        return ('tuning_per_core (%s), tuning_min (%s) and tuning_max_ceiling (%s) must be 0 or more, '
                'tuning_bucket_ratio (%s) 1 or more' % tuple(role_vars.get(n) for n in (
                    'tuning_per_core', 'tuning_min', 'tuning_max_ceiling', 'tuning_bucket_ratio')))
    if numbers['tuning_warn_percent'] is None or not 0 <= numbers['tuning_warn_percent'] <= 100:
        return 'tuning_warn_percent is %s: give a percentage 0-100' % as_json(role_vars.get('tuning_warn_percent'))
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
    load_module = as_bool(role_vars.get('tuning_load_module', True))
    profile = role_vars.get('tuning_timeouts_profile', 'default')
    timeouts = dict(profiles.get(profile) or {})
    timeouts.update(role_vars.get('tuning_timeouts') or {})
    error = tuning_input_error(role_vars) or _info_error(info, load_module)
    if error is None and profile not in profiles:
        error = 'tuning_timeouts_profile is %s: choose one of %s' % (as_json(profile), ', '.join(sorted(profiles)))
    plan = {'max': None, 'buckets': None, 'settings': {}, 'notes': [], 'persist': False, 'refusal': None,
            'global_ok': bool((info.get('kernel') or {}).get('initial_namespace', True)),
            'by_kernel': None, 'by_cpus': None}
    if error is None:
        # not loaded yet (the conntrack_sysctl call loads it): nothing in the table, the kernel facts of the failure
        sized = info if not info.get('failed') else {'count': 0, 'max': 0, 'buckets': 0, 'kernel': info.get('kernel') or {}}
        raise_only = as_bool(role_vars.get('tuning_raise_only', True)) and not info.get('failed')
        try:
            plan = conntrack_tuning_plan(
                sized, memtotal_mb=memtotal_mb, vcpus=vcpus, max=role_vars.get('tuning_max', 'auto'),
                policy=role_vars.get('tuning_policy', 'kernel'), per_core=role_vars.get('tuning_per_core', 32768),
                min=role_vars.get('tuning_min', 131072), ceiling=role_vars.get('tuning_max_ceiling', 0),
                raise_only=raise_only, buckets=role_vars.get('tuning_buckets', 'auto'),
                bucket_ratio=role_vars.get('tuning_bucket_ratio', 1), timeouts=timeouts,
                persist=as_bool(role_vars.get('tuning_persist', True)), namespace=role_vars.get('tuning_namespace') or '',
                force_lower=as_bool(role_vars.get('tuning_force_lower', False)))
        except AnsibleFilterError as exc:
            error = str(exc)
    plan = dict(plan, error=error, timeouts=timeouts)
    plan['args'] = {
        'settings': plan['settings'], 'persist': plan['persist'],
        'force': as_bool(role_vars.get('tuning_force_lower', False)), 'load_module': load_module,
        'namespace': role_vars.get('tuning_namespace') or None,
        'sysctl_file': role_vars.get('tuning_sysctl_file') or None,
        'modprobe_file': role_vars.get('tuning_modprobe_file') or None,
        'modules_load_file': role_vars.get('tuning_modules_load_file') or None,
    }
    plan['apply'] = error is None and plan['refusal'] is None and bool(plan['settings'])
    return plan


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
    if problem is None and applied and as_bool(verify) and not check_mode:
        if result.get('in_force') is False:
            problem = 'not in force after the write: %s' % '; '.join(result.get('mismatch') or ['(no detail)'])
        elif plan.get('persist') and not result.get('persisted'):
            problem = 'asked to persist, but conntrack_sysctl did not confirm the sysctl.d file'
    now_max = number((settings.get(MAX_KEY) or {}).get('new')) if MAX_KEY in settings else None
    limit = now_max if now_max is not None else (number(info.get('max')) or 0)
    count = number(info.get('count')) or 0
    buckets_key = 'net.netfilter.nf_conntrack_buckets'
    buckets = number((settings.get(buckets_key) or {}).get('new')) if buckets_key in settings else info.get('buckets')
    timeouts = {}
    for name in (plan.get('timeouts') or {}):
        short = re.sub(r'^(net[./]netfilter[./])?(nf_conntrack_)?', '', str(name))
        full = 'net.netfilter.nf_conntrack_' + short
        value = (settings.get(full) or {}).get('new') if full in settings else (info.get('sysctls') or {}).get(full)
        timeouts[short] = value
    changes = sysctl_changes(result)
    warning = table_warning(count, limit, warn_percent, initial, NAMESPACE_LEVERS)
    report = {
        'changed': bool(result.get('changed')),
        'check_mode': bool(check_mode),
        'max': limit,
        'max_wanted': plan.get('max'),
        'count': count,
        'headroom': limit - count if limit else None,
        'headroom_percent': round(100.0 - usage(count, limit), 1) if limit else 100.0,
        'usage_percent': usage(count, limit),
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
    head = outcome(problem, changes, check_mode)
    line = '%s; table %d/%d (%s%%)' % (head, count, limit, report['usage_percent'])
    if report['persisted'] and not problem:
        line += '; would persist' if check_mode else '; persisted'
    report['line'] = host_line(host, line, warning)
    return report


class FilterModule(object):
    """The tuning role's planning, verification and reporting."""

    def filters(self):
        return {
            'conntrack_tuning_role': conntrack_tuning_role,
            'conntrack_tuning_report': conntrack_tuning_report,
        }
