"""synflood_guard's plan, verification and one-line report (plugins/filter/synflood_role.py), without a kernel."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.filter.synflood_role import (
    conntrack_synflood_report, conntrack_synflood_role)

from fleet_inputs import info, synflood_vars


@pytest.mark.parametrize('kw,kernel,fragment', [
    (dict(synflood_guard_ports=[8080, 70000]), {}, 'must be TCP ports 1-65535; out of range: 70000'),
    (dict(synflood_guard_ports=[0]), {}, 'out of range: 0'),
    (dict(synflood_guard_sysctls={'tcp_loose': 1}), {}, 'SYNPROXY needs nf_conntrack_tcp_loose=0'),
    (dict(synflood_guard_sysctls={'net.netfilter.nf_conntrack_tcp_loose': 1}), {}, 'SYNPROXY needs'),
    (dict(), {'synproxy': False}, 'has no nft SYNPROXY'),
    (dict(synflood_guard_synproxy_timestamp=True), {}, 'synflood_guard_synproxy_timestamp=true on kernel'),
    (dict(synflood_guard_persist=True), {}, 'this host is a network namespace'),
    (dict(synflood_guard_headroom=True), {}, 'nf_conntrack_max and the hash size are'),
    (dict(synflood_guard_connlimit=4, synflood_guard_mode='sysctl_only'), {}, 'needs protected ports'),
    (dict(synflood_guard_synproxy_mss=100), {}, 'synflood_guard_synproxy_mss 536-65535'),
    (dict(synflood_guard_headroom_vars={'max': 1}), {}, 'only hold variables of the tuning role'),
])
def test_synflood_bad_input_and_hosts_are_refused_before_any_change(kw, kernel, fragment):
    plan = conntrack_synflood_role(info(), synflood_vars(**kw), kernel_overrides=kernel)
    assert fragment in plan['error'] and plan['settings'] == {} and plan['rules'] == []


def test_synflood_plan_is_one_sysctl_call_and_one_notrack_call():
    plan = conntrack_synflood_role(info(), synflood_vars())
    assert plan['error'] is None
    assert plan['settings'] == {'tcp_timeout_syn_sent': 30, 'tcp_timeout_syn_recv': 30, 'tcp_loose': 0,
                                'net.ipv4.tcp_syncookies': 1, 'net.ipv4.tcp_max_syn_backlog': 4096}
    assert plan['rules'] == [{'proto': 'tcp', 'dport': [8080], 'synproxy': True,
                              'synproxy_options': {'mss': 1460, 'timestamp': False, 'sack_perm': False}}]
    assert plan['drop_invalid'] is True and 'timestamp is off' in plan['timestamp_why']
    old = conntrack_synflood_role(info(release='6.1.0'), synflood_vars(synflood_guard_ports_ipv6=[443]))
    assert old['settings']['net.ipv4.tcp_timestamps'] == 1
    assert [r.get('family') for r in old['rules']] == ['ipv4', 'ipv6']
    assert old['rules'][1]['synproxy_options'] == {'mss': 1460, 'timestamp': True, 'wscale': 7, 'sack_perm': True}
    notrack = conntrack_synflood_role(info(), synflood_vars(synflood_guard_mode='notrack'))
    assert 'tcp_loose' not in notrack['settings'] and notrack['drop_invalid'] is False
    assert conntrack_synflood_role(info(), synflood_vars(synflood_guard_mode='sysctl_only'))['rules'] == []


def test_synflood_headroom_vars_go_to_the_include_with_persist():
    plan = conntrack_synflood_role(info(initial=True), synflood_vars(synflood_guard_headroom_vars={'tuning_max': 9}))
    assert plan['tuning_vars'] == {'tuning_persist': False, 'tuning_max': 9}


def test_synflood_report_verifies_from_the_results():
    plan = conntrack_synflood_role(info(), synflood_vars())
    sysctl = {'changed': True, 'mismatch': [], 'settings': {'net.netfilter.nf_conntrack_tcp_loose':
                                                            {'old': 1, 'new': 0, 'changed': True}}}
    rules = {'changed': True, 'in_force': True}
    report = conntrack_synflood_report(plan, info(), sysctl, rules, synflood_vars(), host='h2')
    assert report['line'] == 'h2: changed tcp_loose 1->0, nft rules; synproxy ports 8080; table 100/262144 (0.0%)'
    drift = conntrack_synflood_report(plan, info(), sysctl, dict(rules, in_force=False), synflood_vars())
    assert 'the nft rules read back differ' in drift['problem']
