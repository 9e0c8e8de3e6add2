# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet summary of a tuning or synflood_guard run (``conntrack_fleet_summary``), from the results the roles
registered in ``hostvars``: the one result of their engine (``__tuning_outcome``, ``__synflood_guard_outcome``:
the conntrack_tune and conntrack_harden actions), or the per-task results the roles registered before they had one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_common import MAX_KEY, number, usage


def _outcome_record(result):
    """(changed, refused/failed, usage, initial namespace, line) of one host from its engine's one result."""
    calls = result.get('calls') or {}
    info = calls.get('info') or {}
    count = number(info.get('count')) or 0
    limit = number(info.get('max')) or 0
    settings = dict((calls.get('sysctl') or {}).get('settings') or {})
    settings.update((calls.get('headroom_sysctl') or {}).get('settings') or {})
    if MAX_KEY in settings:
        limit = number(settings[MAX_KEY].get('new')) or limit
    line = (result.get('report') or {}).get('line') or result.get('msg')
    initial = bool((info.get('kernel') or {}).get('initial_namespace', True))
    return bool(result.get('changed')), bool(result.get('failed')), usage(count, limit), initial, line


def _host_record(hostvars, host, role, warn_percent):
    """(changed, refused/failed, usage, initial namespace, line) of one host from its registered results."""
    facts = hostvars.get(host) or {}
    prefix = '__tuning' if role == 'tuning' else '__synflood_guard'
    if isinstance(facts.get(prefix + '_outcome'), dict):
        return _outcome_record(facts[prefix + '_outcome'])
    info = facts.get(prefix + '_info') or {}
    reported = facts.get(prefix + '_reported')
    if role == 'tuning':
        results = [facts.get('__tuning_result') or {}]
    else:
        results = [facts.get('__synflood_guard_sysctl_result') or {}, facts.get('__synflood_guard_rules_result') or {}]
    changed = any(r.get('changed') for r in results)
    failed = reported is None or bool(reported.get('failed')) or any(r.get('failed') for r in results)
    count = number(info.get('count')) or 0
    limit = number(info.get('max')) or 0
    settings = results[0].get('settings') or {}
    if MAX_KEY in settings:
        limit = number(settings[MAX_KEY].get('new')) or limit
    line = reported.get('msg') if isinstance(reported, dict) else None
    if isinstance(line, dict):
        line = line.get('line')
    initial = bool((info.get('kernel') or {}).get('initial_namespace', True))
    return changed, failed, usage(count, limit), initial, line


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
    """The fleet summary."""

    def filters(self):
        return {
            'conntrack_fleet_summary': conntrack_fleet_summary,
        }
