"""conntrack_flush against the real kernel in namespace ``ctwr-flush``: deletes by source, mark, CIDR and
netmask CIDR, zero matches, the all/max_delete guards, check mode, expectations. Every test compares
the table before and after: exactly the matching entries are gone."""
import os

import pytest

import ctwr_support as ws

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)')]

NS = 'ctwr-flush'
SIZE = 1500
SEED = 31


@pytest.fixture(scope='module')
def ns():
    with ws.netns(NS) as name:
        yield name


@pytest.fixture
def table(ns):
    ws.flush_all(ns)
    assert ws.fill(ns, SIZE, SEED) == 0
    rows = ws.snapshot(ns)
    assert len(rows) == SIZE
    return rows


def run(ns, args, check_mode=False):
    rc, result, stderr = ws.run_module('conntrack_flush', dict(args, _ansible_diff=True), namespace=ns,
                                       check_mode=check_mode)
    assert 'Traceback' not in stderr, stderr
    return rc, result


def in_net(addr, net):
    import ipaddress
    return addr is not None and ipaddress.ip_address(addr) in ipaddress.ip_network(net, strict=False)


def check_delete(ns, table, args, pred, method=None):
    rc, res = run(ns, args)
    assert rc == 0, res
    want = set(r for r in table if pred(r))
    after = ws.snapshot(ns)
    assert table - after == want, args  # exactly the matching entries are gone
    assert after == table - want  # nothing else touched (ids unchanged)
    assert res['deleted'] == len(want) and res['changed'] == bool(want), res
    assert len(res['sample']) == min(10, len(want))
    if method:
        assert res['method'] == method, res
    rc, again = run(ns, args)
    assert rc == 0 and again['deleted'] == 0 and not again['changed'], again
    return res


def test_delete_by_source(ns, table):
    src = sorted(r[2] for r in table if r[0] == 'ipv4')[0]
    check_delete(ns, table, {'src': src}, lambda r: r[2] == src, 'batched_delete')


def test_delete_by_mark(ns, table):
    check_delete(ns, table, {'mark': '0x10', 'mark_mask': '0xf0'}, lambda r: r[10] & 0xf0 == 0x10, 'kernel_flush')


def test_delete_by_mark_zero_in_zone(ns, table):
    check_delete(ns, table, {'mark': 0, 'zone': 0}, lambda r: r[10] == 0 and r[9] == 0, 'kernel_flush')


def test_delete_by_cidr(ns, table):
    check_delete(ns, table, {'dst': '198.51.100.0/25'}, lambda r: in_net(r[3], '198.51.100.0/25'))


def test_delete_by_netmask_cidr(ns, table):
    res = check_delete(ns, table, {'src': '203.0.113.0/255.255.255.0'}, lambda r: in_net(r[2], '203.0.113.0/24'))
    assert res['deleted'] > 0


def test_delete_ipv6_cidr_tcp_port(ns, table):
    check_delete(ns, table, {'src': '2001:db8:1::/48', 'proto': 'tcp', 'dport': 443},
                 lambda r: r[1] == 6 and r[5] == 443 and in_net(r[2], '2001:db8:1::/48'))


def test_batched_equals_kernel_flush(ns, table):
    check_delete(ns, table, {'mark': 1, 'method': 'batched_delete'}, lambda r: r[10] == 1, 'batched_delete')


def test_zero_matches_no_change(ns, table):
    rc, res = run(ns, {'src': '192.0.2.0/24', 'mark': 12345})
    assert rc == 0 and res['deleted'] == 0 and not res['changed'] and res['sample'] == [], res
    assert ws.snapshot(ns) == table


def test_no_filter_needs_all(ns, table):
    rc, res = run(ns, {})
    assert rc == 1 and 'all: true' in res['msg'], res
    assert ws.snapshot(ns) == table
    rc, res = run(ns, {'all': True, 'proto': 'tcp'})
    assert rc == 1 and 'cannot be combined' in res['msg'], res
    assert ws.snapshot(ns) == table
    rc, res = run(ns, {'all': True})
    assert rc == 0 and res['changed'] and res['deleted'] == SIZE and res['method'] == 'kernel_flush', res
    assert ws.snapshot(ns) == set()
    rc, res = run(ns, {'all': True})
    assert rc == 0 and not res['changed'] and res['deleted'] == 0


def test_max_delete_guard(ns, table):
    tcp = sum(1 for r in table if r[1] == 6)
    rc, res = run(ns, {'proto': 'tcp', 'max_delete': tcp - 1})
    assert rc == 1 and 'max_delete' in res['msg'] and 'nothing was deleted' in res['msg'], res
    assert ws.snapshot(ns) == table
    rc, res = run(ns, {'mark': 0, 'max_delete': 3})
    assert rc == 1 and ws.snapshot(ns) == table, res
    check_delete(ns, table, {'proto': 'tcp', 'max_delete': tcp}, lambda r: r[1] == 6)


def test_check_mode_changes_nothing(ns, table):
    for args in ({'proto': 'udp'}, {'mark': 1}, {'all': True}, {'src': '192.0.2.0/24', 'proto': 'tcp'}):
        rc, res = run(ns, args, check_mode=True)
        assert rc == 0 and res['changed'] and res['deleted'] > 0, res
        assert ws.snapshot(ns) == table, args
    rc, res = run(ns, {'mark': 1}, check_mode=True)
    assert res['deleted'] == sum(1 for r in table if r[10] == 1)


@pytest.mark.parametrize('args, words', [
    ({'dport': 80}, ['dport', 'proto']),
    ({'src': '192.0.2.0/33'}, ['src', 'CIDR']),
    ({'mark_mask': 255}, ['mark_mask', 'needs mark']),
    ({'zone': 70000}, ['zone', '0-65535']),
    ({'max_delete': -1, 'proto': 'tcp'}, ['max_delete']),
    ({'helper': 'ftp'}, ['table: expect']),
    ({'table': 'expect', 'mark': 1}, ['mark', 'expect table']),
    ({'state': ['FLYING']}, ['FLYING']),
])
def test_bad_input(ns, table, args, words):
    rc, res = run(ns, args)
    assert rc == 1 and res.get('failed'), res
    for word in words:
        assert word in res['msg'], (word, res['msg'])
    assert ws.snapshot(ns) == table


SPECS = [['ftp', 6, 1000, 21, 51000], ['ftp', 6, 1001, 21, 51001], ['tftp', 17, 1002, 69, 51002]]


def test_expectations(ns):
    ws.flush_all(ns)
    ws.conntrack(ns, '-F', 'expect', check=False)
    assert sorted(ws.create_expectations(ns, SPECS)) == [51000, 51001, 51002]
    rc, res = run(ns, {'table': 'expect'})
    assert rc == 1 and 'all: true' in res['msg']
    # check mode, by helper
    rc, res = run(ns, {'table': 'expect', 'helper': 'tftp'}, check_mode=True)
    assert res['changed'] and res['deleted'] == 1 and ws.expectations(ns) == [51000, 51001, 51002], res
    rc, res = run(ns, {'table': 'expect', 'helper': 'tftp'})
    assert res['changed'] and res['deleted'] == 1, res
    assert ws.expectations(ns) == [51000, 51001]
    assert not run(ns, {'table': 'expect', 'helper': 'tftp'})[1]['changed']
    # by master tuple
    rc, res = run(ns, {'table': 'expect', 'proto': 'tcp', 'sport': 1001, 'dst': '192.0.2.2'})
    assert res['deleted'] == 1 and res['sample'][0]['master']['sport'] == 1001, res
    assert ws.expectations(ns) == [51000]
    # all
    rc, res = run(ns, {'table': 'expect', 'all': True})
    assert res['deleted'] == 1 and ws.expectations(ns) == [], res
    assert not run(ns, {'table': 'expect', 'all': True})[1]['changed']
