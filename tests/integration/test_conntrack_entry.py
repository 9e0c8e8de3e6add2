"""conntrack_entry against the real kernel in namespace ``ctwr-entry``: every test asserts what the
kernel holds afterwards (read with conntrack-tools or a netlink dump), then runs the same task again
and asserts that nothing changes."""
import os

import pytest

import ctwr_support as ws

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)')]

NS = 'ctwr-entry'
LABEL_RULES = """
table inet ctwr_labels {
  chain pre {
    type filter hook prerouting priority 0;
    ct label 127 counter
  }
}
"""

TCP = dict(proto='tcp', src='192.0.2.1', dst='192.0.2.2', sport=40000, dport=443, tcp_state='ESTABLISHED',
           status=['SEEN_REPLY', 'ASSURED'], timeout=600)


@pytest.fixture(scope='module')
def ns():
    with ws.netns(NS) as name:
        # the kernel gives entries room for labels only while a rule in the namespace uses them
        ws.ct.nft(name, LABEL_RULES)
        yield name


@pytest.fixture(autouse=True)
def empty_table(ns):
    ws.flush_all(ns)
    yield


def run(ns, args, check_mode=False):
    rc, result, stderr = ws.run_module('conntrack_entry', dict(args, _ansible_diff=True), namespace=ns,
                                       check_mode=check_mode)
    assert 'Traceback' not in stderr, stderr
    return rc, result


def listing(ns, *args):
    return ws.conntrack(ns, '-L', '-o', 'extended', *args, check=False).stdout


def test_create_then_no_change(ns):
    rc, res = run(ns, TCP)
    assert rc == 0 and res['changed'] and res['action'] == 'created', res
    entry = res['entry']
    assert entry['state'] == 'ESTABLISHED' and entry['dport'] == 443 and entry['reply_src'] == '192.0.2.2'
    assert set(entry['status']) >= {'SEEN_REPLY', 'ASSURED', 'CONFIRMED'}
    assert res['diff']['before'] == '' and 'dport: 443' in res['diff']['after']
    text = listing(ns)
    assert 'src=192.0.2.1 dst=192.0.2.2 sport=40000 dport=443' in text and 'ESTABLISHED' in text
    assert '[ASSURED]' in text
    rc, res = run(ns, TCP)
    assert rc == 0 and not res['changed'] and res['action'] == 'none', res
    assert res['entry']['id'] == entry['id']  # the same entry, not re-created
    assert listing(ns).count('sport=40000') == 1


def test_update_mark_and_labels(ns):
    run(ns, TCP)
    rc, res = run(ns, dict(TCP, mark='0x2a', labels=[1, 5]))
    assert rc == 0 and res['changed'] and set(res['changes']) == {'mark', 'labels'}, res
    assert res['entry']['mark'] == 0x2a and res['entry']['labels'] == [1, 5]
    assert 'mark=42' in listing(ns)
    rc, res = run(ns, dict(TCP, mark='0x2a', labels=[1, 5]))
    assert rc == 0 and not res['changed'], res
    # mark under a mask: only bits 8-11 change
    rc, res = run(ns, dict(TCP, mark='0x300', mark_mask='0xf00'))
    assert res['changed'] and res['entry']['mark'] == 0x32a, res
    assert 'mark=810' in listing(ns)
    # labels: remove one, then exact
    rc, res = run(ns, dict(TCP, labels=[5], labels_mode='remove'))
    assert res['changed'] and res['entry']['labels'] == [1], res
    rc, res = run(ns, dict(TCP, labels=[7], labels_mode='exact'))
    assert res['changed'] and res['entry']['labels'] == [7], res
    rc, res = run(ns, dict(TCP, labels=[7], labels_mode='exact'))
    assert not res['changed'], res
    state = ws.in_ns(ns, "from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import "
                         "Connection\nwith Connection() as c:\n    emit([e.get('labels') for e in c.dump()])")
    assert state == [[7]]


def test_delete_then_no_change(ns):
    run(ns, TCP)
    rc, res = run(ns, dict(TCP, state='absent'))
    assert rc == 0 and res['changed'] and res['action'] == 'deleted' and res['entry'] is None, res
    assert 'sport=40000' not in listing(ns)
    rc, res = run(ns, dict(TCP, state='absent'))
    assert rc == 0 and not res['changed'], res


def test_reply_tuple_identity(ns):
    reply = dict(proto='udp', reply_src='198.51.100.53', reply_dst='192.0.2.10', reply_sport=53, reply_dport=5353,
                 timeout=120)
    rc, res = run(ns, reply)
    assert rc == 0 and res['changed'], res
    assert (res['entry']['src'], res['entry']['dst'], res['entry']['sport'], res['entry']['dport']) == \
        ('192.0.2.10', '198.51.100.53', 5353, 53)
    assert 'src=192.0.2.10 dst=198.51.100.53 sport=5353 dport=53' in listing(ns)
    rc, res = run(ns, reply)
    assert not res['changed'], res
    rc, res = run(ns, dict(reply, state='absent'))
    assert res['changed'], res
    assert 'dport=53' not in listing(ns)


def test_ipv6_entry(ns):
    args = dict(proto='udp', src='2001:db8::10', dst='2001:db8::53', sport=5353, dport=53, timeout=120, mark=7)
    rc, res = run(ns, args)
    assert rc == 0 and res['changed'] and res['entry']['family'] == 'ipv6', res
    assert 'src=2001:db8::10 dst=2001:db8::53' in listing(ns, '-f', 'ipv6')
    assert not run(ns, args)[1]['changed']
    assert run(ns, dict(args, state='absent'))[1]['changed']
    assert '2001:db8::10' not in listing(ns, '-f', 'ipv6')


def test_icmp_echo_entry(ns):
    args = dict(proto='icmp', src='192.0.2.1', dst='192.0.2.2', icmp_type=8, icmp_code=0, icmp_id=4242, timeout=30)
    rc, res = run(ns, args)
    assert rc == 0 and res['changed'], res
    assert res['entry']['reply_icmp_type'] == 0 and res['entry']['icmp_id'] == 4242
    assert 'type=8 code=0 id=4242' in listing(ns)
    assert not run(ns, args)[1]['changed']
    assert run(ns, dict(args, state='absent'))[1]['changed']
    assert 'id=4242' not in listing(ns)


def test_zones_are_separate_entries(ns):
    args = dict(TCP, zone=0)
    assert run(ns, args)[1]['changed']
    rc, res = run(ns, dict(TCP, zone=7))
    assert rc == 0 and res['changed'] and res['entry']['zone'] == 7, res
    rows = [r for r in ws.snapshot(ns) if r[4] == 40000]
    assert sorted(r[9] for r in rows) == [0, 7]
    assert not run(ns, dict(TCP, zone=7))[1]['changed']
    # deleting in zone 7 leaves zone 0 alone
    assert run(ns, dict(TCP, zone=7, state='absent'))[1]['changed']
    assert sorted(r[9] for r in ws.snapshot(ns) if r[4] == 40000) == [0]


def test_timeout_policies(ns):
    run(ns, dict(TCP, timeout=100))
    # on_create: a different timeout on an existing entry changes nothing
    rc, res = run(ns, dict(TCP, timeout=5000))
    assert not res['changed'] and res['entry']['timeout'] <= 100, res
    # refresh_below: re-armed because 100 s < timeout_min (2500), then left alone
    rc, res = run(ns, dict(TCP, timeout=5000, timeout_policy='refresh_below'))
    assert res['changed'] and res['changes'] == ['timeout'] and res['entry']['timeout'] > 4900, res
    rc, res = run(ns, dict(TCP, timeout=5000, timeout_policy='refresh_below'))
    assert not res['changed'], res
    timeouts = [int(line.split()[4]) for line in listing(ns).splitlines() if 'sport=40000' in line]
    assert timeouts and timeouts[0] > 4900


def test_nat_entry(ns):
    args = dict(proto='tcp', src='192.0.2.1', dst='203.0.113.80', sport=41000, dport=80, tcp_state='ESTABLISHED',
                timeout=300, nat_dst={'address': '192.0.2.80', 'port': 8080})
    rc, res = run(ns, args, check_mode=True)
    assert res['changed'] and res['entry']['reply_src'] == '192.0.2.80' and 'DST_NAT' in res['entry']['status']
    rc, res = run(ns, args)
    assert rc == 0 and res['changed'] and res['entry']['reply_src'] == '192.0.2.80', res
    assert res['entry']['reply_sport'] == 8080 and 'DST_NAT' in res['entry']['status']
    assert 'src=192.0.2.80 dst=192.0.2.1 sport=8080 dport=41000' in listing(ns)
    assert not run(ns, args)[1]['changed']


def test_check_mode_changes_nothing(ns):
    run(ns, dict(TCP, sport=40001))
    before = ws.snapshot(ns)
    for args in (TCP, dict(TCP, sport=40001, mark=9), dict(TCP, sport=40001, state='absent'),
                 dict(TCP, sport=40001, timeout=9000, timeout_policy='refresh_below')):
        rc, res = run(ns, args, check_mode=True)
        assert rc == 0 and res['changed'], (args, res)
    assert ws.snapshot(ns) == before


def test_kernel_refusal_is_plain(ns):
    run(ns, TCP)
    # the reply tuple of the existing entry used as the original tuple of another: the kernel says EEXIST
    clash = dict(TCP, src='192.0.2.2', dst='192.0.2.1', sport=443, dport=40000)
    rc, res = run(ns, clash)
    assert rc == 1 and res['failed'] and 'reply tuple of another entry' in res['msg'], res
    # ... and state: absent on that tuple leaves the other entry alone
    rc, res = run(ns, dict(clash, state='absent'))
    assert rc == 0 and not res['changed'], res
    assert 'sport=40000 dport=443' in listing(ns)
    # tuples of an existing entry cannot change
    rc, res = run(ns, dict(TCP, reply_src='192.0.2.9', reply_dst='192.0.2.1', reply_sport=443, reply_dport=40000))
    assert rc == 1 and 'cannot be changed' in res['msg'], res


@pytest.mark.parametrize('args, words', [
    (dict(TCP, tcp_state=None), ['tcp_state']),
    (dict(TCP, timeout=None), ['timeout']),
    (dict(TCP, dst='2001:db8::2'), ['family', 'IPv6']),
    (dict(TCP, family='ipv6'), ['IPv4', 'family']),
    (dict(proto='icmp', src='192.0.2.1', dst='192.0.2.2', icmp_type=8, icmp_code=0, icmp_id=1, sport=1, timeout=5),
     ['sport', 'no ports']),
    (dict(proto='udp', src='192.0.2.1', dst='192.0.2.2', sport=1, dport=2, timeout=5, tcp_state='ESTABLISHED'),
     ['tcp_state', 'udp']),
    (dict(TCP, status=['SEEN_REPLY', 'BOGUS']), ['BOGUS', 'status flag']),
    (dict(TCP, status=['DYING']), ['DYING', 'managed by the kernel']),
    (dict(TCP, mark=1, mark_mask='0x1ffffffff'), ['mark_mask', 'out of range']),
    (dict(TCP, mark=1, mark_mask='zz'), ['mark_mask', 'not a whole number']),
    (dict(TCP, zone=70000), ['zone', '0-65535']),
    (dict(TCP, sport=None), ['sport', 'missing']),
    (dict(TCP, src='192.0.2.0/24'), ['src', 'no CIDR']),
    (dict(TCP, labels=[200]), ['labels', '0-127']),
    (dict(TCP, labels=['nosuchlabel']), ['nosuchlabel']),
    (dict(TCP, tcp_state='FLYING'), ['FLYING', 'ESTABLISHED']),
    (dict(TCP, proto='nosuch'), ['nosuch', 'protocol']),
])
def test_bad_input(ns, args, words):
    args = dict((k, v) for k, v in args.items() if v is not None)
    rc, res = run(ns, args)
    assert rc == 1 and res.get('failed'), res
    for word in words:
        assert word in res['msg'], (word, res['msg'])
    assert ws.snapshot(ns) == set()  # nothing was created
