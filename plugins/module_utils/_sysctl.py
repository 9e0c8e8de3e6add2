# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The conntrack knobs of the running kernel: catalogue, read, validate, write, persist.

Private to the collection. Everything here takes plain values and returns plain
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
import stat
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._files import FileChanges, file_mode, read_file

NETFILTER_DIR = '/proc/sys/net/netfilter'
PREFIX = 'nf_conntrack_'
SYSCTL_PREFIX = 'net.netfilter.'
MAX_ALIAS = 'net.nf_conntrack_max'
HASHSIZE_PARAM = '/sys/module/nf_conntrack/parameters/hashsize'
SYS_MODULE_DIR = '/sys/module/nf_conntrack'
PROC_MODULES = '/proc/modules'

DEFAULT_SYSCTL_FILE = '/etc/sysctl.d/90-netfilter-conntrack.conf'
DEFAULT_MODPROBE_FILE = '/etc/modprobe.d/netfilter-conntrack.conf'
DEFAULT_MODULES_LOAD_FILE = '/etc/modules-load.d/netfilter-conntrack.conf'
SYSCTL_DIRS = ('/etc/sysctl.d', '/run/sysctl.d', '/usr/local/lib/sysctl.d', '/usr/lib/sysctl.d', '/lib/sysctl.d')
HEADER = ('# Managed by Ansible (netfilter.conntrack.conntrack_sysctl); edits here are overwritten.\n')

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
    try:
        names = sorted(os.listdir(netfilter_dir))
    except OSError:
        return catalogue
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(netfilter_dir, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
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
            raise ConntrackError('%s is read-only here (%s): %s' % (knob.sysctl, exc.strerror, _why_read_only(knob)),
                                 option='name')
        if exc.errno == errno.ENOMEM:
            raise ConntrackError('%s: the kernel could not allocate %d buckets (out of memory)' % (knob.sysctl, value),
                                 option='value')
        if exc.errno in (errno.EOPNOTSUPP, errno.EIO) and knob.scope == 'global':
            raise ConntrackError('%s: %s' % (knob.sysctl, _why_read_only(knob)), option='name')
        raise ConntrackError('the kernel refused %s = %d: %s' % (knob.sysctl, value, exc.strerror), option='value')


def _why_read_only(knob):
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


# ---------------------------------------------------------------- persisted files

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
        hits = sorted(set(_canonical_key(k) for k in parse_sysctl_text(text)) & set(keys))
        if hits:
            found.append('%s (%s)' % (seen[name], ', '.join(hits)))
    return found


def read_file_quiet(path):
    try:
        return read_file(path) or ''
    except ConntrackError:
        return ''


def _canonical_key(key):
    return 'net.netfilter.nf_conntrack_max' if key == MAX_ALIAS else key


# ---------------------------------------------------------------- the engine

class SysctlManager(object):
    """Plan and carry out one conntrack_sysctl task.

    ``params`` is the module's params dict. ``initial_namespace`` says whether global
    knobs are writable here. Paths are injectable for tests.
    """

    def __init__(self, params, initial_namespace=True, netfilter_dir=NETFILTER_DIR, module_kind=None,
                 namespace=None):
        self.params = params
        self.initial_namespace = initial_namespace
        self.namespace = namespace
        self.netfilter_dir = netfilter_dir
        self.warnings = []
        kind = params.get('conntrack_module') or 'auto'
        self.module_kind = module_kind if kind == 'auto' and module_kind else (
            conntrack_module_kind() if kind == 'auto' else kind)
        self.catalogue = read_catalogue(netfilter_dir)
        self.loaded = any(not knob.companion for knob in self.catalogue.values())

    # -- input
    def requested(self):
        """[(name as given, value)] from name/value or settings."""
        params = self.params
        if params.get('settings'):
            return list(params['settings'].items())
        if params.get('name'):
            return [(params['name'], params.get('value'))]
        return []

    def validate(self):
        """Resolve and check every requested knob; return [(Knob, int or None)] (None for state=absent)."""
        params = self.params
        state = params.get('state') or 'present'
        apply = params.get('apply', True)
        persist = params.get('persist', False)
        catalogue = self.catalogue
        items = self.requested()
        if not self.loaded:
            if items and state == 'present' and apply:
                raise ConntrackError(
                    'nf_conntrack is not loaded in this kernel (no %s/nf_conntrack_* files); load it first '
                    '(load_module: true) or persist only with apply: false' % self.netfilter_dir)
            catalogue = static_catalogue(self.netfilter_dir)
        if (persist or state == 'absent') and not self.initial_namespace:
            raise ConntrackError(
                'persist and state=absent manage boot-time files, which are applied in the initial network '
                'namespace only (a network namespace starts from the kernel defaults every time it is '
                'created); set the values with persist: false from whatever creates the namespace, or run '
                'the task on the host without namespace')
        if state == 'present' and params.get('name') and params.get('value') is None:
            raise ConntrackError('name=%s needs a value (state=present)' % params['name'], option='value')
        plan = []
        seen = {}
        for name, value in items:
            knob = resolve(name, catalogue)
            if knob.short in seen:
                raise ConntrackError('%s is given twice (as %r and %r)' % (knob.sysctl, seen[knob.short], name),
                                     option='settings')
            seen[knob.short] = name
            if knob.read_only:
                raise ConntrackError('%s is read-only: %s' % (knob.sysctl, _why_read_only(knob)), option='name')
            if state == 'absent':
                plan.append((knob, None))
                continue
            number = parse_value(knob, value)
            if apply and knob.scope == 'global' and not self.initial_namespace:
                where = ('namespace %r' % self.namespace) if self.namespace else 'this network namespace'
                raise ConntrackError(
                    '%s is global: it can only be changed from the initial network namespace (the host), '
                    'not from %s; run the task on the host without namespace (per-namespace knobs such as '
                    'timeouts can be set here)' % (knob.sysctl, where), option='name')
            if apply and knob.present and not knob.writable:
                raise ConntrackError('%s is read-only here: %s' % (knob.sysctl, _why_read_only(knob)), option='name')
            plan.append((knob, number))
        if state == 'present':
            self._check_pairs(plan)
        return plan

    def _check_pairs(self, plan):
        wanted = dict((knob.short, value) for knob, value in plan)
        if 'frag6_low_thresh' in wanted or 'frag6_high_thresh' in wanted:
            low = wanted.get('frag6_low_thresh', self._current('frag6_low_thresh'))
            high = wanted.get('frag6_high_thresh', self._current('frag6_high_thresh'))
            if low is not None and high is not None and low > high:
                raise ConntrackError('nf_conntrack_frag6_low_thresh (%d) must not exceed nf_conntrack_frag6_high_thresh '
                                     '(%d)' % (low, high), option='settings')
        if 'max' in wanted and self.params.get('apply', True) and not self.params.get('force'):
            count = self._current('count')
            if wanted['max'] and count is not None and wanted['max'] < count:
                raise ConntrackError(
                    'refusing to set nf_conntrack_max to %d: the table holds %d entries now, so every new flow '
                    'would be dropped until it drains; choose at least %d, or set force: true'
                    % (wanted['max'], count, count), option='value')

    def _current(self, short):
        knob = self.catalogue.get(short)
        return read_value(knob) if knob else None

    # -- the run
    def run(self, check_mode=False):
        params = self.params
        plan = self.validate()
        state = params.get('state') or 'present'
        result = dict(changed=False, settings={}, files=dict(written=[], removed=[]),
                      initial_namespace=self.initial_namespace, conntrack_module=self.module_kind)
        diffs = []
        if not plan and state == 'present':
            result['catalogue'] = dict((s, k.to_dict(read_value(k))) for s, k in sorted(self.catalogue.items()))
            return result

        # a failure anywhere puts back what was already changed: the runtime values, then the files
        self.files = FileChanges()
        self.applied = []
        try:
            if state == 'present' and params.get('apply', True):
                self._apply(plan, check_mode, result, diffs)
            if state == 'present' and params.get('persist'):
                self._persist(plan, check_mode, result, diffs)
            if state == 'absent':
                self._unpersist(plan, check_mode, result, diffs)
        except ConntrackError:
            self.files.rollback()
            self._restore(self.applied)
            raise
        result['diff'] = diffs
        result['warnings'] = self.warnings
        return result

    def _apply(self, plan, check_mode, result, diffs):
        before, after, todo = [], [], []
        for knob, value in plan:
            old = read_value(knob)
            entry = dict(old=old, new=value, changed=old != value)
            result['settings'][knob.sysctl] = entry
            before.append('%s = %s\n' % (knob.sysctl, old))
            after.append('%s = %s\n' % (knob.sysctl, value))
            if old != value:
                todo.append((knob, old, value))
        if not todo:
            return
        result['changed'] = True
        diffs.append(dict(before_header='running kernel (before)', after_header='running kernel (after)',
                          before=''.join(before), after=''.join(after)))
        if check_mode:
            return
        done = []
        try:
            for knob, old, value in self._write_order(todo):
                write_value(knob, value)
                done.append((knob, old))
                now = read_value(knob)
                result['settings'][knob.sysctl]['new'] = now
                if now != value:
                    self.warnings.append('%s: wrote %d, the kernel reports %s' % (knob.sysctl, value, now))
        except ConntrackError:
            self._restore(done)
            raise
        self.applied = done

    def _restore(self, done):
        for knob, old in reversed(done):
            if old is None:
                continue
            try:
                write_value(knob, old)
            except ConntrackError:
                self.warnings.append('could not restore %s to %s' % (knob.sysctl, old))

    @staticmethod
    def _write_order(todo):
        """Raise frag6_high before low when growing, low before high when shrinking (kernel checks low <= high)."""
        def key(item):
            knob, old, value = item
            if knob.short == 'frag6_high_thresh':
                return 0 if old is None or value >= old else 2
            if knob.short == 'frag6_low_thresh':
                return 1
            return 1
        return sorted(todo, key=key)

    def _paths(self):
        params = self.params
        # an explicit empty path is an error of that option (refused by the file layer), not the default
        return tuple(default if params.get(key) is None else params[key] for key, default in (
            ('sysctl_file', DEFAULT_SYSCTL_FILE), ('modprobe_file', DEFAULT_MODPROBE_FILE),
            ('modules_load_file', DEFAULT_MODULES_LOAD_FILE)))

    def _persist(self, plan, check_mode, result, diffs):
        sysctl_file, modprobe_file, modules_load_file = self._paths()
        old_text = read_file(sysctl_file, 'sysctl_file')
        values = dict((_canonical_key(k), v) for k, v in parse_sysctl_text(old_text).items())
        for knob, value in plan:
            values[knob.sysctl] = str(value)
        desired = {sysctl_file: render_sysctl_text(values)}
        buckets = [value for knob, value in plan if knob.short == 'buckets']
        if self.module_kind == 'loadable':
            if buckets:
                desired[modprobe_file] = render_modprobe_text(buckets[0])
            desired[modules_load_file] = render_modules_load_text()
        elif self.module_kind == 'builtin':
            if buckets and render_sysctl_text(values) != old_text:
                self.warnings.append(
                    'nf_conntrack is built into this kernel: modprobe.d options are never read, so the hash size '
                    'is persisted as net.netfilter.nf_conntrack_buckets in %s (applied at boot by systemd-sysctl); '
                    'the kernel command line parameter nf_conntrack.hashsize=%d sets it even earlier'
                    % (sysctl_file, buckets[0]))
        else:
            self.warnings.append('could not tell whether nf_conntrack is built in or a loadable module; '
                                 'set conntrack_module to write the modprobe.d and modules-load.d files')
        self._sync_files(desired, check_mode, result, diffs)
        later = overriding_files(sysctl_file, [k.sysctl for k, v in plan])
        if later:
            self.warnings.append('these files are applied after %s at boot and override it: %s'
                                 % (sysctl_file, '; '.join(later)))

    def _unpersist(self, plan, check_mode, result, diffs):
        sysctl_file, modprobe_file, modules_load_file = self._paths()
        if not plan:
            desired = {sysctl_file: None, modprobe_file: None, modules_load_file: None}
        else:
            values = dict((_canonical_key(k), v) for k, v in parse_sysctl_text(read_file(sysctl_file, 'sysctl_file')).items())
            for knob, value in plan:
                values.pop(knob.sysctl, None)
            desired = {sysctl_file: render_sysctl_text(values)}
            if any(knob.short == 'buckets' for knob, value in plan):
                desired[modprobe_file] = None
            if not values:
                desired[modules_load_file] = None
        self._sync_files(desired, check_mode, result, diffs)

    def _sync_files(self, desired, check_mode, result, diffs):
        options = dict(zip(self._paths(), ('sysctl_file', 'modprobe_file', 'modules_load_file')))
        for path in sorted(desired):
            text = desired[path]
            option = options.get(path)
            old = read_file(path, option)
            mode_ok = text is None or old is None or file_mode(path) == 0o644
            if old == text and mode_ok:
                continue
            if text is None and old is None:
                continue
            result['changed'] = True
            diffs.append(dict(before_header=path if old is not None else '%s (absent)' % path,
                              after_header=path if text is not None else '%s (absent)' % path,
                              before=old or '', after=text or ''))
            if text is None:
                result['files']['removed'].append(path)
                if not check_mode:
                    self.files.remove(path, option)
            else:
                result['files']['written'].append(path)
                if not check_mode:
                    self.files.write(path, text, option=option)
