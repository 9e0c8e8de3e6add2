# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the roles' filters share: reading role variables, the table warning and the start of a host's one line.

Private to the collection (controller side only): used by plugins/filter/tuning_role.py, synflood_role.py and
fleet_summary.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

MAX_KEY = 'net.netfilter.nf_conntrack_max'
_WHOLE = re.compile(r'^[0-9]+$')
# what a host that is a network namespace can do about a full table (max is global, read-only there)
NAMESPACE_LEVERS = ('max cannot be raised from inside a network namespace: shorten the per-namespace timeouts '
                    '(tuning_timeouts, e.g. tcp_timeout_established, udp_timeout), flush stale entries with a '
                    'targeted conntrack_flush, or raise nf_conntrack_max on the machine that hosts it')


def outcome(problem, changes, check_mode):
    """The start of a host's one line: FAILED and why, what changed (would change in check mode), or no change."""
    if problem:
        return 'FAILED %s' % problem
    if changes:
        return '%s %s' % ('would change' if check_mode else 'changed', ', '.join(changes))
    return 'no change'


def as_bool(value):
    """A role variable as a boolean (YAML and string spellings of true)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't')


def as_json(value):
    """A value as the messages quote it."""
    return json.dumps(value)


def is_whole(value, minimum=1):
    """True for a whole number (int or digits) of at least ``minimum``; never for a boolean."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= minimum
    return bool(_WHOLE.match(str(value))) and int(str(value)) >= minimum


def number(value):
    """``value`` as an int, or None when it is none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def host_line(host, line, warning=None):
    """A host's one line: ``line``, then the table warning if there is one, after the host's name if given."""
    if warning:
        line += '; ' + warning
    return ('%s: %s' % (host, line)) if host else line


def sysctl_changes(result):
    """'name old->new' for every knob conntrack_sysctl changed (short names), then the files it wrote or removed."""
    out = []
    for name, item in sorted(((result or {}).get('settings') or {}).items()):
        if isinstance(item, dict) and item.get('changed'):
            short = name.replace('net.netfilter.nf_conntrack_', '').replace('net.ipv4.', '')
            out.append('%s %s->%s' % (short, item.get('old'), item.get('new')))
    files = (result or {}).get('files') or {}
    out.extend('wrote %s' % path for path in files.get('written') or [])
    out.extend('removed %s' % path for path in files.get('removed') or [])
    return out


def usage(count, limit):
    """How full the table is, in percent (one decimal); 0.0 without a limit."""
    return round(100.0 * count / limit, 1) if limit else 0.0


def table_warning(count, limit, warn_percent, initial_namespace, levers):
    """A warning when the table is at or above ``warn_percent`` full, naming what can still be done, else None."""
    percent = usage(count, limit)
    if not limit or percent < float(warn_percent):
        return None
    text = 'WARNING table %s%% full (%d/%d)' % (percent, count, limit)
    if not initial_namespace:
        return '%s; %s' % (text, levers)
    return ('%s even with nf_conntrack_max %d: raise tuning_max (or tuning_policy/tuning_per_core), shorten the '
            'timeouts, or flush stale entries with a targeted conntrack_flush' % (text, limit))
