"""The conntrack_tune action (the tuning role's engine) with a fake _execute_module: no host, no kernel."""
import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.netfilter.conntrack.plugins.action.conntrack_tune import ActionModule

from fake_engine import make_action, run, sysctl_result
from fleet_inputs import info

EST = 'net.netfilter.nf_conntrack_tcp_timeout_established'
UDP = 'net.netfilter.nf_conntrack_udp_timeout'
MAX = 'net.netfilter.nf_conntrack_max'


def test_the_plan_is_applied_in_one_call_and_verified_from_its_result():
    changed = sysctl_result({EST: (432000, 7440), UDP: (30, 44)})
    action = make_action(ActionModule, {'tuning_timeouts_profile': 'nat_gateway', 'tuning_timeouts': {'udp_timeout': 44},
                                        'tuning_persist': False}, {'conntrack_info': info(), 'conntrack_sysctl': changed})
    result = run(action)
    assert [name for name, _args in action.calls] == ['conntrack_info', 'conntrack_sysctl']
    sysctl_args = action.calls[1][1]
    assert sysctl_args['settings'] == {'tcp_timeout_established': 7440, 'udp_timeout_stream': 120, 'udp_timeout': 44}
    assert sysctl_args['persist'] is False and 'namespace' not in sysctl_args  # None values are left out
    assert result['changed'] is True and not result.get('failed')
    assert result['msg'].startswith('h1: changed ') and 'udp_timeout 30->44' in result['msg']
    assert result['report']['global_knobs'] == 'skipped (network namespace)'
    assert result['report']['line'] == result['msg']
    assert 'invocation' not in result['calls']['sysctl'] and set(result['calls']) == {'info', 'sysctl'}
    assert 'warnings' not in result


def test_nothing_to_do_runs_no_sysctl_call():
    action = make_action(ActionModule, {'tuning_persist': False}, {'conntrack_info': info()})
    result = run(action)
    assert [name for name, _args in action.calls] == ['conntrack_info']
    assert result['changed'] is False and not result.get('failed')
    assert result['msg'].startswith('h1: no change; table 100/262144')


def test_check_mode_says_would_change_and_verifies_nothing():
    would = sysctl_result({UDP: (30, 44)}, in_force=None)
    action = make_action(ActionModule, {'tuning_timeouts': {'udp_timeout': 44}, 'tuning_persist': False},
                         {'conntrack_info': info(), 'conntrack_sysctl': would}, check_mode=True)
    result = run(action)
    assert result['changed'] is True and not result.get('failed')
    assert result['msg'].startswith('h1: would change udp_timeout 30->44')
    assert result['report']['check_mode'] is True


def test_a_failing_module_call_fails_the_task_with_its_message():
    failed = {'failed': True, 'msg': 'writing udp_timeout: permission denied', 'changed': False}
    action = make_action(ActionModule, {'tuning_timeouts': {'udp_timeout': 44}, 'tuning_persist': False},
                         {'conntrack_info': info(), 'conntrack_sysctl': failed})
    result = run(action)
    assert result['failed'] is True and result['msg'] == 'conntrack_sysctl: writing udp_timeout: permission denied'
    assert result['report']['problem'] == 'writing udp_timeout: permission denied'


def test_a_failing_read_fails_before_anything_changes():
    broken = {'failed': True, 'msg': 'netlink: operation not permitted'}
    action = make_action(ActionModule, {'tuning_timeouts': {'udp_timeout': 44}}, {'conntrack_info': broken})
    result = run(action)
    assert [name for name, _args in action.calls] == ['conntrack_info']
    assert result['failed'] is True and 'reading the table failed: netlink: operation not permitted' in result['msg']


def test_not_loaded_yet_is_no_error_when_the_call_may_load_it():
    inactive = {'failed': True, 'msg': 'connection tracking is not active here (nf_conntrack not loaded)',
                'kernel': {'initial_namespace': True, 'memtotal_mb': 2048, 'cpus': 2}}
    loaded = sysctl_result({MAX: (0, 65536)})
    action = make_action(ActionModule, {'tuning_persist': False}, {'conntrack_info': inactive, 'conntrack_sysctl': loaded})
    result = run(action)
    assert [name for name, _args in action.calls] == ['conntrack_info', 'conntrack_sysctl']
    assert action.calls[1][1]['load_module'] is True and not result.get('failed')


def test_refused_lowering_fails_the_host_and_changes_nothing():
    action = make_action(ActionModule, {'tuning_max': 3}, {'conntrack_info': info(count=5, initial=True)})
    result = run(action)
    assert [name for name, _args in action.calls] == ['conntrack_info']
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith('refusing nf_conntrack_max 3: the table holds 5 entries')
    assert 'tuning_force_lower: true' in result['msg']


def test_a_host_near_full_warns_naming_the_levers():
    action = make_action(ActionModule, {'tuning_persist': False}, {'conntrack_info': info(count=250000)})
    result = run(action)
    assert 'WARNING table 95.4% full (250000/262144)' in result['msg']
    assert result['warnings'] == [result['report']['warning'].replace('WARNING ', 'h1: ', 1)]
    assert 'per-namespace timeouts' in result['warnings'][0] and 'targeted conntrack_flush' in result['warnings'][0]


def test_the_detail_is_the_whole_report_as_msg():
    action = make_action(ActionModule, {'tuning_persist': False, 'tuning_report_detail': True},
                         {'conntrack_info': info()})
    result = run(action)
    assert result['msg'] == result['report'] and result['_ansible_verbose_always'] is True


def test_facts_win_over_what_conntrack_info_read():
    action = make_action(ActionModule, {'tuning_policy': 'per_core', 'tuning_per_core': 1000, 'tuning_min': 0,
                                        'tuning_raise_only': False, 'tuning_persist': False},
                         {'conntrack_info': info(initial=True), 'conntrack_sysctl': sysctl_result({MAX: (262144, 8000)})},
                         host_vars={'ansible_facts': {'processor_vcpus': 8}})
    run(action)
    assert action.calls[1][1]['settings']['max'] == 8000


@pytest.mark.parametrize('args,fragment', [
    ({'tuning_per_core': 'lots'}, 'tuning_per_core'),
    ({'tuning_policy': 'fast'}, 'tuning_policy'),
    ({'tuning_bogus': 1}, 'tuning_bogus'),
])
def test_bad_arguments_fail_naming_the_option(args, fragment):
    action = make_action(ActionModule, args, {'conntrack_info': info()})
    with pytest.raises(AnsibleActionFail, match=fragment):
        run(action)
    assert action.calls == []


def test_input_checks_of_the_plan_name_the_option():
    action = make_action(ActionModule, {'tuning_max': 'lots'}, {'conntrack_info': info()})
    result = run(action)
    assert result['failed'] is True and result['msg'].startswith('tuning_max is "lots"')
