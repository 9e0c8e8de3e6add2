"""The tuning role's plan, verification and one-line report (plugins/filter/tuning_role.py), without a kernel."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.filter.tuning_role import (
    conntrack_tuning_report, conntrack_tuning_role)

from fleet_inputs import PROFILES, info, tuning_vars


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
    plan = conntrack_tuning_role(info(), tuning_vars(**kw), PROFILES)
    assert fragment in plan['error'] and plan['apply'] is False


def test_a_namespace_gets_its_timeouts_in_one_call():
    plan = conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway',
                                                     tuning_timeouts={'udp_timeout': 45}), PROFILES)
    assert plan['error'] is None and plan['apply'] is True
    assert plan['args']['settings'] == {'tcp_timeout_established': 7440, 'udp_timeout': 45}
    assert plan['args']['persist'] is False and plan['args']['namespace'] is None


def test_memory_and_cpus_come_from_conntrack_info_without_facts():
    plan = conntrack_tuning_role(info(initial=True, max_=1024, buckets=1024, memtotal_mb=8192), tuning_vars(),
                                 PROFILES)
    assert plan['max'] == 262144 and plan['args']['settings']['max'] == 262144  # 8 GiB: the kernel's 262144
    plan = conntrack_tuning_role(info(initial=True, max_=1024, buckets=1024), tuning_vars(), PROFILES,
                                 memtotal_mb=1024)
    assert plan['max'] == 8192  # Ansible's fact wins where it was gathered (1 GiB: RAM / 16384 / 8)


def test_caller_vars_outrank_the_roles_own_but_only_for_the_include():
    own = tuning_vars(tuning_max='auto')
    merged = dict(own, **{'tuning_max': 524288, 'tuning_policy': 'fixed'})
    plan = conntrack_tuning_role(info(initial=True), merged, PROFILES)
    assert plan['max'] == 524288


def test_conntrack_not_loaded_is_fine_when_the_role_loads_it():
    failed = {'failed': True, 'msg': 'connection tracking is not active in this kernel: ...',
              'kernel': {'initial_namespace': True, 'memtotal_mb': 8192, 'cpus': 2}}
    plan = conntrack_tuning_role(failed, tuning_vars(), PROFILES)
    assert plan['error'] is None and plan['args']['load_module'] is True
    assert plan['args']['settings'] == {'max': 262144, 'buckets': 262144}  # sized from the failure's kernel facts
    plan = conntrack_tuning_role(failed, tuning_vars(tuning_load_module=False), PROFILES)
    assert 'reading the table failed' in plan['error']
    plan = conntrack_tuning_role({'failed': True, 'msg': "namespace 'x' does not exist"}, tuning_vars(), PROFILES)
    assert "namespace 'x' does not exist" in plan['error']


def sysctl_result(changed=True, in_force=True, persisted=None, mismatch=()):
    return {'changed': changed, 'in_force': in_force, 'persisted': persisted, 'mismatch': list(mismatch),
            'settings': {'net.netfilter.nf_conntrack_tcp_timeout_established':
                         {'old': 432000, 'new': 7440, 'changed': changed}}}


def test_report_line_says_what_changed_and_how_full():
    plan = conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway'), PROFILES)
    report = conntrack_tuning_report(plan, sysctl_result(), info(), host='h1')
    assert report['line'] == 'h1: changed tcp_timeout_established 432000->7440; table 100/262144 (0.0%)'
    assert report['problem'] is None and report['timeouts'] == {'tcp_timeout_established': 7440}
    assert report['global_knobs'] == 'skipped (network namespace)' and report['netns_inode'] == 4026532386
    quiet = conntrack_tuning_report(plan, sysctl_result(changed=False), info(), host='h1')
    assert quiet['line'].startswith('h1: no change;') and '\n' not in quiet['line']
    check = conntrack_tuning_report(plan, dict(sysctl_result(), in_force=None), info(), check_mode=True)
    assert check['line'].startswith('would change ') and check['problem'] is None


def test_verification_comes_from_the_modules_result():
    plan = conntrack_tuning_role(info(), tuning_vars(tuning_timeouts_profile='nat_gateway'), PROFILES)
    bad = conntrack_tuning_report(plan, sysctl_result(in_force=False, mismatch=['x is 1, 2 was asked for']), info())
    assert 'not in force after the write: x is 1, 2 was asked for' in bad['problem']
    assert conntrack_tuning_report(plan, sysctl_result(in_force=False), info(), verify=False)['problem'] is None
    host_plan = conntrack_tuning_role(info(initial=True), tuning_vars(), PROFILES)
    unproven = conntrack_tuning_report(host_plan, sysctl_result(persisted=None), info(initial=True))
    assert 'did not confirm the sysctl.d file' in unproven['problem']
    proven = conntrack_tuning_report(host_plan, sysctl_result(persisted='/etc/sysctl.d/x.conf'), info(initial=True))
    assert proven['problem'] is None and proven['persisted'] == '/etc/sysctl.d/x.conf' and 'persisted' in proven['line']


def test_refused_lowering_fails_the_host_before_anything_is_applied():
    plan = conntrack_tuning_role(info(count=5, initial=True), tuning_vars(tuning_max=3), PROFILES)
    assert plan['apply'] is False and 'refusing nf_conntrack_max 3' in plan['refusal']
    report = conntrack_tuning_report(plan, {'skipped': True}, info(count=5, initial=True))
    assert 'tuning_force_lower: true' in report['problem'] and report['line'].startswith('FAILED refusing')


def test_a_full_namespace_host_is_never_green_and_silent():
    full = info(count=261882)
    plan = conntrack_tuning_role(full, tuning_vars(), PROFILES)
    report = conntrack_tuning_report(plan, {'skipped': True}, full, host='h7')
    assert 'WARNING table 99.9% full (261882/262144)' in report['line']
    for lever in ('shorten the per-namespace timeouts', 'targeted conntrack_flush', 'raise nf_conntrack_max on the '
                  'machine that hosts it'):
        assert lever in report['line']
    host = info(count=261882, initial=True)
    report = conntrack_tuning_report(conntrack_tuning_role(host, tuning_vars(), PROFILES), {'skipped': True}, host)
    assert 'even with nf_conntrack_max 262144: raise tuning_max' in report['line']
