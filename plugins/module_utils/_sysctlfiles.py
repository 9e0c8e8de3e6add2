# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot-time files of the conntrack knobs: sysctl.d, modprobe.d and modules-load.d texts, and the files
that override ours at boot (systemd-sysctl's order)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._files import read_file
from ansible_collections.netfilter.conntrack.plugins.module_utils._sysctl import MAX_ALIAS

DEFAULT_SYSCTL_FILE = '/etc/sysctl.d/90-netfilter-conntrack.conf'
DEFAULT_MODPROBE_FILE = '/etc/modprobe.d/netfilter-conntrack.conf'
DEFAULT_MODULES_LOAD_FILE = '/etc/modules-load.d/netfilter-conntrack.conf'
SYSCTL_DIRS = ('/etc/sysctl.d', '/run/sysctl.d', '/usr/local/lib/sysctl.d', '/usr/lib/sysctl.d', '/lib/sysctl.d')
HEADER = ('# Managed by Ansible (netfilter.conntrack.conntrack_sysctl); edits here are overwritten.\n')


def parse_sysctl_text(text):
    """{sysctl name: value text} from a sysctl.d file (comments and blanks skipped, last one wins)."""
    values = {}
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line[0] in '#;':
            continue
        if '=' not in line:
            continue
        key, value = line.split('=', 1)
        key = key.strip().lstrip('-').replace('/', '.')
        values[key] = value.strip()
    return values


def render_sysctl_text(values):
    """Our sysctl.d file for ``{sysctl name: int}``; None when there is nothing to keep."""
    if not values:
        return None
    lines = [HEADER]
    for key in sorted(values):
        lines.append('%s = %s\n' % (key, values[key]))
    return ''.join(lines)


def parse_modprobe_hashsize(text):
    """The hashsize in an ``options nf_conntrack hashsize=N`` line, or None."""
    for line in (text or '').splitlines():
        words = line.split('#', 1)[0].split()
        if len(words) >= 3 and words[0] == 'options' and words[1] == 'nf_conntrack':
            for word in words[2:]:
                if word.startswith('hashsize='):
                    try:
                        return int(word.split('=', 1)[1])
                    except ValueError:
                        return None
    return None


def render_modprobe_text(hashsize):
    if hashsize is None:
        return None
    return HEADER + 'options nf_conntrack hashsize=%d\n' % hashsize


def render_modules_load_text():
    return HEADER + '# Load nf_conntrack before systemd-sysctl applies the conntrack sysctls.\nnf_conntrack\n'


def overriding_files(sysctl_file, keys, dirs=SYSCTL_DIRS):
    """Files applied after ``sysctl_file`` at boot (systemd-sysctl order) that set one of ``keys``."""
    if os.path.dirname(sysctl_file) not in dirs:
        return []
    ours = os.path.basename(sysctl_file)
    seen = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith('.conf') and name not in seen:
                seen[name] = os.path.join(directory, name)
    found = []
    for name in sorted(seen):
        if name <= ours:
            continue
        text = read_file_quiet(seen[name])
        hits = sorted(set(canonical_key(k) for k in parse_sysctl_text(text)) & set(keys))
        if hits:
            found.append('%s (%s)' % (seen[name], ', '.join(hits)))
    return found


def read_file_quiet(path):
    try:
        return read_file(path) or ''
    except ConntrackError:
        return ''


def canonical_key(key):
    return 'net.netfilter.nf_conntrack_max' if key == MAX_ALIAS else key
