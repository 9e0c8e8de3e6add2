"""The fleet summary (plugins/filter/fleet_summary.py), from registered results, without a kernel."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.filter.fleet_summary import conntrack_fleet_summary

from fleet_inputs import info


def test_fleet_summary_counts_and_names_the_hosts_to_look_at():
    hostvars = {
        'h1': {'__tuning_info': info(), '__tuning_result': {'changed': True}, '__tuning_reported': {'msg': 'h1: ok'}},
        'h2': {'__tuning_info': info(count=261882), '__tuning_result': {'skipped': True},
               '__tuning_reported': {'msg': 'h2: no change; WARNING table 99.9% full'}},
        'h3': {'__tuning_info': info(), '__tuning_reported': {'failed': True, 'msg': 'h3: FAILED refusing'}},
        'h4': {},  # never got to the report (the run stopped)
    }
    lines = conntrack_fleet_summary(hostvars, ['h1', 'h2', 'h3', 'h4'], 'tuning', warn_percent=80)
    assert lines[0] == 'tuning: 4 hosts, 1 changed, 2 failed or refused, 1 at or above 80% of nf_conntrack_max'
    assert 'failed or refused: h3, h4' in lines
    assert 'near the limit: h2: no change; WARNING table 99.9% full' in lines
    assert any('global knobs skipped (network namespace)' in line for line in lines)
    with pytest.raises(Exception):
        conntrack_fleet_summary(hostvars, ['h1'], 'other')


def test_fleet_summary_reads_the_engines_one_result():
    def outcome(changed=False, failed=False, count=100, line='ok', **extra):
        result = {'changed': changed, 'failed': failed, 'msg': line, 'report': {'line': line},
                  'calls': {'info': info(count=count)}}
        result.update(extra)
        return result

    hostvars = {
        'h1': {'__tuning_outcome': outcome(changed=True, line='h1: changed udp_timeout 30->44')},
        'h2': {'__tuning_outcome': outcome(count=261882, line='h2: no change; WARNING table 99.9% full')},
        'h3': {'__tuning_outcome': outcome(failed=True, line='h3: FAILED refusing')},
        'h4': {},
        'vm': {'__tuning_outcome': outcome(calls={'info': info(count=300000, initial=True), 'sysctl': {
            'settings': {'net.netfilter.nf_conntrack_max': {'old': 262144, 'new': 1048576, 'changed': True}}}})},
    }
    lines = conntrack_fleet_summary(hostvars, ['h1', 'h2', 'h3', 'h4', 'vm'], 'tuning', warn_percent=80)
    assert lines[0] == 'tuning: 5 hosts, 1 changed, 2 failed or refused, 1 at or above 80% of nf_conntrack_max'
    assert 'failed or refused: h3, h4' in lines
    assert 'near the limit: h2: no change; WARNING table 99.9% full' in lines
    assert any(line.startswith('3 hosts are network namespaces') for line in lines)
    harden = {'h1': {'__synflood_guard_outcome': outcome(changed=True)}}
    assert conntrack_fleet_summary(harden, ['h1'], 'synflood_guard')[0].startswith('synflood_guard: 1 hosts, 1 changed')
