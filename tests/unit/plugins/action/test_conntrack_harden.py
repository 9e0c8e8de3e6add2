"""The conntrack_harden action (the synflood_guard role's engine) with a fake _execute_module: no host, no kernel."""
import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.netfilter.conntrack.plugins.action.conntrack_harden import ActionModule

from fake_engine import make_action, run, sysctl_result
from fleet_inputs import info

LOOSE = 'net.netfilter.nf_conntrack_tcp_loose'
MAX = 'net.netfilter.nf_conntrack_max'
RULES = {'changed': True, 'in_force': True, 'rules': [], 'diff': {'before': '', 'after': 'table inet netfilter_conntrack'}}
SAME_RULES = {'changed': False, 'in_force': True, 'rules': []}
PRESENT = {'synflood_guard_ports': [8080], 'synflood_guard_persist': False}


def names(action):
    return [name for name, _args in action.calls]


def test_present_sets_the_knobs_before_the_rules_and_verifies():
    knobs = sysctl_result({LOOSE: (1, 0)}, diff={'before': 'loose 1', 'after': 'loose 0'})
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': knobs,
                                                 'conntrack_notrack': RULES})
    result = run(action)
    assert names(action) == ['conntrack_info', 'conntrack_sysctl', 'conntrack_notrack']
    assert action.calls[1][1]['settings']['tcp_loose'] == 0 and action.calls[1][1]['persist'] is False
    notrack = action.calls[2][1]
    assert notrack['exclusive'] is True and notrack['drop_invalid'] is True
    assert notrack['rules'] == [{'proto': 'tcp', 'dport': [8080], 'synproxy': True,
                                 'synproxy_options': {'mss': 1460, 'timestamp': False, 'sack_perm': False}}]
    assert result['changed'] is True and not result.get('failed')
    assert result['msg'].startswith('h1: changed tcp_loose 1->0, nft rules; synproxy ports 8080; table 100/262144')
    assert len(result['diff']) == 2  # the knobs' diff and the table's
    assert set(result['calls']) == {'info', 'sysctl', 'rules'}


def test_a_second_run_changes_nothing():
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': sysctl_result(),
                                                 'conntrack_notrack': SAME_RULES})
    result = run(action)
    assert result['changed'] is False and result['msg'].startswith('h1: no change; synproxy ports 8080')


def test_check_mode_says_would_change():
    knobs = sysctl_result({LOOSE: (1, 0)}, in_force=None)
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': knobs,
                                                 'conntrack_notrack': dict(RULES, in_force=None)}, check_mode=True)
    result = run(action)
    assert result['changed'] is True and not result.get('failed')
    assert result['msg'].startswith('h1: would change tcp_loose 1->0, nft rules')


def test_a_failing_sysctl_call_stops_the_job_before_the_rules():
    failed = {'failed': True, 'msg': 'tcp_loose: read-only file system', 'changed': False}
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': failed,
                                                 'conntrack_notrack': RULES})
    result = run(action)
    assert names(action) == ['conntrack_info', 'conntrack_sysctl']
    assert result['failed'] is True and result['msg'] == 'conntrack_sysctl: tcp_loose: read-only file system'


def test_a_failing_rules_call_fails_the_task():
    failed = {'failed': True, 'msg': 'nft: syntax error', 'changed': False}
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': sysctl_result(),
                                                 'conntrack_notrack': failed})
    result = run(action)
    assert result['failed'] is True and result['msg'] == 'conntrack_notrack: nft: syntax error'


@pytest.mark.parametrize('args,overrides,fragment', [
    ({'synflood_guard_ports': [70000]}, {}, 'out of range: 70000'),
    ({}, {'synproxy': False}, 'has no nft SYNPROXY'),
    ({'synflood_guard_persist': True}, {}, 'synflood_guard_persist=true but this host is a network namespace'),
])
def test_refusals_fail_before_any_change(args, overrides, fragment):
    action = make_action(ActionModule, dict(PRESENT, **args), {'conntrack_info': info()},
                         host_vars={'__synflood_guard_kernel_overrides': overrides})
    result = run(action)
    assert names(action) == ['conntrack_info']
    assert result['failed'] is True and fragment in result['msg'] and result['changed'] is False


def test_absent_removes_the_rules_first_then_the_knobs_and_the_files():
    knobs = sysctl_result({LOOSE: (0, 1)})
    forgot = {'changed': True, 'settings': {}, 'files': {'written': [], 'removed': ['/etc/sysctl.d/90-x.conf']}}
    action = make_action(ActionModule, {'synflood_guard_state': 'absent'},
                         {'conntrack_info': info(initial=True), 'conntrack_notrack': RULES,
                          'conntrack_sysctl': [knobs, forgot]})
    result = run(action)
    assert names(action) == ['conntrack_info', 'conntrack_notrack', 'conntrack_sysctl', 'conntrack_sysctl']
    assert action.calls[1][1]['rules'] == [] and action.calls[1][1]['persist'] is True
    assert action.calls[3][1]['state'] == 'absent'
    assert result['changed'] is True and 'removed /etc/sysctl.d/90-x.conf' in result['msg']
    assert '; absent; ' in result['msg']


def test_headroom_is_planned_from_the_same_read_and_applied_last():
    knobs = sysctl_result({LOOSE: (1, 0)})
    headroom = sysctl_result({MAX: (262144, 4194304)})
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_mode='sysctl_only',
                synflood_guard_headroom_vars={'tuning_max': 4194304, 'tuning_buckets': 'keep'})
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True),
                                              'conntrack_sysctl': [knobs, headroom], 'conntrack_notrack': SAME_RULES})
    result = run(action)
    assert names(action) == ['conntrack_info', 'conntrack_sysctl', 'conntrack_notrack', 'conntrack_sysctl']
    assert action.calls[3][1]['settings'] == {'max': 4194304} and action.calls[3][1]['persist'] is False
    assert 'headroom changed max 262144->4194304' in result['msg'] and not result.get('failed')
    assert result['report']['headroom']['max'] == 4194304


def test_the_hosts_own_tuning_variables_reach_the_headroom_under_the_headroom_vars():
    knobs = sysctl_result({LOOSE: (1, 0)})
    headroom = sysctl_result({MAX: (262144, 4194304)})
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_mode='sysctl_only',
                synflood_guard_headroom_vars={'tuning_max': 4194304})
    # group_vars: tuning_buckets keep (applies), tuning_max 1048576 (the headroom's own value wins)
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True),
                                              'conntrack_sysctl': [knobs, headroom], 'conntrack_notrack': SAME_RULES},
                         host_vars={'tuning_buckets': 'keep', 'tuning_max': 1048576, 'tuning_report': 'not an option'})
    result = run(action)
    assert not result.get('failed'), result
    assert action.calls[3][1]['settings'] == {'max': 4194304}


def test_a_refused_headroom_fails_before_any_change():
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_headroom_vars={'tuning_max': 3})
    action = make_action(ActionModule, args, {'conntrack_info': info(count=5, initial=True)})
    result = run(action)
    assert names(action) == ['conntrack_info']
    assert result['failed'] is True and 'headroom (tuning): refusing nf_conntrack_max 3' in result['msg']


def test_bad_headroom_vars_name_the_option():
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_headroom_vars={'tuning_per_core': 'lots'})
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True)})
    result = run(action)
    assert names(action) == ['conntrack_info']
    assert result['failed'] is True and 'synflood_guard_headroom_vars' in result['msg'] and 'tuning_per_core' in result['msg']
    args['synflood_guard_headroom_vars'] = {'max': 1}
    result = run(make_action(ActionModule, args, {'conntrack_info': info(initial=True)}))
    assert 'only hold variables of the tuning role (tuning_*), got: max' in result['msg']


def test_a_host_near_full_warns_naming_the_levers():
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(count=250000), 'conntrack_sysctl': sysctl_result(),
                                                 'conntrack_notrack': SAME_RULES})
    result = run(action)
    assert 'WARNING table 95.4% full' in result['msg']
    assert result['warnings'][0].startswith('h1: table 95.4% full') and 'synflood_guard_timeouts' in result['warnings'][0]


def test_module_warnings_are_passed_on():
    knobs = sysctl_result(warnings=['nf_conntrack is built in: modprobe.d is not read'])
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': knobs,
                                                 'conntrack_notrack': SAME_RULES})
    assert run(action)['warnings'] == ['nf_conntrack is built in: modprobe.d is not read']


def test_bad_arguments_fail_naming_the_option():
    action = make_action(ActionModule, {'synflood_guard_mode': 'fast'}, {'conntrack_info': info()})
    with pytest.raises(AnsibleActionFail, match='synflood_guard_mode'):
        run(action)
    assert action.calls == []


@pytest.mark.parametrize('owned,state,called', [
    (False, 'present', False), (True, 'present', True), (None, 'present', True),
    (False, 'absent', False), (True, 'absent', True),
])
def test_no_rules_call_when_there_is_nothing_to_set_or_remove(owned, state, called):
    args = {'synflood_guard_ports': [], 'synflood_guard_persist': False, 'synflood_guard_state': state}
    action = make_action(ActionModule, args, {'conntrack_info': info(owned_nft_table=owned),
                                              'conntrack_sysctl': sysctl_result(), 'conntrack_notrack': SAME_RULES})
    result = run(action)
    assert ('conntrack_notrack' in names(action)) is called and not result.get('failed'), result
    assert ('rules' in result['calls']) is called


def test_the_rules_call_runs_with_ports_or_persisted_files_whatever_the_read_says():
    for args in (PRESENT, {'synflood_guard_ports': [], 'synflood_guard_persist': True},
                 {'synflood_guard_state': 'absent', 'synflood_guard_persist': True}):
        action = make_action(ActionModule, args, {'conntrack_info': info(owned_nft_table=False, initial=True),
                                                  'conntrack_sysctl': sysctl_result(), 'conntrack_notrack': SAME_RULES})
        run(action)
        assert 'conntrack_notrack' in names(action), args


def test_every_change_is_one_module_process_on_the_host():
    knobs = sysctl_result({LOOSE: (1, 0)})
    headroom = sysctl_result({MAX: (262144, 4194304)})
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_headroom_vars={'tuning_max': 4194304})
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True),
                                              'conntrack_sysctl': [knobs, headroom], 'conntrack_notrack': RULES})
    result = run(action)
    assert action.processes == ['conntrack_info', 'conntrack_harden'] and not result.get('failed'), result
    assert set(result['calls']) == {'info', 'sysctl', 'rules', 'headroom_sysctl'}


def test_a_failing_rules_step_fails_the_task_with_the_knobs_put_back():
    knobs = sysctl_result({LOOSE: (1, 0)})
    failed = {'failed': True, 'changed': False, 'msg': 'applying the table: Error: injected; put back what the '
              'steps before it changed (sysctl)'}
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_sysctl': knobs,
                                                 'conntrack_notrack': failed})
    result = run(action)
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith('conntrack_notrack: applying the table') and 'put back' in result['msg']
    assert result['calls']['sysctl']['undone'] is True and result['calls']['rules']['undone'] == ['sysctl']


def test_a_host_side_failure_before_any_step_fails_the_task():
    crashed = {'failed': True, 'msg': 'MODULE FAILURE', 'module_stderr': 'Killed'}
    action = make_action(ActionModule, PRESENT, {'conntrack_info': info(), 'conntrack_harden': crashed})
    result = run(action)
    assert result['failed'] is True and result['msg'] == 'conntrack_harden: MODULE FAILURE'
    assert set(result['calls']) == {'info'}


def test_a_headroom_in_another_namespace_is_refused():
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_headroom_vars={'tuning_namespace': 'ns1'})
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True)})
    result = run(action)
    assert action.processes == ['conntrack_info']
    assert result['failed'] is True and "tuning_namespace 'ns1' is not for the headroom" in result['msg']


def test_a_host_tuning_namespace_does_not_move_the_headroom():
    knobs = sysctl_result({LOOSE: (1, 0)})
    args = dict(PRESENT, synflood_guard_headroom=True, synflood_guard_headroom_vars={'tuning_max': 4194304})
    action = make_action(ActionModule, args, {'conntrack_info': info(initial=True),
                                              'conntrack_sysctl': [knobs, sysctl_result({MAX: (262144, 4194304)})],
                                              'conntrack_notrack': RULES}, host_vars={'tuning_namespace': 'ns1'})
    result = run(action)
    assert not result.get('failed'), result
    assert all('namespace' not in step_args for _name, step_args in action.calls[1:])
