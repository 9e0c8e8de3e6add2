# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""/proc and /sys readers: count, limit, buckets, statistics, sysctls, kernel facts, and the
/proc/net/nf_conntrack and nf_conntrack_expect tables (the fallback when pyroute2 is missing).

All readers work in the network namespace of the calling process.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import platform
import socket
import stat

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import read_int, read_text
from ansible_collections.netfilter.conntrack.plugins.module_utils._nftprobe import table_exists
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, EXPECT_FLAGS, FAMILY_NAMES, PROTO_NAMES, STATS_KEYS)

SYSCTL_DIR = '/proc/sys/net/netfilter'
HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize'
STAT_FILE = '/proc/net/stat/nf_conntrack'
TABLE_FILE = '/proc/net/nf_conntrack'
EXPECT_FILE = '/proc/net/nf_conntrack_expect'

# /proc/net/stat/nf_conntrack column -> the name conntrack -S (and ctnetlink) uses
STAT_COLUMNS = {
    'found': 'found', 'invalid': 'invalid', 'insert': 'insert', 'insert_failed': 'insert_failed',
    'drop': 'drop', 'early_drop': 'early_drop', 'icmp_error': 'error', 'search_restart': 'search_restart',
    'clashres': 'clash_resolve', 'chainlength': 'chaintoolong',
}


def count():
    return read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_count'))


def maximum():
    return read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_max'))


def buckets():
    value = read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_buckets'))
    return value if value is not None else read_int(HASHSIZE)


def scan_knobs(netfilter_dir=SYSCTL_DIR):
    """The one scan of the conntrack knobs: [(file name, path, os.stat result)] of every regular
    ``nf_conntrack_*`` file in ``netfilter_dir`` (this namespace's view), sorted by name."""
    try:
        names = sorted(os.listdir(netfilter_dir))
    except OSError:
        return []
    found = []
    for name in names:
        if not name.startswith('nf_conntrack_'):
            continue
        path = os.path.join(netfilter_dir, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((name, path, st))
    return found


def sysctls():
    """Every ``net.netfilter.nf_conntrack_*`` value of this namespace: {full name: int or str}."""
    values = {}
    for name, path, _st in scan_knobs():
        text = read_text(path)
        if text is None:
            continue
        try:
            values['net.netfilter.' + name] = int(text)
        except ValueError:
            values['net.netfilter.' + name] = text
    return values


def stats_per_cpu(path=STAT_FILE):
    """Per-CPU statistics from /proc/net/stat/nf_conntrack (hex columns), named as ``conntrack -S``."""
    text = read_text(path)
    if not text:
        return []
    lines = text.splitlines()
    header = lines[0].split()
    out = []
    for cpu, line in enumerate(lines[1:]):
        values = line.split()
        row = dict((key, 0) for key in STATS_KEYS)
        for column, value in zip(header, values):
            name = STAT_COLUMNS.get(column)
            if name is not None:
                row[name] = int(value, 16)
        row['cpu'] = cpu
        out.append(row)
    return out


def sum_stats(per_cpu):
    total = dict((key, 0) for key in STATS_KEYS)
    for row in per_cpu:
        for key in STATS_KEYS:
            total[key] += row.get(key, 0)
    return total


def builtin():
    """True when nf_conntrack is built into the kernel, False for a module, None if unknown.

    A loadable module has /sys/module/<name>/initstate; a built-in one only its parameters.
    """
    if os.path.exists('/sys/module/nf_conntrack/initstate'):
        return False
    if os.path.isdir('/sys/module/nf_conntrack'):
        return True
    text = read_text('/lib/modules/%s/modules.builtin' % platform.release())
    if text is not None:
        return any(line.endswith('/nf_conntrack.ko') for line in text.splitlines())
    return None


def kernel_facts(initial_namespace):
    helper = read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_helper'))
    return {
        'release': platform.release(),
        'conntrack_loaded': os.path.exists(os.path.join(SYSCTL_DIR, 'nf_conntrack_count')),
        'conntrack_builtin': builtin(),
        'accounting': read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_acct')) == 1,
        'timestamps': read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_timestamp')) == 1,
        'events': read_int(os.path.join(SYSCTL_DIR, 'nf_conntrack_events')),
        # Linux >= 6.0 has no nf_conntrack_helper knob: helpers are only assigned explicitly
        'helper_assignment': 'explicit' if helper in (None, 0) else 'automatic',
        'hashsize': read_int(HASHSIZE),
        'initial_namespace': initial_namespace,
        'proc_table': os.path.exists(TABLE_FILE),
        'netns_inode': netns_inode(),
        'memtotal_mb': memtotal_mb(),
        'cpus': online_cpus(),
        'synproxy': synproxy_available(),
        'synproxy_counters': synproxy_counters(),
        'tcp': dict((name, read_int(os.path.join(IPV4_SYSCTL_DIR, name))) for name in TCP_KNOBS),
        # the collection's nft table (conntrack_notrack's): True, False, or None when the kernel cannot be asked
        'owned_nft_table': table_exists(OWNED_TABLE),
    }


# --- host facts the roles size and decide on (one conntrack_info call is all a role reads) ------

IPV4_SYSCTL_DIR = '/proc/sys/net/ipv4'
OWNED_TABLE = 'netfilter_conntrack'  # inet, _nft.TABLE_NAME (not imported here: _nft runs nft, this file only reads)
TCP_KNOBS = ('tcp_syncookies', 'tcp_timestamps', 'tcp_max_syn_backlog')
SYNPROXY_STAT = '/proc/net/stat/synproxy'
MODULES_DIR = '/lib/modules'


def netns_inode(path='/proc/self/ns/net'):
    """The inode of this process's network namespace (``ip netns identify``, ``lsns -t net`` and the link text
    ``net:[N]`` of /proc/PID/ns/net show the same number), or None."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def memtotal_mb(path='/proc/meminfo'):
    """MemTotal in MiB (what Ansible's ``ansible_memtotal_mb`` reports), or None."""
    for line in (read_text(path) or '').splitlines():
        if line.startswith('MemTotal:'):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) // 1024
    return None


def online_cpus(path='/sys/devices/system/cpu/online'):
    """The number of online CPUs from ``0-3,6`` ranges (``ansible_processor_vcpus``), or os.cpu_count()."""
    text = (read_text(path) or '').strip()
    total = 0
    try:
        for part in text.split(','):
            low, _sep, high = part.partition('-')
            total += int(high or low) - int(low) + 1
    except ValueError:
        total = 0
    return total or os.cpu_count()


def synproxy_available(stat_file=SYNPROXY_STAT, modules_dir=MODULES_DIR, release=None):
    """True when the kernel's SYNPROXY core is there (its statistics file exists: built in or loaded), or an
    nft_synproxy module is on disk for this release (nft loads it on first use)."""
    if os.path.exists(stat_file):
        return True
    # modules.dep lists every loadable module of the release (one read, not a walk of the tree)
    text = read_text(os.path.join(modules_dir, release or platform.release(), 'modules.dep')) or ''
    return '/nft_synproxy.ko' in text


def synproxy_counters(stat_file=SYNPROXY_STAT):
    """The SYNPROXY counters summed over CPUs (/proc/net/stat/synproxy, hexadecimal columns), or None."""
    rows = (read_text(stat_file) or '').split('\n')
    rows = [row.split() for row in rows if row.strip()]
    if len(rows) < 2:
        return None
    head = rows[0]
    total = dict((name, 0) for name in head if name != 'entries')
    for row in rows[1:]:
        for name, value in zip(head, row):
            if name != 'entries':
                try:
                    total[name] += int(value, 16)
                except ValueError:
                    pass
    return total


# --- /proc/net/nf_conntrack -------------------------------------------------------------------

def _norm_addr(family, text):
    af = AF_INET6 if family == 'ipv6' else AF_INET
    try:
        return socket.inet_ntop(af, socket.inet_pton(af, text))  # /proc prints IPv6 fully expanded
    except (OSError, ValueError):
        return text


_KEYS = {'src': 'src', 'dst': 'dst', 'sport': 'sport', 'dport': 'dport', 'type': 'icmp_type',
         'code': 'icmp_code', 'id': 'icmp_id', 'packets': 'packets', 'bytes': 'bytes'}
_INT_KEYS = frozenset(('sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id', 'packets', 'bytes'))


def parse_line(line):
    """One /proc/net/nf_conntrack line -> the entry dict the netlink decoder would produce.

    /proc shows only part of the status: UNREPLIED (no SEEN_REPLY), ASSURED, OFFLOAD and HW_OFFLOAD;
    CONFIRMED is implied for every listed entry.
    """
    fields = line.split()
    if len(fields) < 5:
        return None
    family = fields[0]
    protonum = int(fields[3])
    entry = {'family': family, 'proto': PROTO_NAMES.get(protonum, fields[2]), 'protonum': protonum,
             'timeout': int(fields[4]), 'zone': 0}
    rest = fields[5:]
    if rest and '=' not in rest[0] and not rest[0].startswith('['):
        entry['state'] = rest[0]
        rest = rest[1:]
    prefix = ''
    seen = set()
    flags = set()
    for token in rest:
        if token.startswith('['):
            flags.add(token.strip('[]'))
            continue
        key, _sep, value = token.partition('=')
        if key == 'src' and 'src' in seen:
            prefix = 'reply_'
        if key in _KEYS:
            name = _KEYS[key]
            if name not in ('packets', 'bytes'):
                seen.add(key)
            name = prefix + name
            if key in ('src', 'dst'):
                entry[name] = _norm_addr(family, value)
            elif name.replace('reply_', '') in _INT_KEYS:
                entry[name] = int(value)
        elif key in ('mark', 'use', 'zone', 'secmark'):
            entry[key] = int(value)
        elif key == 'helper':
            entry['helper'] = value
        elif key == 'secctx':
            entry['secctx'] = value
        elif key == 'zone-orig' or key == 'zone-reply':
            entry['zone'] = int(value)
        elif key == 'delta-time':
            entry['delta_time'] = int(value)
    status = ['CONFIRMED']
    if 'UNREPLIED' not in flags:
        status.insert(0, 'SEEN_REPLY')
    if 'ASSURED' in flags:
        status.insert(1 if 'SEEN_REPLY' in status else 0, 'ASSURED')
    for extra in ('OFFLOAD', 'HW_OFFLOAD'):
        if extra in flags:
            status.append(extra)
    entry['status'] = status
    entry.setdefault('mark', 0)
    return entry


def entries(path=TABLE_FILE):
    """Stream the entries of /proc/net/nf_conntrack; None when the file does not exist."""
    try:
        handle = open(path)
    except (IOError, OSError):
        return None

    def generate():
        with handle:
            for line in handle:
                entry = parse_line(line)
                if entry is not None:
                    yield entry
    return generate()


def expectations(path=EXPECT_FILE):
    """The expect table as /proc/net/nf_conntrack_expect shows it (timeout, family, tuple, flags, helper).

    A line is ``<timeout> l3proto = <af> proto=<num> <tuple> [PERMANENT,INACTIVE,USERSPACE] [helper[/policy]]``
    (nf_conntrack_expect.c, exp_seq_show); IPv6 addresses are printed fully expanded.
    """
    text = read_text(path)
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        exp = {'flags': []}
        try:
            exp['timeout'] = int(fields[0])
        except ValueError:
            exp['timeout'] = fields[0]
        rest = fields[1:]
        if len(rest) >= 3 and rest[0] == 'l3proto' and rest[1] == '=':
            exp['family'] = FAMILY_NAMES.get(int(rest[2]), rest[2]) if rest[2].isdigit() else rest[2]
            rest = rest[3:]
        tup = {}
        words = []
        for token in rest:
            key, sep, value = token.partition('=')
            if not sep:
                if all(flag in EXPECT_FLAGS for flag in token.split(',')):
                    exp['flags'].extend(token.split(','))
                else:
                    words.append(token)
            elif key == 'proto':
                tup['protonum'] = int(value)
                tup['proto'] = PROTO_NAMES.get(int(value), value)
            elif key in ('src', 'dst'):
                tup[key] = _norm_addr(exp.get('family', 'ipv4'), value)
            elif key in _KEYS and key not in ('packets', 'bytes'):
                tup[_KEYS[key]] = int(value)
        if words:
            exp['helper'] = words[-1].split('/', 1)[0]
        exp['tuple'] = tup
        out.append(exp)
    return out
