# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_flush's engine: validate, guard SYNPROXY-protected traffic, choose the method, flush.

Entries are deleted by ``_ctselect.select`` (batched deletes while the dump runs), or by the kernel. A
kernel-side flush (one CT_DELETE without a tuple) is used only when the kernel selects exactly
what the filter means: family (nfgen version 1), mark/mask, status/mask and zone, on a kernel known
to honour all of them (Linux 6.8+, measured on 6.18 in tests/integration/test_flush_differential.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    KERNEL_FLUSH_MIN, ConntrackError, kernel_version, read_int)
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_EXP_DELETE, NFNETLINK_V0, NFNETLINK_V1, NFNL_SUBSYS_CTNETLINK,
    NFNL_SUBSYS_CTNETLINK_EXP, NLM_F_ACK, NLM_F_REQUEST, NetlinkError, nla_str)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    CTA_EXPECT_HELP_NAME, FAMILIES, PROTO_NUMBERS)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctwrite import delete_expect
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctselect import SAMPLE_DEFAULT, counting_batch, select
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter, kernel_selects_exactly


def kernel_flushable(flt, release=None):
    """True when one kernel-side flush deletes exactly the entries ``flt.match`` accepts.

    Only family, mark/mask, status/mask and zone qualify (ctnetlink refuses CTA_FILTER tuple filters in a
    flush), on a kernel whose dumps select them exactly (``kernel_selects_exactly``, the same decision as
    listings) and whose flush honours them (Linux 6.8).
    """
    if kernel_version(release) < KERNEL_FLUSH_MIN or flt.uses_tuple_filter():
        return False
    return kernel_selects_exactly(flt, release)


def flush_request_attrs(flt):
    """(nfgen family, attrs) of the kernel-side flush for a ``kernel_flushable`` filter of single values."""
    return FAMILIES.get(flt.family, 0), flt.selector_attrs()


def flush_requests(flt):
    """[(nfgen family, attrs)]: one kernel-side flush per branch of a ``kernel_flushable`` filter (``mark: [1, 2]``
    is two flushes; the branches are disjoint)."""
    return [flush_request_attrs(view) for view in flt.branches()]


def kernel_flush(conn, flt):
    """CT_DELETE without a tuple, per branch: the kernel deletes every entry matching family/mark/status/zone.

    nfgen version 1 is what makes the kernel honour the family (version 0 flushes every family)."""
    for family, attrs in flush_requests(flt):
        try:
            conn.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK,
                         family, NFNETLINK_V1, attrs, action='flushing the conntrack table')
        except NetlinkError as exc:
            raise NetlinkError(exc.errno, 'flushing the conntrack table')


# --- conntrack_flush ----------------------------------------------------------------------------

FLUSH_ARGSPEC = dict(
    table=dict(type='str', default='conntrack', choices=['conntrack', 'expect']),
    all=dict(type='bool', default=False),
    max_delete=dict(type='int'),
    sample_size=dict(type='int', default=SAMPLE_DEFAULT),
    helper=dict(type='str'),
    method=dict(type='str', default='auto', choices=['auto', 'batched_delete']),
    break_synproxy_connections=dict(type='bool', default=False),
)
EXPECT_FILTERS = ('family', 'proto', 'src', 'dst', 'sport', 'dport', 'zone')


def validate_flush(params):
    """Check every option before the kernel is touched; return the Filter."""
    flt = Filter.from_params(params)
    if params.get('max_delete') is not None and params['max_delete'] < 0:
        raise ConntrackError('max_delete %s is negative: give the largest number of entries this task may delete'
                             % params['max_delete'], option='max_delete')
    if params.get('sample_size') is not None and params['sample_size'] < 0:
        raise ConntrackError('sample_size %s is negative: give 0 for no sample' % params['sample_size'],
                             option='sample_size')
    expect = params.get('table') == 'expect'
    if expect:
        bad = sorted(k for k in flt.given if k not in EXPECT_FILTERS)
        if bad:
            raise ConntrackError('%s cannot filter the expect table: expectations are selected by helper and by '
                                 'their master connection (%s)' % (', '.join(bad), ', '.join(EXPECT_FILTERS)),
                                 option=bad[0])
    elif params.get('helper'):
        raise ConntrackError('helper filters the expect table only: set table: expect (conntrack entries are '
                             'filtered by the other options)', option='helper')
    if expect and flt.negated is not None:
        raise ConntrackError('not cannot filter the expect table: select expectations by helper and master tuple',
                             option='not')
    selective = bool(flt.positive) or (expect and params.get('helper'))
    if params.get('all') and selective:
        raise ConntrackError('all: true deletes every entry and cannot be combined with filter options (%s): '
                             'remove all, or remove the filter (all: true takes not: alone, to keep what it '
                             'names)' % (flt.describe() if flt.positive else 'helper'), option='all')
    if not selective and not params.get('all'):
        raise ConntrackError('no filter given: this would delete every entry of the %s table%s. Give filter '
                             'options, or all: true to really flush everything'
                             % ('expectation' if expect else 'conntrack',
                                ' but those not: names' if flt.negated is not None else ''), option='all')
    return flt


def _count_all():
    value = read_int('/proc/sys/net/netfilter/nf_conntrack_count')
    if value is None:
        with Connection() as conn:
            value = conn.stats_global().get('count', 0)
    return value


def _first_entries(count):
    """The first ``count`` entries of a full dump (the dump is abandoned after them)."""
    out = []
    if count > 0:
        with Connection() as conn:
            for items in conn.dump_batches(batch=counting_batch(out, count)):
                if len(out) >= count:
                    break
    return out


def synproxy_guards(breaking=False):
    """Filters of the traffic the owned nft table puts behind SYNPROXY (empty when there is none).

    Fails closed: when the table cannot be read (other than for want of nft or of nf_tables, where no table
    of ours can exist), the flush is refused unless the task breaks protected connections anyway."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft

    try:
        _nft.nft_binary()
    except ConntrackError:
        return []  # no nft on the host: the collection cannot have written a table
    try:
        text = _nft.read_table()
    except ConntrackError as exc:
        if 'no nf_tables support' in exc.msg or breaking:
            return []
        raise ConntrackError('cannot tell which entries SYNPROXY protects (%s): nothing was deleted. Fix the '
                             'cause, or set break_synproxy_connections: true to flush without that check'
                             % exc.msg, option='break_synproxy_connections')
    return [(Filter.port_guard(family, 6, ports), _nft.describe_protected(family, ports))
            for family, ports in _nft.protected_traffic(text)]


def flush_conntrack(params, check_mode=False, release=None, flt=None):
    """conntrack_flush on the conntrack table. Returns the result dict (without ``changed``)."""
    if flt is None:
        flt = validate_flush(params)
    sample_size = params.get('sample_size')
    if sample_size is None:
        sample_size = SAMPLE_DEFAULT
    max_delete = params.get('max_delete')
    result = {'table': 'conntrack', 'filter': flt.given, 'warnings': []}
    guards = synproxy_guards(breaking=params.get('break_synproxy_connections'))
    guard_filters = []
    if guards:
        result['protected'] = [text for _guard, text in guards]
        if params.get('break_synproxy_connections'):
            result['warnings'].append(
                'break_synproxy_connections: entries of SYNPROXY-protected traffic (%s) are deleted with the others: '
                'SYNPROXY cannot re-create them mid-stream, so those connections break'
                % '; '.join(result['protected']))
        else:
            for guard, _text in guards:
                flt.exclude(guard)
                guard_filters.append(guard)
    kernel = params.get('method', 'auto') == 'auto' and kernel_flushable(flt, release)
    result['method'] = 'kernel_flush' if kernel else 'batched_delete'

    if flt.empty:
        matched = _count_all()
        sample = _first_entries(sample_size)
    elif kernel or check_mode or max_delete is not None:
        # an exact count first: the kernel-side requests of a flushable filter select exactly
        matched, _deleted, sample = select(flt, delete=False, sample_size=sample_size,
                                           limit=max_delete, exact=True if kernel else None)
    else:
        matched = None
        sample = None

    if max_delete is not None and matched > max_delete:
        raise ConntrackError('more than max_delete=%d entries match (%s): nothing was deleted. Narrow the '
                             'filter or raise max_delete' % (max_delete, flt.describe()), option='max_delete',
                             matched=matched)
    if check_mode:
        result.update(deleted=matched, sample=sample)
    elif kernel:
        if matched:
            with Connection() as conn:
                kernel_flush(conn, flt)
        result.update(deleted=matched, sample=sample)
    else:
        _matched, deleted, new_sample = select(flt, delete=True, sample_size=sample_size)
        result.update(deleted=deleted, sample=sample if sample is not None else new_sample)
    if result['deleted'] and read_int('/proc/sys/net/netfilter/nf_conntrack_tcp_loose') == 0 and \
            (flt.protonum in (None, 6)):
        result['warnings'].append(
            'nf_conntrack_tcp_loose=0 here: the kernel does not pick up a TCP connection from a mid-stream packet, '
            'so the established connections whose entries were deleted now pass as ct state invalid. The '
            "collection's rules drop invalid packets on SYNPROXY-protected ports only, but a host firewall that "
            'drops invalid packets (or accepts only ct state new/established) cuts those connections')
    kept_part = flt.excluded_part(only=guard_filters)  # not the user's own not: exclusion
    if kept_part is not None:
        kept = select(kept_part, delete=False, sample_size=0)[0]
        result['protected_kept'] = kept
        if kept:
            result['msg'] = ('kept %d entries of SYNPROXY-protected traffic (%s): SYNPROXY cannot re-create an entry '
                             'mid-stream, so deleting it would break its connection. Set break_synproxy_connections: '
                             'true to delete them anyway' % (kept, '; '.join(result['protected'])))
            result['warnings'].append(result['msg'])
    return result


# --- expectations --------------------------------------------------------------------------------

def _expect_matches(flt, helper):
    def match(exp):
        if helper and exp.get('helper') != helper:
            return False
        if flt.empty:
            return True
        master = dict(exp.get('master') or {})
        master['family'] = exp.get('family')
        master['protonum'] = PROTO_NUMBERS.get(master.get('proto'))
        master['zone'] = exp.get('zone', 0)
        return flt.match(master)
    return match


def flush_expect(params, check_mode=False, flt=None):
    """conntrack_flush on the expect table: all, by helper name, or by master tuple."""
    if flt is None:
        flt = validate_flush(params)
    helper = params.get('helper')
    sample_size = params.get('sample_size')
    if sample_size is None:
        sample_size = SAMPLE_DEFAULT
    match = _expect_matches(flt, helper)
    with Connection() as conn:
        chosen = [exp for exp in conn.dump_expect() if match(exp)]
    given = dict(flt.given)
    if helper:
        given['helper'] = helper
    kernel = params.get('method', 'auto') == 'auto' and flt.empty
    result = {'table': 'expect', 'filter': given, 'method': 'kernel_flush' if kernel else 'batched_delete',
              'sample': chosen[:sample_size]}
    max_delete = params.get('max_delete')
    if max_delete is not None and len(chosen) > max_delete:
        raise ConntrackError('more than max_delete=%d expectations match (%d): nothing was deleted. Narrow the '
                             'filter or raise max_delete' % (max_delete, len(chosen)), option='max_delete')
    if check_mode or not chosen:
        result['deleted'] = len(chosen)
        return result
    with Connection() as conn:
        if kernel:
            # one EXP_DELETE without a tuple: everything, or every expectation of one helper
            attrs = nla_str(CTA_EXPECT_HELP_NAME, helper) if helper else b''
            try:
                conn.request(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE, NLM_F_REQUEST | NLM_F_ACK,
                             0, NFNETLINK_V0, attrs, action='flushing the expect table')
            except NetlinkError as exc:
                raise NetlinkError(exc.errno, 'flushing the expect table')
            result['deleted'] = len(chosen)
        else:
            result['deleted'] = sum(1 for exp in chosen if delete_expect(conn, exp))
    return result


def flush(params, check_mode=False, flt=None):
    """The conntrack_flush result: what was (or, in check mode, would be) deleted, ``changed`` and the diff.
    ``flt``: the Filter ``validate_flush`` returned (validated once)."""
    if params.get('table') == 'expect':
        result = flush_expect(params, check_mode, flt=flt)
    else:
        result = flush_conntrack(params, check_mode, flt=flt)
    what = 'expectations' if result['table'] == 'expect' else 'entries'
    result.update(changed=result['deleted'] > 0,
                  diff={'before': '%d matching %s\n' % (result['deleted'], what), 'after': '0 matching %s\n' % what})
    return result
