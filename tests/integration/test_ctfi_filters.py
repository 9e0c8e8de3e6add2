"""Lists, ``not:`` exclusions, NAT and zone filters on the real kernel (namespaces ``ctfi-*``, no suite lock).

* Property test (hypothesis): a random small table (UDP/TCP services, DNAT to backends, SNAT, marks, zones,
  both families) is created over netlink, conntrack_flush's engine deletes with a random list/exclusion
  filter, and what ``conntrack -L`` shows left must be exactly what an oracle keeps (the naive predicate of
  tests/unit/plugins/module_utils/test_filter_lists.py, independent of the collection); the check-mode count
  and the reported count must be the oracle's.
* The reconcile task (``not: {reply_src: live_backends}``) run as the module twice: the second run is
  ``changed: false``; an empty backend list deletes the whole service.
* NAT filters against ``conntrack -L``/``-D`` (-n, -g, -j with addresses and ports), where conntrack-tools
  1.4.7 is right; the directional-zone and zone differences are asserted as measured.
"""
import os
import shutil
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ctin_support as ct
import conntrack_text

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'unit', 'plugins', 'module_utils'))

from test_filter_lists import oracle  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)'),
    pytest.mark.skipif(shutil.which('conntrack') is None, reason='needs conntrack-tools'),
]

SERVICES4 = ['203.0.113.10', '203.0.113.11']
SERVICES6 = ['2001:db8::53']
BACKENDS4 = ['198.51.100.21', '198.51.100.22', '198.51.100.23']
BACKENDS6 = ['2001:db8:1::21', '2001:db8:1::22']
CLIENTS4 = ['192.0.2.%d' % i for i in range(1, 6)]
CLIENTS6 = ['2001:db8:2::%d' % i for i in range(1, 4)]

# Create entries (with CTA_NAT_SRC/DST where asked) and flush/list them, in the namespace.
CREATE = """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw, _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import af_of
F = nw.NLM_F_REQUEST | nw.NLM_F_ACK | nw.NLM_F_CREATE | nw.NLM_F_EXCL
def create(entries):
    with transport.Connection() as conn:
        for e in entries:
            conn.request(1, nw.IPCTNL_MSG_CT_NEW, F, af_of(e['family']), 0, codec.encode_ct_attrs(e) + codec.encode_nat(e))
"""

FLUSH = CREATE + """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctflush
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_OPTIONS
out = []
for entries, flt in DATA:
    create(entries)
    params = dict((k, None) for k in FILTER_OPTIONS)
    params.update(table='conntrack', all=False, max_delete=None, sample_size=0, helper=None, method='auto',
                  break_synproxy_connections=False)
    params.update(flt)
    checked = _ctflush.flush(params, check_mode=True)
    done = _ctflush.flush(params)
    with transport.Connection() as conn:
        rows = [[e['family'], e['protonum'], e.get('src'), e.get('dst'), e.get('sport'), e.get('dport'), e.get('zone', 0)]
                for e in conn.dump()]
    out.append({'check': checked['deleted'], 'deleted': done['deleted'], 'method': done['method'], 'rows': rows,
                'requests': len(_ctflush.validate_flush(params).kernel_requests())})
emit(out)
"""


def kernel_view(spec):
    """The entry dict as the kernel shows it after creating ``spec`` (reply tuple, NAT_DONE bits)."""
    e = dict(spec)
    e.update(reply_src=spec['dst'], reply_dst=spec['src'], reply_sport=spec['dport'], reply_dport=spec['sport'])
    status = list(spec['status']) + ['CONFIRMED']
    if 'nat_dst' in spec:
        e['reply_src'] = spec['nat_dst']['ip']
        e['reply_sport'] = spec['nat_dst'].get('port', spec['dport'])
    if 'nat_src' in spec:
        e['reply_dst'] = spec['nat_src']['ip']
        e['reply_dport'] = spec['nat_src'].get('port', spec['sport'])
    if 'nat_dst' in spec or 'nat_src' in spec:
        # the kernel sets up the other manip as a null binding: both DONE bits
        status += ['SRC_NAT_DONE', 'DST_NAT_DONE']
    e['status'] = status
    e.setdefault('mark', 0)
    e.setdefault('zone', 0)
    return e


@st.composite
def tables(draw):
    n = draw(st.integers(3, 24))
    out, seen, replies = [], set(), set()
    for unused in range(n):
        v6 = draw(st.integers(0, 3)) == 0
        proto = draw(st.sampled_from([17, 17, 6]))
        e = {'family': 'ipv6' if v6 else 'ipv4', 'protonum': proto,
             'src': draw(st.sampled_from(CLIENTS6 if v6 else CLIENTS4)),
             'dst': draw(st.sampled_from(SERVICES6 if v6 else SERVICES4)),
             'sport': draw(st.integers(1024, 1100)), 'dport': draw(st.sampled_from([53, 5353, 80])),
             'timeout': 600, 'status': ['SEEN_REPLY'], 'mark': draw(st.sampled_from([0, 0, 1, 2])),
             'zone': draw(st.sampled_from([0, 0, 7]))}
        if proto == 6:
            e['state'] = 'ESTABLISHED'
        nat = draw(st.sampled_from(['none', 'dnat', 'dnat', 'dnat_port', 'snat']))
        if nat.startswith('dnat'):
            e['nat_dst'] = {'ip': draw(st.sampled_from(BACKENDS6 if v6 else BACKENDS4))}
            if nat == 'dnat_port':
                e['nat_dst']['port'] = 8053
        elif nat == 'snat':
            e['nat_src'] = {'ip': '203.0.113.200' if not v6 else '2001:db8::200', 'port': 40000 + len(out)}
        orig = (e['family'], proto, e['src'], e['dst'], e['sport'], e['dport'], e['zone'])
        view = kernel_view(e)
        reply = (e['family'], proto, view['reply_src'], view['reply_dst'], view['reply_sport'], view['reply_dport'],
                 e['zone'])
        if orig not in seen and reply not in replies:  # the kernel refuses a clash of either tuple
            seen.add(orig)
            replies.add(reply)
            out.append(e)
    return out


@st.composite
def reconcile_filters(draw):
    flt = {'proto': draw(st.sampled_from(['udp', 'tcp']))}
    if draw(st.booleans()):
        flt['dst'] = draw(st.lists(st.sampled_from(SERVICES4 + SERVICES6), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        flt['dport'] = draw(st.lists(st.sampled_from([53, 5353, 80]), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        flt['mark'] = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        flt['zone'] = draw(st.lists(st.sampled_from([0, 7]), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 4)) == 0:
        flt['dst_nat'] = [True]
    sub = {}
    choice = draw(st.integers(0, 4))
    if choice <= 2:
        sub['reply_src'] = draw(st.lists(st.sampled_from(BACKENDS4 + BACKENDS6 + SERVICES4 + ['198.51.100.0/30']),
                                         max_size=4, unique=True))
    elif choice == 3:
        sub['dst_nat'] = draw(st.lists(st.sampled_from([True, BACKENDS4[0], BACKENDS4[1] + ':8053']), min_size=1,
                                       max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        sub['mark'] = [draw(st.sampled_from([1, 2]))]
    if sub:
        flt['not'] = sub
    return flt


def left_keys(ns):
    listed = conntrack_text.parse_listing(ct.conntrack(ns, '-L', '-o', 'extended').stdout)
    return sorted((e['family'], e['protonum'], e['src'], e['dst'], e['sport'], e['dport'], e.get('zone', 0))
                  for e in listed)


def key(e):
    return (e['family'], e['protonum'], e['src'], e['dst'], e['sport'], e['dport'], e.get('zone', 0))


@pytest.fixture(scope='module')
def prop_ns():
    with netns('ctfi-prop') as name:
        yield name


@pytest.fixture(scope='module')
def stats():
    counts = {'examples': 0, 'deleted': 0, 'methods': set(), 'multi_requests': 0}
    yield counts
    assert counts['examples'] >= 30
    assert counts['deleted'] > 0 and counts['multi_requests'] > 0


class netns(object):
    """A namespace of this file (prefix ctfi), lo up, always removed."""

    def __init__(self, name):
        assert name.startswith('ctfi') and len(name) <= 15, name
        self.name = name

    def __enter__(self):
        ct.sh('ip', 'netns', 'del', self.name, check=False)
        ct.sh('ip', 'netns', 'add', self.name)
        try:
            ct.sh('ip', '-n', self.name, 'link', 'set', 'lo', 'up')
        except Exception:
            ct.sh('ip', 'netns', 'del', self.name, check=False)
            raise
        return self.name

    def __exit__(self, *exc):
        ct.sh('ip', 'netns', 'del', self.name, check=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(tables(), reconcile_filters())
def test_flush_deletes_what_the_oracle_deletes(prop_ns, stats, table, flt):
    ct.conntrack(prop_ns, '-F', check=False)
    views = [kernel_view(e) for e in table]
    res = ct.in_ns(prop_ns, FLUSH, [[table, flt]])[0]
    want_deleted = sorted(key(e) for e in views if oracle(flt, e))
    want_left = sorted(key(e) for e in views if not oracle(flt, e))
    left = left_keys(prop_ns)
    assert left == want_left, (flt, res['method'])
    assert sorted(tuple(r) for r in res['rows']) == want_left
    assert res['check'] == len(want_deleted) == res['deleted'], (flt, res)
    stats['examples'] += 1
    stats['deleted'] += res['deleted']
    stats['methods'].add(res['method'])
    stats['multi_requests'] += res['requests'] > 2


# --- the reconcile task, as the module -------------------------------------------------------------------

def reconcile_table():
    out = []
    for i, backend in enumerate(BACKENDS4 * 4):
        out.append({'family': 'ipv4', 'protonum': 17, 'src': CLIENTS4[i % 5], 'dst': SERVICES4[0], 'sport': 2000 + i,
                    'dport': 53, 'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': backend}})
    # another service and a TCP flow to the same address: never touched
    out.append({'family': 'ipv4', 'protonum': 17, 'src': CLIENTS4[0], 'dst': SERVICES4[1], 'sport': 3000, 'dport': 53,
                'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': BACKENDS4[2]}})
    out.append({'family': 'ipv4', 'protonum': 6, 'src': CLIENTS4[0], 'dst': SERVICES4[0], 'sport': 3001, 'dport': 53,
                'timeout': 600, 'status': ['SEEN_REPLY'], 'state': 'ESTABLISHED', 'nat_dst': {'ip': BACKENDS4[2]}})
    return out


def test_reconcile_is_one_idempotent_task():
    with netns('ctfi-rec') as ns:
        ct.in_ns(ns, CREATE + 'create(DATA)', reconcile_table())
        before = left_keys(ns)
        task = {'proto': 'udp', 'dst': SERVICES4[0], 'dport': 53, 'not': {'reply_src': BACKENDS4[:2]},
                'max_delete': 5000}
        rc, res, err = ct.run_module('conntrack_flush', dict(task, _ansible_diff=True), namespace=ns, check_mode=True)
        assert rc == 0, (res, err[-2000:])
        assert res['changed'] and res['deleted'] == 4 and left_keys(ns) == before
        rc, res, err = ct.run_module('conntrack_flush', task, namespace=ns)
        assert rc == 0 and res['changed'] and res['deleted'] == 4, (res, err[-2000:])
        assert res['filter']['not'] == {'reply_src': BACKENDS4[:2]}
        after = left_keys(ns)
        assert len(after) == len(before) - 4
        listed = conntrack_text.parse_listing(ct.conntrack(ns, '-L', '-o', 'extended').stdout)
        assert not [e for e in listed if e['dst'] == SERVICES4[0] and e['protonum'] == 17
                    and e['reply_src'] == BACKENDS4[2]]
        rc, res, err = ct.run_module('conntrack_flush', task, namespace=ns)
        assert rc == 0 and not res['changed'] and res['deleted'] == 0, res
        assert left_keys(ns) == after
        # no live backend left: every entry of the service goes, the other service and TCP stay
        rc, res, err = ct.run_module('conntrack_flush', dict(task, **{'not': {'reply_src': []}}), namespace=ns)
        assert rc == 0 and res['deleted'] == 8, res
        assert len(left_keys(ns)) == 2
        # an exclusion alone needs all: true; bad list items fail naming the item, nothing deleted
        rc, res, err = ct.run_module('conntrack_flush', {'not': {'mark': 1}}, namespace=ns)
        assert rc == 1 and 'all: true' in res['msg']
        rc, res, err = ct.run_module('conntrack_flush', dict(task, **{'not': {'reply_src': ['198.51.100.1', 'x']}}),
                                     namespace=ns)
        assert rc == 1 and 'not.reply_src[1]' in res['msg'], res
        assert len(left_keys(ns)) == 2


# --- NAT and zone filters against conntrack-tools --------------------------------------------------------

NAT_TABLE = [
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '203.0.113.10', 'sport': 1000, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': '198.51.100.5', 'port': 5353}},
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '203.0.113.10', 'sport': 1001, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': '198.51.100.5'}},
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.2', 'dst': '203.0.113.10', 'sport': 1002, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': '198.51.100.6'}},
    {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.3', 'dst': '203.0.113.20', 'sport': 1003, 'dport': 443,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'state': 'ESTABLISHED', 'nat_src': {'ip': '203.0.113.1', 'port': 40000}},
    {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.4', 'dst': '203.0.113.20', 'sport': 1004, 'dport': 443,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'state': 'ESTABLISHED', 'nat_src': {'ip': '203.0.113.1'}},
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.5', 'dst': '203.0.113.10', 'sport': 1005, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_src': {'ip': '203.0.113.1'}, 'nat_dst': {'ip': '198.51.100.5'}},
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.6', 'dst': '203.0.113.10', 'sport': 1006, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY']},
    {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.7', 'dst': '203.0.113.10', 'sport': 1007, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'zone': 5},
    {'family': 'ipv6', 'protonum': 17, 'src': '2001:db8::1', 'dst': '2001:db8::10', 'sport': 1000, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY'], 'nat_dst': {'ip': '2001:db8::99', 'port': 5353}},
    {'family': 'ipv6', 'protonum': 17, 'src': '2001:db8::2', 'dst': '2001:db8::10', 'sport': 1001, 'dport': 53,
     'timeout': 600, 'status': ['SEEN_REPLY']},
]

# (our filter, conntrack -L arguments): conntrack-tools 1.4.7 agrees on each of these
NAT_CASES = [
    ({'src_nat': True}, ['--src-nat']),
    ({'dst_nat': True}, ['--dst-nat']),
    ({'any_nat': True}, ['--any-nat']),
    ({'dst_nat': '198.51.100.5'}, ['--dst-nat', '198.51.100.5']),
    ({'dst_nat': '198.51.100.5:5353'}, ['--dst-nat', '198.51.100.5:5353']),
    ({'src_nat': '203.0.113.1'}, ['--src-nat', '203.0.113.1']),
    ({'src_nat': '203.0.113.1:40000'}, ['--src-nat', '203.0.113.1:40000']),
    ({'any_nat': '203.0.113.1'}, ['--any-nat', '203.0.113.1']),
    ({'any_nat': '198.51.100.6'}, ['--any-nat', '198.51.100.6']),
    ({'src_nat': True, 'dst_nat': True}, ['--src-nat', '--dst-nat']),
    ({'dst_nat': '2001:db8::99'}, ['--dst-nat', '2001:db8::99']),
    ({'dst_nat': '[2001:db8::99]:5353'}, ['--dst-nat', '[2001:db8::99]:5353']),
    ({'proto': 'udp', 'dst_nat': '198.51.100.5'}, ['-p', 'udp', '--dst-nat', '198.51.100.5']),
]

LIST = """
import json
from ansible_collections.netfilter.conntrack.plugins.module_utils import _info
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_OPTIONS
out = []
for flt in DATA:
    params = dict((k, None) for k in FILTER_OPTIONS)
    params.update(entries=True, limit=0, summary=False, top=10, expectations=False, query=None,
                  backend='netlink', as_facts=False, table='conntrack')
    params.update(flt)
    result, _w = _info.gather(params)
    stream = result['entries']
    rows = [e for chunk in stream.chunks() for e in (json.loads('[%s]' % ', '.join(chunk)) if stream.text else chunk)]
    out.append(sorted([e['family'], e['protonum'], e['src'], e['dst'], e['sport'], e['dport'], e.get('zone', 0)]
                      for e in rows))
emit(out)
"""


@pytest.fixture(scope='module')
def nat_ns():
    with netns('ctfi-nat') as ns:
        ct.in_ns(ns, CREATE + 'create(DATA)', NAT_TABLE)
        yield ns


def cli_keys(ns, *args):
    proc = ct.conntrack(ns, '-L', '-o', 'extended', *args, check=False)
    assert proc.returncode == 0, proc.stderr
    return sorted([e['family'], e['protonum'], e['src'], e['dst'], e['sport'], e['dport'], e.get('zone', 0)]
                  for e in conntrack_text.parse_listing(proc.stdout))


def test_nat_filters_list_what_conntrack_lists(nat_ns):
    ours = ct.in_ns(nat_ns, LIST, [flt for flt, _args in NAT_CASES])
    views = [kernel_view(e) for e in NAT_TABLE]
    for (flt, args), got in zip(NAT_CASES, ours):
        theirs = cli_keys(nat_ns, *args)
        assert got == theirs, (flt, args)
        if set(flt) <= {'proto', 'dst_nat'}:  # what the oracle knows of NAT
            listed = dict((k, v if k == 'proto' else [v]) for k, v in flt.items())
            assert got == sorted(list(key(e)) for e in views if oracle(listed, e)), flt
    assert sum(bool(rows) for rows in ours) >= len(NAT_CASES) - 1


def test_nat_flush_deletes_what_conntrack_deletes():
    """conntrack -D --src-nat/--dst-nat in a twin namespace; conntrack 1.4.7 refuses -D --any-nat ("Illegal
    option"), so any_nat deletes what conntrack -L --any-nat lists."""
    for flt, args in [({'dst_nat': '198.51.100.5'}, ['--dst-nat', '198.51.100.5']), ({'src_nat': True}, ['--src-nat']),
                      ({'dst_nat': '198.51.100.5:5353'}, ['--dst-nat', '198.51.100.5:5353']),
                      ({'any_nat': '203.0.113.1'}, None)]:
        with netns('ctfi-na') as ours, netns('ctfi-nb') as cli:
            for ns in (ours, cli):
                ct.in_ns(ns, CREATE + 'create(DATA)', NAT_TABLE)
            listed = [tuple(k) for k in cli_keys(ours, *('--any-nat', flt['any_nat']))] if args is None else None
            rc, res, err = ct.run_module('conntrack_flush', flt, namespace=ours)
            assert rc == 0 and res['changed'], (res, err[-1000:])
            if args is None:
                assert sorted(set(left_keys(cli)) - set(left_keys(ours))) == sorted(listed)
                proc = ct.conntrack(cli, '-D', '--any-nat', flt['any_nat'], check=False)
                assert proc.returncode != 0 and 'any-nat' in proc.stderr  # as measured: 1.4.7 refuses it
                continue
            ct.conntrack(cli, '-D', *args, check=False)
            assert left_keys(ours) == left_keys(cli), flt
            assert len(left_keys(ours)) < len(NAT_TABLE)


def test_zone_filters_as_measured():
    """zone is the zone id whatever its direction (as the kernel's CTA_ZONE dump filter compares it); conntrack
    1.4.7's -w compares only zones of both directions, --orig-zone only zones of the original direction alone."""
    code = CREATE + """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as v
with transport.Connection() as conn:
    orig = {'src': '192.0.2.1', 'dst': '203.0.113.10', 'sport': 1003, 'dport': 53, 'protonum': 17, 'zone': 5}
    reply = {'src': '203.0.113.10', 'dst': '192.0.2.1', 'sport': 53, 'dport': 1003, 'protonum': 17}
    attrs = codec.encode_tuple(v.CTA_TUPLE_ORIG, 'ipv4', orig) + codec.encode_tuple(v.CTA_TUPLE_REPLY, 'ipv4', reply)
    attrs += nw.nla_be32(v.CTA_STATUS, 10) + nw.nla_be32(v.CTA_TIMEOUT, 600)
    conn.request(1, nw.IPCTNL_MSG_CT_NEW, F, 2, 0, attrs)
create([{'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '203.0.113.10', 'sport': 1004, 'dport': 53,
         'timeout': 600, 'status': ['SEEN_REPLY'], 'zone': 5},
        {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '203.0.113.10', 'sport': 1005, 'dport': 53,
         'timeout': 600, 'status': ['SEEN_REPLY']}])
"""
    with netns('ctfi-zone') as ns:
        ct.in_ns(ns, code)
        filters = [{'zone': 5}, {'zone': 0}, {'orig_zone': 5}, {'reply_zone': 5}, {'reply_zone': 0}, {'zone': [0, 5]},
                   {'orig_zone': 5, 'not': {'zone': 5, 'reply_zone': 5}}]
        got = [[row[4] for row in rows] for rows in ct.in_ns(ns, LIST, filters)]
        assert got == [[1003, 1004], [1005], [1003, 1004], [1004], [1003, 1005], [1003, 1004, 1005], [1003]]
        # conntrack-tools 1.4.7, as measured here
        assert [row[4] for row in cli_keys(ns, '-w', '5')] == [1004]
        assert [row[4] for row in cli_keys(ns, '--orig-zone', '5')] == [1003]
        # the directional entry is deleted by its own tuple (CTA_TUPLE_ZONE copied into the request)
        rc, res, err = ct.run_module('conntrack_flush', {'orig_zone': 5, 'not': {'zone': 5, 'reply_zone': 5}},
                                     namespace=ns)
        assert rc == 0 and res['deleted'] == 1, (res, err[-1000:])
        assert [row[4] for row in cli_keys(ns)] == [1004, 1005]


def test_dying_and_unconfirmed_tables_list_like_conntrack():
    with netns('ctfi-dying') as ns:
        ct.in_ns(ns, CREATE + 'create(DATA)', NAT_TABLE[:3])
        for table in ('dying', 'unconfirmed'):
            rc, res, err = ct.run_module('conntrack_info', {'table': table, 'entries': True, 'proto': 'udp'},
                                         namespace=ns)
            assert rc == 0, (res, err[-1000:])
            assert res['table'] == table
            assert res['matched'] == len(conntrack_text.parse_listing(ct.conntrack(ns, '-L', table).stdout))
        rc, res, _err = ct.run_module('conntrack_info', {'table': 'dying', 'entries': True, 'backend': 'procfs'},
                                      namespace=ns)
        assert rc == 1 and 'table dying needs the netlink backend' in res['msg']


LABEL_RULES = """
table inet ctfi_label {
    chain out {
        type filter hook output priority 0
        udp dport 5001-5003 ct label set 3
        udp dport 5003 ct label set 7
    }
}
"""

# UDP datagrams from 4 source ports to each of the ports 5000-5004 (nobody listens: the entries stay, unreplied)
SEND_UDP = """
import socket
for sport in (41001, 41002, 41003, 41004):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('192.0.2.1', sport))
    for dport in range(5000, 5005):
        s.sendto(b'x', ('192.0.2.1', dport))
    s.close()
"""


def test_label_filter_on_labels_set_by_a_ct_label_rule():
    """Labels put on entries by real packets through nft's ``ct label set`` (not by the collection): the label
    filter lists and deletes exactly the labelled flows, ``not: {label}`` the others."""
    with netns('ctfi-label') as ns:
        ct.sh('ip', '-n', ns, 'addr', 'add', '192.0.2.1/24', 'dev', 'lo')
        ct.nft(ns, LABEL_RULES)
        ct.in_ns(ns, SEND_UDP)
        cases = [({'label': 3}, [5001, 5002, 5003]), ({'label': [3, 7]}, [5003]), ({'label': 7}, [5003]),
                 ({'not': {'label': 3}}, [5000, 5004]), ({'label': 3, 'not': {'label': 7}}, [5001, 5002])]
        for flt, dports in cases:
            rc, res, err = ct.run_module('conntrack_info', dict(flt, proto='udp', entries=True, dport=list(range(5000, 5005))),
                                         namespace=ns)
            assert rc == 0, (flt, res, err[-1000:])
            assert sorted(set(e['dport'] for e in res['entries'])) == dports, (flt, res['entries'][:3])
            assert res['matched'] == 4 * len(dports), (flt, res['matched'])
            for e in res['entries']:  # the labels listed are the ones the rules set
                assert sorted(e.get('labels') or []) == [3] * (5001 <= e['dport'] <= 5003) + [7] * (e['dport'] == 5003), e
        rc, res, err = ct.run_module('conntrack_flush', {'label': 7}, namespace=ns)
        assert rc == 0 and res['deleted'] == 4, (res, err[-1000:])
        left = sorted(row[5] for row in cli_keys(ns, '-p', 'udp'))
        assert left == sorted([5000, 5001, 5002, 5004] * 4), left
        rc, res, err = ct.run_module('conntrack_flush', {'label': 7}, namespace=ns)
        assert rc == 0 and res['deleted'] == 0 and not res['changed'], res
