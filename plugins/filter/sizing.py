# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters that size the conntrack table: nf_conntrack_max and the hash buckets.

The kernel's own default (net/netfilter/nf_conntrack_core.c, nf_conntrack_init_start(),
Linux 5.15 and later):

    buckets = RAM / 16384 / sizeof(struct hlist_head)      (8 bytes on 64-bit, 4 on 32-bit)
    if 64-bit and RAM > 4 GiB:  buckets = 262144
    elif RAM > 1 GiB:           buckets = 65536
    buckets = max(buckets, 1024)
    max = buckets               (max_factor 1), or 8 * hashsize when hashsize was given

The hash table is then rounded up to whole pages of bucket heads (nf_ct_alloc_hashtable),
a multiple of 512 on 64-bit with 4 KiB pages. See docs/sizing.md for worked examples.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

GIB = 1024 ** 3
_UNITS = {'b': 1, 'bytes': 1, 'k': 1024, 'kb': 1024, 'kib': 1024, 'm': 1024 ** 2, 'mb': 1024 ** 2, 'mib': 1024 ** 2,
          'g': GIB, 'gb': GIB, 'gib': GIB}
PAGE_SIZE = 4096


def _int(value, what, minimum=0):
    if isinstance(value, bool):
        raise AnsibleFilterError('%s must be a whole number, got %r' % (what, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError('%s must be a whole number, got %r' % (what, value))
    if isinstance(value, float) and not value.is_integer():
        raise AnsibleFilterError('%s must be a whole number, got %r' % (what, value))
    if minimum is not None and number < minimum:
        raise AnsibleFilterError('%s must be at least %d, got %d' % (what, minimum, number))
    return number


def _bytes(mem, unit):
    factor = _UNITS.get(str(unit).lower())
    if factor is None:
        raise AnsibleFilterError('unit %r is not known: use B, KiB, MiB or GiB (ansible_memtotal_mb is MiB)' % (unit,))
    return _int(mem, 'memory', minimum=1) * factor


def _word(bits):
    bits = _int(bits, 'bits', minimum=32)
    if bits not in (32, 64):
        raise AnsibleFilterError('bits must be 32 or 64, got %d' % bits)
    return bits


def conntrack_buckets_auto(mem, unit='B', bits=64):
    """The hash size the kernel picks at boot for ``mem`` of RAM (no hashsize given)."""
    total = _bytes(mem, unit)
    bits = _word(bits)
    buckets = total // 16384 // (bits // 8)
    if bits >= 64 and total > 4 * GIB:
        buckets = 262144
    elif total > GIB:
        buckets = 65536
    return max(buckets, 1024)


def conntrack_max_auto(mem, unit='B', bits=64, hashsize=None):
    """The nf_conntrack_max the kernel picks at boot: the bucket count, or 8 x hashsize when one is given."""
    if hashsize is not None:
        return 8 * conntrack_round_buckets(_int(hashsize, 'hashsize', minimum=1), bits=bits)
    return conntrack_buckets_auto(mem, unit=unit, bits=bits)


def conntrack_max_per_core(cpus, per_core=32768, min=131072):  # pylint: disable=redefined-builtin
    """kube-proxy's policy: max(per_core * cpus, min); per_core 0 means "leave as is" and returns 0."""
    cpus = _int(cpus, 'cpus', minimum=1)
    per_core = _int(per_core, 'per_core', minimum=0)
    minimum = _int(min, 'min', minimum=0)
    if per_core == 0:
        return 0
    return max(per_core * cpus, minimum)


def conntrack_round_buckets(buckets, bits=64, page_size=PAGE_SIZE):
    """Round up as the kernel does: to whole pages of bucket heads (512 with 4 KiB pages, 64-bit)."""
    buckets = _int(buckets, 'buckets', minimum=1)
    step = _int(page_size, 'page_size', minimum=1) // (_word(bits) // 8)
    return ((buckets + step - 1) // step) * step


def conntrack_buckets(max_entries, ratio=1, bits=64, page_size=PAGE_SIZE, minimum=1024):
    """Buckets for a table of ``max_entries``: ceil(max / ratio), at least ``minimum``, rounded like the kernel.

    ratio 1 is the kernel's own default (average chain of 2, each entry is hashed twice);
    ratio 4 is what kube-proxy sets (hashsize = max / 4); 8 is the old kernel default.
    """
    max_entries = _int(max_entries, 'max', minimum=1)
    ratio = _int(ratio, 'ratio', minimum=1)
    buckets = (max_entries + ratio - 1) // ratio
    buckets = max(buckets, _int(minimum, 'minimum', minimum=1))
    return conntrack_round_buckets(buckets, bits=bits, page_size=page_size)


def conntrack_clamp(value, lower=None, upper=None):
    """``value`` limited to [lower, upper]; either bound may be omitted (None)."""
    value = _int(value, 'value', minimum=None)
    if lower is not None and upper is not None and _int(lower, 'lower', None) > _int(upper, 'upper', None):
        raise AnsibleFilterError('lower (%s) is greater than upper (%s)' % (lower, upper))
    if lower is not None:
        value = max(value, _int(lower, 'lower', None))
    if upper is not None:
        value = min(value, _int(upper, 'upper', None))
    return value


def conntrack_memory(max_entries, buckets=None, entry_size=320, bits=64):
    """Bytes of kernel memory a full table needs: max * entry_size + buckets * pointer size.

    entry_size: the nf_conntrack slab object (256 bytes on Linux 6.18 x86_64, /proc/slabinfo) plus
    room for extensions (NAT, accounting, timestamps, labels); 320 is this project's planning figure.
    """
    max_entries = _int(max_entries, 'max', minimum=0)
    entry_size = _int(entry_size, 'entry_size', minimum=1)
    buckets = max_entries if buckets is None else _int(buckets, 'buckets', minimum=0)
    return max_entries * entry_size + buckets * (_word(bits) // 8)


def conntrack_tuning_plan(info, memtotal_mb=None, vcpus=None, max='auto', policy='kernel', per_core=32768,  # pylint: disable=redefined-builtin
                          min=131072, ceiling=0, raise_only=True, buckets='auto', bucket_ratio=1,
                          timeouts=None, persist=True, namespace='', force_lower=False):
    """The tuning role's sizing policy for one host, from what ``conntrack_info`` reported (``info``).

    Returns ``max`` and ``buckets`` (the values wanted), ``settings`` (what ``conntrack_sysctl`` is asked to
    apply here: the global max and buckets only in the initial namespace, plus the timeouts), ``persist``,
    ``notes`` (said in the report), ``refusal`` (a message when the plan would set max below the entries in
    the table now, else None), and the two candidates ``by_kernel`` / ``by_cpus``.

    * ``max``: ``auto`` = the policy's value (``kernel``: what the kernel would pick for this RAM;
      ``per_core``: kube-proxy's max(per_core x CPUs, min)), cut to ``ceiling`` (0: none); with
      ``raise_only`` a larger value in force is kept (and 0, "no limit", is never replaced); a number is taken
      as it is.
    * ``buckets``: ``auto`` = max / ``bucket_ratio`` rounded like the kernel (raise-only too), ``keep``, or a
      number.
    """
    info = info or {}
    kernel = info.get('kernel') or {}
    # the host's memory and CPUs: Ansible's facts where gathered, else what conntrack_info read (kernel.*)
    memtotal_mb = kernel.get('memtotal_mb') if memtotal_mb is None else memtotal_mb
    vcpus = kernel.get('cpus') if vcpus is None else vcpus
    global_ok = bool(kernel.get('initial_namespace', True))
    now_max = _int(info.get('max', 0), 'info.max', minimum=0)
    now_buckets = _int(info.get('buckets', 0), 'info.buckets', minimum=0)
    count = _int(info.get('count', 0), 'info.count', minimum=0)
    if policy not in ('kernel', 'per_core', 'fixed'):
        raise AnsibleFilterError('policy must be kernel, per_core or fixed, got %r' % (policy,))
    if policy == 'fixed' and str(max) == 'auto':
        raise AnsibleFilterError('policy fixed needs max as a number, got auto')
    by_kernel = conntrack_max_auto(memtotal_mb, unit='MiB')
    by_cpus = conntrack_max_per_core(vcpus, per_core, min)
    if str(max) == 'auto':
        computed = by_cpus if policy == 'per_core' else by_kernel
        ceiling = _int(ceiling, 'ceiling', minimum=0)
        if ceiling:
            computed = conntrack_clamp(computed, upper=ceiling)
        keep_current = computed == 0 or (raise_only and (now_max == 0 or now_max > computed))
        max_wanted = now_max if keep_current else computed
    else:
        max_wanted = _int(max, 'max', minimum=0)
    if str(buckets) == 'keep':
        buckets_wanted = now_buckets
    elif str(buckets) == 'auto':
        by_ratio = conntrack_buckets(max_wanted, ratio=bucket_ratio) if max_wanted > 0 else now_buckets
        buckets_wanted = now_buckets if raise_only and now_buckets > by_ratio else by_ratio
    else:
        buckets_wanted = _int(buckets, 'buckets', minimum=1)
    settings = {}
    if global_ok:
        settings['max'] = max_wanted
        if str(buckets) != 'keep':
            settings['buckets'] = buckets_wanted
    settings.update(timeouts or {})
    notes = []
    if not global_ok:
        notes.append('nf_conntrack_max and the buckets are global: not applied here (this host is a network '
                     'namespace); set them on the machine that hosts it. Only per-namespace knobs were applied.')
        if persist:
            notes.append('not persisted: boot-time files apply to the initial network namespace only.')
    refusal = None
    if not force_lower and max_wanted and max_wanted < count:
        refusal = ('refusing nf_conntrack_max %d: the table holds %d entries now, so new flows would be dropped '
                   'until it drains. Choose at least %d, or set tuning_force_lower: true.' % (max_wanted, count, count))
    return {'max': max_wanted, 'buckets': buckets_wanted, 'settings': settings, 'notes': notes,
            'persist': bool(persist) and global_ok and not namespace, 'refusal': refusal,
            'global_ok': global_ok, 'by_kernel': by_kernel, 'by_cpus': by_cpus}


class FilterModule(object):
    """Sizing helpers for nf_conntrack_max and the hash table."""

    def filters(self):
        return {
            'conntrack_buckets_auto': conntrack_buckets_auto,
            'conntrack_max_auto': conntrack_max_auto,
            'conntrack_max_per_core': conntrack_max_per_core,
            'conntrack_buckets': conntrack_buckets,
            'conntrack_round_buckets': conntrack_round_buckets,
            'conntrack_clamp': conntrack_clamp,
            'conntrack_memory': conntrack_memory,
            'conntrack_tuning_plan': conntrack_tuning_plan,
        }
