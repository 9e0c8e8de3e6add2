# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The conntrack knobs of the running kernel: catalogue, names, value checks, read and write.

Private to the collection. Boot-time files are ``_sysctlfiles``; conntrack_sysctl's plan-then-act is
``_sysctltask``. Everything here takes plain values and returns plain
values; errors are ``ConntrackError`` with a message meant for the user.

Facts this file relies on (checked on Linux 6.18, see docs/sizing.md):

- Every ``nf_conntrack_*`` file under /proc/sys/net/netfilter is a knob;
  ``net.nf_conntrack_max`` is the same variable as ``net.netfilter.nf_conntrack_max``
  (and only exists in the initial namespace).
- ``nf_conntrack_max``, ``nf_conntrack_buckets`` and ``nf_conntrack_expect_max`` are
  global: mode 0444 in any namespace but the initial one. ``nf_conntrack_count`` is
  read-only everywhere. All other knobs are per network namespace, and a new
  namespace starts from the kernel defaults.
- Timeouts are seconds, kept in jiffies: the kernel takes 0 .. INT_MAX/HZ (and even
  negative numbers); we accept 0 .. 2147483 (INT_MAX/1000), valid for every HZ.
- The hash table size is rounded up by the kernel to a whole page of bucket heads
  (PAGE_SIZE / sizeof(pointer) = 512 on x86_64), so 100000 buckets become 100352.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._procfs import scan_knobs

NETFILTER_DIR = '/proc/sys/net/netfilter'
PREFIX = 'nf_conntrack_'
SYSCTL_PREFIX = 'net.netfilter.'
MAX_ALIAS = 'net.nf_conntrack_max'
HASHSIZE_PARAM = '/sys/module/nf_conntrack/parameters/hashsize'
SYS_MODULE_DIR = '/sys/module/nf_conntrack'
PROC_MODULES = '/proc/modules'


INT_MAX = 2 ** 31 - 1
TIMEOUT_MAX = INT_MAX // 1000  # 2147483 s: what kernels of any HZ <= 1000 accept
ULONG_MAX = 2 ** 63 - 1

GLOBAL_KNOBS = ('max', 'buckets', 'expect_max')
READ_ONLY_KNOBS = ('count',)
SHORT_ALIASES = {'hashsize': 'buckets', 'conntrack_max': 'max'}

_POINTER_SIZE = struct.calcsize('P')


def _page_size():
    try:
        return os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return 4096


def bucket_multiple():
    """The kernel rounds the hash size up to a multiple of this (512 with 4 KiB pages on 64-bit)."""
    return max(1, _page_size() // _POINTER_SIZE)


def round_buckets(value):
    """The bucket count the kernel will really allocate for a request of ``value``."""
    step = bucket_multiple()
    return ((int(value) + step - 1) // step) * step


def buckets_max():
    """Largest hash size the kernel accepts (nf_ct_alloc_hashtable: slots <= INT_MAX / pointer size)."""
    limit = INT_MAX // _POINTER_SIZE
    return limit - limit % bucket_multiple()


# What we know about each knob (short name without the nf_conntrack_ prefix).
# kind: count | timeout | bool | enum | bytes | int (unknown to us: the kernel validates)
_BOOL = dict(kind='bool', minimum=0, maximum=1, unit=None)
SPECS = {
    'max': dict(kind='count', minimum=0, maximum=INT_MAX, unit='entries',
                description='Most entries one table may hold (0 = no limit). Global.'),
    'buckets': dict(kind='count', minimum=1, maximum=None, unit='buckets',
                    description='Hash table size (module parameter hashsize). Global.'),
    'expect_max': dict(kind='count', minimum=1, maximum=INT_MAX, unit='entries',
                       description='Most expectations one table may hold. Global.'),
    'count': dict(kind='count', minimum=0, maximum=None, unit='entries',
                  description='Entries in the table now (read-only).'),
    'acct': dict(_BOOL, description='Count packets and bytes per entry.'),
    'checksum': dict(_BOOL, description='Verify checksums of incoming packets.'),
    'timestamp': dict(_BOOL, description='Record the start time of each entry.'),
    'helper': dict(_BOOL, description='Automatic helper assignment (removed in Linux 6.0).'),
    'tcp_loose': dict(_BOOL, description='Pick up TCP connections already established.'),
    'tcp_be_liberal': dict(_BOOL, description='Mark only out-of-window RST as invalid.'),
    'tcp_ignore_invalid_rst': dict(_BOOL, description='Do not mark out-of-window RST as invalid.'),
    'events': dict(kind='enum', minimum=0, maximum=2, unit=None,
                   description='Connection tracking events: 0 off, 1 on, 2 on when a listener asks.'),
    'log_invalid': dict(kind='enum', minimum=0, maximum=255, unit='protocol',
                        description='Log invalid packets of this IP protocol number (255 = all).'),
    'tcp_max_retrans': dict(kind='count', minimum=0, maximum=255, unit='packets',
                            description='Retransmissions before tcp_timeout_max_retrans applies.'),
    'frag6_high_thresh': dict(kind='bytes', minimum=0, maximum=ULONG_MAX, unit='bytes',
                              description='Memory for IPv6 reassembly before fragments are dropped.'),
    'frag6_low_thresh': dict(kind='bytes', minimum=0, maximum=ULONG_MAX, unit='bytes',
                             description='Memory for IPv6 reassembly the kernel shrinks back to.'),
}

# TCP-stack knobs that conntrack hardening depends on (SYNPROXY needs SYN cookies and, for its
# timestamp option, TCP timestamps; a SYN backlog sized for floods). They live in net.ipv4 (and
# apply to IPv6 too), per network namespace; the module manages them like the conntrack knobs.
COMPANION_KNOBS = {
    'tcp_syncookies': dict(kind='enum', minimum=0, maximum=2, unit=None,
                           description='SYN cookies (net.ipv4): 0 off, 1 when the SYN backlog overflows, 2 always.'),
    'tcp_timestamps': dict(kind='enum', minimum=0, maximum=2, unit=None,
                           description='TCP timestamps (net.ipv4): 0 off, 1 on with random offsets, 2 on without.'),
    'tcp_max_syn_backlog': dict(kind='count', minimum=1, maximum=INT_MAX, unit='connections',
                                description='Half-open connections a listener queues (net.ipv4).'),
}
COMPANION_PREFIX = 'net.ipv4.'

# Knobs kernels have had under /proc/sys/net/netfilter: the catalogue used when the
# module is not loaded (persisting for later, apply: false).
STATIC_KNOBS = (
    'acct', 'buckets', 'checksum', 'count', 'events', 'expect_max', 'frag6_high_thresh',
    'frag6_low_thresh', 'frag6_timeout', 'generic_timeout', 'gre_timeout', 'gre_timeout_stream',
    'icmp_timeout', 'icmpv6_timeout', 'log_invalid', 'max', 'sctp_timeout_closed',
    'sctp_timeout_cookie_echoed', 'sctp_timeout_cookie_wait', 'sctp_timeout_established',
    'sctp_timeout_heartbeat_sent', 'sctp_timeout_shutdown_ack_sent', 'sctp_timeout_shutdown_recd',
    'sctp_timeout_shutdown_sent', 'tcp_be_liberal', 'tcp_ignore_invalid_rst', 'tcp_loose',
    'tcp_max_retrans', 'tcp_timeout_close', 'tcp_timeout_close_wait', 'tcp_timeout_established',
    'tcp_timeout_fin_wait', 'tcp_timeout_last_ack', 'tcp_timeout_max_retrans', 'tcp_timeout_syn_recv',
    'tcp_timeout_syn_sent', 'tcp_timeout_time_wait', 'tcp_timeout_unacknowledged', 'timestamp',
    'udp_timeout', 'udp_timeout_stream',
)


def knob_spec(short):
    """Type, range and unit of a knob; timeouts are recognised by name, the rest is 'int'."""
    spec = SPECS.get(short) or COMPANION_KNOBS.get(short)
    if spec is not None:
        spec = dict(spec)
        if short == 'buckets':
            spec['maximum'] = buckets_max()
        return spec
    if 'timeout' in short:
        return dict(kind='timeout', minimum=0, maximum=TIMEOUT_MAX, unit='seconds',
                    description='Seconds an idle entry of this kind stays in the table.')
    return dict(kind='int', minimum=None, maximum=None, unit=None, description='')


class Knob(object):
    """One conntrack sysctl as this kernel (and this namespace) has it."""

    def __init__(self, short, path, writable=True, present=True, companion=False):
        spec = knob_spec(short)
        self.short = short
        self.companion = companion
        self.sysctl = (COMPANION_PREFIX if companion else SYSCTL_PREFIX + PREFIX) + short
        self.path = path
        self.kind = spec['kind']
        self.minimum = spec['minimum']
        self.maximum = spec['maximum']
        self.unit = spec['unit']
        self.description = spec['description']
        self.scope = 'global' if short in GLOBAL_KNOBS else 'namespace'
        self.read_only = short in READ_ONLY_KNOBS
        self.writable = writable and not self.read_only
        self.present = present

    def to_dict(self, value=None):
        result = dict(name=self.short, sysctl=self.sysctl, kind=self.kind, scope=self.scope,
                      writable=self.writable, minimum=self.minimum, maximum=self.maximum, unit=self.unit)
        if value is not None:
            result['value'] = value
        return result


def read_catalogue(netfilter_dir=NETFILTER_DIR):
    """Return {short name: Knob} for every nf_conntrack_* file of this kernel, in this namespace."""
    catalogue = {}
    for name, path, st in scan_knobs(netfilter_dir):
        catalogue[name[len(PREFIX):]] = Knob(name[len(PREFIX):], path, writable=bool(st.st_mode & 0o222))
    ipv4_dir = os.path.join(os.path.dirname(netfilter_dir.rstrip('/')), 'ipv4')
    for short in COMPANION_KNOBS:
        path = os.path.join(ipv4_dir, short)
        try:
            st = os.stat(path)
        except OSError:
            continue
        catalogue[short] = Knob(short, path, writable=bool(st.st_mode & 0o222), companion=True)
    return catalogue


def static_catalogue(netfilter_dir=NETFILTER_DIR):
    """The knobs kernels usually have, for when nf_conntrack is not loaded (nothing to read)."""
    return dict((short, Knob(short, os.path.join(netfilter_dir, PREFIX + short), present=False))
                for short in STATIC_KNOBS)


def short_name(name):
    """Map any accepted spelling of a knob to its short name (``max``, ``tcp_timeout_established``)."""
    if not isinstance(name, str) or not name.strip():
        raise ConntrackError('knob name %r is not a string: give e.g. nf_conntrack_max, max or '
                             'net.netfilter.nf_conntrack_tcp_timeout_established' % (name,), option='name')
    text = name.strip().replace('/', '.')
    if text.startswith('.proc.sys.'):
        text = text[len('.proc.sys.'):]
    if text == MAX_ALIAS:
        return 'max'
    if text.startswith(COMPANION_PREFIX) and text[len(COMPANION_PREFIX):] in COMPANION_KNOBS:
        return text[len(COMPANION_PREFIX):]
    if text.startswith(SYSCTL_PREFIX):
        text = text[len(SYSCTL_PREFIX):]
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    return SHORT_ALIASES.get(text, text)


def resolve(name, catalogue):
    """Return the Knob for ``name`` or raise an error listing this kernel's knobs."""
    short = short_name(name)
    knob = catalogue.get(short)
    if knob is None:
        known = ', '.join(sorted(catalogue)) or 'none (nf_conntrack is not loaded)'
        raise ConntrackError('unknown conntrack knob %r: this kernel has %s' % (name, known), option='name')
    return knob


_DURATION_RE = re.compile(r'([0-9]+)\s*([a-zA-Z]+)', re.ASCII)
_UNITS = {'s': 1, 'sec': 1, 'secs': 1, 'second': 1, 'seconds': 1,
          'm': 60, 'min': 60, 'mins': 60, 'minute': 60, 'minutes': 60,
          'h': 3600, 'hour': 3600, 'hours': 3600,
          'd': 86400, 'day': 86400, 'days': 86400,
          'w': 604800, 'week': 604800, 'weeks': 604800}


def parse_duration(value, what='timeout'):
    """Seconds from ``300``, ``'300'``, ``'30s'``, ``'5m'``, ``'12h'``, ``'5d'``, ``'1h30m'``."""
    if isinstance(value, bool):
        raise ConntrackError('%s: %r is not a duration: give seconds (300) or a duration such as 30s, 5m, 12h, 5d'
                             % (what, value), option='value')
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip().lower()
    if re.match(r'^[+-]?[0-9]+$', text):
        return int(text)
    compact = text.replace(' ', '')
    parts = _DURATION_RE.findall(compact)
    if not parts or ''.join(n + u for n, u in parts) != compact:
        raise ConntrackError('%s: %r is not a duration: give seconds (300) or a number with a unit '
                             's, m, h, d or w (30s, 5m, 12h, 5d, 1h30m)' % (what, value), option='value')
    total = 0
    for number, unit in parts:
        if unit not in _UNITS:
            raise ConntrackError('%s: unknown unit %r in %r: units are s, m, h, d, w (30s, 5m, 12h, 5d)'
                                 % (what, unit, value), option='value')
        total += int(number) * _UNITS[unit]
    return total


_TRUE = ('true', 'yes', 'on')
_FALSE = ('false', 'no', 'off')


def parse_value(knob, value):
    """Validate ``value`` for ``knob``; return the integer to write (buckets rounded as the kernel does)."""
    label = knob.sysctl
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConntrackError('%s: a value is required' % label, option='value')
    if knob.kind == 'timeout':
        number = parse_duration(value, what=label)
    elif isinstance(value, bool):
        if knob.kind != 'bool':
            raise ConntrackError('%s: %s is not a number: this knob counts %s' % (label, str(value).lower(), knob.unit or 'units'),
                                 option='value')
        number = int(value)
    else:
        text = str(value).strip().lower()
        if knob.kind == 'bool' and text in _TRUE + _FALSE:
            number = 1 if text in _TRUE else 0
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif re.match(r'^[+-]?[0-9]+$', text):
            number = int(text)
        else:
            raise ConntrackError('%s: %r is not a whole number%s' % (
                label, value, ' (0 or 1, true or false)' if knob.kind == 'bool' else ''), option='value')
    if knob.minimum is not None and number < knob.minimum or knob.maximum is not None and number > knob.maximum:
        raise ConntrackError('%s: %s is out of range: allowed %s' % (label, number, describe_range(knob)),
                             option='value')
    if knob.short == 'buckets':
        number = round_buckets(number)
    return number


def describe_range(knob):
    if knob.kind == 'bool':
        return '0 or 1 (false or true)'
    if knob.kind == 'timeout':
        return '0-%d seconds (or a duration such as 30s, 5m, 12h, 5d)' % knob.maximum
    low = '' if knob.minimum is None else str(knob.minimum)
    high = '' if knob.maximum is None else str(knob.maximum)
    text = '%s-%s' % (low, high)
    if knob.unit:
        text += ' ' + knob.unit
    if knob.short == 'max':
        text += ' (0 means no limit)'
    return text


def read_value(knob):
    """The knob's value in force (an int), or None when it cannot be read."""
    try:
        with open(knob.path) as handle:
            text = handle.read().strip()
    except (IOError, OSError):
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def write_value(knob, value):
    """Write ``value`` to the kernel; turn the kernel's refusals into clear messages."""
    path = knob.path
    if knob.short == 'buckets' and not knob.writable and os.path.exists(HASHSIZE_PARAM):
        path = HASHSIZE_PARAM
    try:
        with open(path, 'w') as handle:
            handle.write('%d\n' % value)
    except (IOError, OSError) as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ConntrackError('%s is read-only here (%s): %s' % (knob.sysctl, exc.strerror, why_read_only(knob)),
                                 option='name')
        if exc.errno == errno.ENOMEM:
            raise ConntrackError('%s: the kernel could not allocate %d buckets (out of memory)' % (knob.sysctl, value),
                                 option='value')
        if exc.errno in (errno.EOPNOTSUPP, errno.EIO) and knob.scope == 'global':
            raise ConntrackError('%s: %s' % (knob.sysctl, why_read_only(knob)), option='name')
        raise ConntrackError('the kernel refused %s = %d: %s' % (knob.sysctl, value, exc.strerror), option='value')


def why_read_only(knob):
    if knob.read_only:
        return '%s is a counter the kernel maintains; it cannot be set' % knob.sysctl
    if knob.scope == 'global':
        return ('%s is global: it can only be changed from the initial network namespace (the host itself), '
                'not from inside another network namespace; run the task on the host without namespace'
                % knob.sysctl)
    return 'the kernel does not allow writing it'


def conntrack_module_kind(proc_modules=PROC_MODULES, sys_module_dir=SYS_MODULE_DIR, release=None):
    """How this kernel provides nf_conntrack: 'builtin', 'loadable' (loaded or not) or 'unknown'.

    A loadable module is listed in /proc/modules and has /sys/module/nf_conntrack/initstate;
    a built-in one has /sys/module/nf_conntrack/parameters but no initstate, and appears in
    modules.builtin. A kernel without /proc/modules has no module support at all.
    """
    try:
        with open(proc_modules) as handle:
            for line in handle:
                if line.split(' ', 1)[0] == 'nf_conntrack':
                    return 'loadable'
    except (IOError, OSError):
        if os.path.isdir(sys_module_dir):
            return 'builtin'
    if os.path.isdir(sys_module_dir) and not os.path.exists(os.path.join(sys_module_dir, 'initstate')):
        return 'builtin'
    release = release or os.uname()[2]
    base = os.path.join('/lib/modules', release)
    try:
        with open(os.path.join(base, 'modules.builtin')) as handle:
            for line in handle:
                if os.path.basename(line.strip()).startswith('nf_conntrack.ko'):
                    return 'builtin'
    except (IOError, OSError):
        pass
    try:
        with open(os.path.join(base, 'modules.dep')) as handle:
            for line in handle:
                if os.path.basename(line.split(':', 1)[0]).startswith('nf_conntrack.ko'):
                    return 'loadable'
    except (IOError, OSError):
        pass
    return 'unknown'
