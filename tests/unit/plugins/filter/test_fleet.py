"""The roles' planning, verification and one-line reports (plugins/filter/fleet.py), without a kernel."""
import os

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.filter import fleet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PROFILES = {'default': {}, 'nat_gateway': {'tcp_timeout_established': 7440}}


def info(count=100, max_=262144, buckets=262144, initial=False, **kernel):
    facts = dict(initial_namespace=initial, memtotal_mb=2048, cpus=2, netns_inode=4026532386, release='6.18.0',
                 synproxy=True, tcp={'tcp_syncookies': 1, 'tcp_timestamps': 1, 'tcp_max_syn_backlog': 2048})
    facts.update(kernel)
    return {'count': count, 'max': max_, 'buckets': buckets, 'kernel': facts,
            'sysctls': {'net.netfilter.nf_conntrack_tcp_timeout_established': 432000},
            'stats': {'drop': 0, 'early_drop': 0, 'insert_failed': 0}}


def load(path):
    with open(os.path.join(ROOT, path)) as handle:
        return yaml.safe_load(handle)


def tuning_vars(**kw):
    values = dict(load('roles/tuning/defaults/main.yml'))
    values.update(kw)
    return values


# --- tuning --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kw,fragment', [
    (dict(tuning_max=-5), 'tuning_max is -5: give auto or a whole number'),
    (dict(tuning_max='lots'), 'tuning_max is "lots"'),
    (dict(tuning_max=True), 'tuning_max is true'),
    (dict(tuning_policy='fixed'), 'tuning_policy is fixed but tuning_max is auto'),
    (dict(tuning_buckets='many'), 'tuning_buckets is "many"'),
    (dict(tuning_bucket_ratio=0), 'tuning_bucket_ratio (0) 1 or more'),
    (dict(tuning_per_core=-1), 'must be 0 or more'),
    (dict(tuning_warn_percent=120), 'tuning_warn_percent is 120'),
    (dict(tuning_timeouts_profile='fast'), 'tuning_timeouts_profile is "fast"'),
])
def test_bad_input_is_an_error_and_nothing_is_applied(kw, fragment):
    plan = fleet.conntrack_tuning_role(info(), tuning_vars(**kw), PROFILES)
    assert fragment in plan['error'] and plan['apply'] is False


def test_a_namespace_gets_its_timeouts_in_one_call():
    plan = fleet.conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway',
                                                           tuning_timeouts={'udp_timeout': 45}), PROFILES)
    assert plan['error'] is None and plan['apply'] is True
    assert plan['args']['settings'] == {'tcp_timeout_established': 7440, 'udp_timeout': 45}
    assert plan['args']['persist'] is False and plan['args']['namespace'] is None


def test_memory_and_cpus_come_from_conntrack_info_without_facts():
    plan = fleet.conntrack_tuning_role(info(initial=True, max_=1024, buckets=1024, memtotal_mb=8192), tuning_vars(),
                                       PROFILES)
    assert plan['max'] == 262144 and plan['args']['settings']['max'] == 262144  # 8 GiB: the kernel's 262144
    plan = fleet.conntrack_tuning_role(info(initial=True, max_=1024, buckets=1024), tuning_vars(), PROFILES,
                                       memtotal_mb=1024)
    assert plan['max'] == 8192  # Ansible's fact wins where it was gathered (1 GiB: RAM / 16384 / 8)


def test_caller_vars_outrank_the_roles_own_but_only_for_the_include():
    own = tuning_vars(tuning_max='auto')
    merged = dict(own, **{'tuning_max': 524288, 'tuning_policy': 'fixed'})
    plan = fleet.conntrack_tuning_role(info(initial=True), merged, PROFILES)
    assert plan['max'] == 524288


def test_conntrack_not_loaded_is_fine_when_the_role_loads_it():
    failed = {'failed': True, 'msg': 'connection tracking is not active in this kernel: ...',
              'kernel': {'initial_namespace': True, 'memtotal_mb': 8192, 'cpus': 2}}
    plan = fleet.conntrack_tuning_role(failed, tuning_vars(), PROFILES)
    assert plan['error'] is None and plan['args']['load_module'] is True
    assert plan['args']['settings'] == {'max': 262144, 'buckets': 262144}  # sized from the failure's kernel facts
    plan = fleet.conntrack_tuning_role(failed, tuning_vars(tuning_load_module=False), PROFILES)
    assert 'reading the table failed' in plan['error']
    plan = fleet.conntrack_tuning_role({'failed': True, 'msg': "namespace 'x' does not exist"}, tuning_vars(), PROFILES)
    assert "namespace 'x' does not exist" in plan['error']


def sysctl_result(changed=True, in_force=True, persisted=None, mismatch=()):
    return {'changed': changed, 'in_force': in_force, 'persisted': persisted, 'mismatch': list(mismatch),
            'settings': {'net.netfilter.nf_conntrack_tcp_timeout_established':
                         {'old': 432000, 'new': 7440, 'changed': changed}}}


def test_report_line_says_what_changed_and_how_full():
    plan = fleet.conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway'), PROFILES)
    report = fleet.conntrack_tuning_report(plan, sysctl_result(), info(), host='h1')
    assert report['line'] == 'h1: changed tcp_timeout_established 432000->7440; table 100/262144 (0.0%)'
    assert report['problem'] is None and report['timeouts'] == {'tcp_timeout_established': 7440}
    assert report['global_knobs'] == 'skipped (network namespace)' and report['netns_inode'] == 4026532386
    quiet = fleet.conntrack_tuning_report(plan, sysctl_result(changed=False), info(), host='h1')
    assert quiet['line'].startswith('h1: no change;') and '\n' not in quiet['line']
    check = fleet.conntrack_tuning_report(plan, dict(sysctl_result(), in_force=None), info(), check_mode=True)
    assert check['line'].startswith('would change ') and check['problem'] is None


def test_verification_comes_from_the_modules_result():
    plan = fleet.conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway'), PROFILES)
    bad = fleet.conntrack_tuning_report(plan, sysctl_result(in_force=False, mismatch=['x is 1, 2 was asked for']), info())
    assert 'not in force after the write: x is 1, 2 was asked for' in bad['problem']
    assert fleet.conntrack_tuning_report(plan, sysctl_result(in_force=False), info(), verify=False)['problem'] is None
    host_plan = fleet.conntrack_tuning_role(info(initial=True), tuning_vars(), PROFILES)
    unproven = fleet.conntrack_tuning_report(host_plan, sysctl_result(persisted=None), info(initial=True))
    assert 'did not confirm the sysctl.d file' in unproven['problem']
    proven = fleet.conntrack_tuning_report(host_plan, sysctl_result(persisted='/etc/sysctl.d/x.conf'), info(initial=True))
    assert proven['problem'] is None and proven['persisted'] == '/etc/sysctl.d/x.conf' and 'persisted' in proven['line']


def test_refused_lowering_fails_the_host_before_anything_is_applied():
    plan = fleet.conntrack_tuning_role(info(count=5, initial=True), tuning_vars(tuning_max=3), PROFILES)
    assert plan['apply'] is False and 'refusing nf_conntrack_max 3' in plan['refusal']
    report = fleet.conntrack_tuning_report(plan, {'skipped': True}, info(count=5, initial=True))
    assert 'tuning_force_lower: true' in report['problem'] and report['line'].startswith('FAILED refusing')


def test_a_full_namespace_host_is_never_green_and_silent():
    full = info(count=261882)
    plan = fleet.conntrack_tuning_role(full, tuning_vars(), PROFILES)
    report = fleet.conntrack_tuning_report(plan, {'skipped': True}, full, host='h7')
    assert 'WARNING table 99.9% full (261882/262144)' in report['line']
    for lever in ('shorten the per-namespace timeouts', 'targeted conntrack_flush', 'raise nf_conntrack_max on the '
                  'machine that hosts it'):
        assert lever in report['line']
    host = info(count=261882, initial=True)
    report = fleet.conntrack_tuning_report(fleet.conntrack_tuning_role(host, tuning_vars(), PROFILES), {'skipped': True},
                                           host)
    assert 'even with nf_conntrack_max 262144: raise tuning_max' in report['line']


# --- synflood_guard ------------------------------------------------------------------------------------

def synflood_vars(**kw):
    values = dict(load('roles/synflood_guard/defaults/main.yml'))
    values.update(synflood_guard_persist=False, synflood_guard_ports=[8080])
    values.update(kw)
    return values


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
    plan = fleet.conntrack_synflood_role(info(), synflood_vars(**kw), kernel_overrides=kernel)
    assert fragment in plan['error'] and plan['settings'] == {} and plan['rules'] == []


def test_synflood_plan_is_one_sysctl_call_and_one_notrack_call():
    plan = fleet.conntrack_synflood_role(info(), synflood_vars())
    assert plan['error'] is None
    assert plan['settings'] == {'tcp_timeout_syn_sent': 30, 'tcp_timeout_syn_recv': 30, 'tcp_loose': 0,
                                'net.ipv4.tcp_syncookies': 1, 'net.ipv4.tcp_max_syn_backlog': 4096}
    assert plan['rules'] == [{'proto': 'tcp', 'dport': [8080], 'synproxy': True,
                              'synproxy_options': {'mss': 1460, 'timestamp': False, 'sack_perm': False}}]
    assert plan['drop_invalid'] is True and 'timestamp is off' in plan['timestamp_why']
    old = fleet.conntrack_synflood_role(info(release='6.1.0'), synflood_vars(synflood_guard_ports_ipv6=[443]))
    assert old['settings']['net.ipv4.tcp_timestamps'] == 1
    assert [r.get('family') for r in old['rules']] == ['ipv4', 'ipv6']
    assert old['rules'][1]['synproxy_options'] == {'mss': 1460, 'timestamp': True, 'wscale': 7, 'sack_perm': True}
    notrack = fleet.conntrack_synflood_role(info(), synflood_vars(synflood_guard_mode='notrack'))
    assert 'tcp_loose' not in notrack['settings'] and notrack['drop_invalid'] is False
    assert fleet.conntrack_synflood_role(info(), synflood_vars(synflood_guard_mode='sysctl_only'))['rules'] == []


def test_synflood_headroom_vars_go_to_the_include_with_persist():
    plan = fleet.conntrack_synflood_role(info(initial=True), synflood_vars(synflood_guard_headroom_vars={'tuning_max': 9}))
    assert plan['tuning_vars'] == {'tuning_persist': False, 'tuning_max': 9}


def test_synflood_report_verifies_from_the_results():
    plan = fleet.conntrack_synflood_role(info(), synflood_vars())
    sysctl = {'changed': True, 'mismatch': [], 'settings': {'net.netfilter.nf_conntrack_tcp_loose':
                                                            {'old': 1, 'new': 0, 'changed': True}}}
    rules = {'changed': True, 'in_force': True}
    report = fleet.conntrack_synflood_report(plan, info(), sysctl, rules, synflood_vars(), host='h2')
    assert report['line'] == 'h2: changed tcp_loose 1->0, nft rules; synproxy ports 8080; table 100/262144 (0.0%)'
    drift = fleet.conntrack_synflood_report(plan, info(), sysctl, dict(rules, in_force=False), synflood_vars())
    assert 'the nft rules read back differ' in drift['problem']


# --- the fleet -----------------------------------------------------------------------------------------

def test_fleet_summary_counts_and_names_the_hosts_to_look_at():
    hostvars = {
        'h1': {'__tuning_info': info(), '__tuning_result': {'changed': True}, '__tuning_reported': {'msg': 'h1: ok'}},
        'h2': {'__tuning_info': info(count=261882), '__tuning_result': {'skipped': True},
               '__tuning_reported': {'msg': 'h2: no change; WARNING table 99.9% full'}},
        'h3': {'__tuning_info': info(), '__tuning_reported': {'failed': True, 'msg': 'h3: FAILED refusing'}},
        'h4': {},  # never got to the report (the run stopped)
    }
    lines = fleet.conntrack_fleet_summary(hostvars, ['h1', 'h2', 'h3', 'h4'], 'tuning', warn_percent=80)
    assert lines[0] == 'tuning: 4 hosts, 1 changed, 2 failed or refused, 1 at or above 80% of nf_conntrack_max'
    assert 'failed or refused: h3, h4' in lines
    assert 'near the limit: h2: no change; WARNING table 99.9% full' in lines
    assert any('global knobs skipped (network namespace)' in line for line in lines)
    with pytest.raises(Exception):
        fleet.conntrack_fleet_summary(hostvars, ['h1'], 'other')


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(count=st.integers(0, 2000000), limit=st.integers(0, 2000000), warn=st.integers(0, 100),
       initial=st.booleans())
def test_the_warning_appears_exactly_at_or_above_the_threshold(count, limit, warn, initial):
    text = fleet.table_warning(count, limit, warn, initial, 'levers')
    usage = round(100.0 * count / limit, 1) if limit else 0.0
    assert (text is not None) == bool(limit and usage >= warn)
    if text and not initial:
        assert text.endswith('levers')


# --- the roles keep their promises ---------------------------------------------------------------------

@pytest.mark.parametrize('role,internal', [('tuning', '__tuning_own_vars'), ('synflood_guard', '__synflood_guard_vars')])
def test_every_documented_variable_reaches_the_plan(role, internal):
    specs = load('roles/%s/meta/argument_specs.yml' % role)['argument_specs']['main']['options']
    defaults = load('roles/%s/defaults/main.yml' % role)
    passed = load('roles/%s/vars/main.yml' % role)[internal]
    assert set(specs) == set(defaults) == set(passed)


def test_no_role_sets_host_facts():
    """set_fact persists as a host fact and outranks play vars later in the run (issue 14): the roles use none."""
    for role in ('tuning', 'synflood_guard'):
        directory = os.path.join(ROOT, 'roles', role, 'tasks')
        for name in os.listdir(directory):
            for task in load(os.path.join('roles', role, 'tasks', name)) or []:
                assert 'ansible.builtin.set_fact' not in task and 'set_fact' not in task, (role, name, task['name'])
