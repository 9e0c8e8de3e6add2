"""conntrack_harden's host-side half (_steps): every step checked before any runs, all or nothing on a fake /proc, a
fake nft and real files in a temporary directory."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft, _steps, _sysctltask
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

from test_sysctl import make_proc, value

TABLE = 'table inet netfilter_conntrack {\n}\n'


class Nft(object):
    """Stands in for ``run_nft``: one table in the 'kernel'; ``fail_apply`` refuses the next n applies."""

    def __init__(self, table=None, fail_apply=0, fail_restore=False):
        self.table = table
        self.fail_apply = fail_apply
        self.fail_restore = fail_restore
        self.applied = []

    def __call__(self, args, stdin=None):
        if args[:1] == ['list']:
            return (0, self.table, '') if self.table else (1, '', 'Error: No such file or directory')
        if args[:1] == ['-c']:
            return 0, '', ''
        restoring = bool(self.applied)
        if self.fail_apply or (restoring and self.fail_restore):
            self.fail_apply = max(0, self.fail_apply - 1)
            return 1, '', 'Error: injected by the test'
        self.applied.append(stdin)
        body = stdin.split('delete table inet netfilter_conntrack\n', 1)[1]
        self.table = body or None
        return 0, '', ''


@pytest.fixture
def host(tmp_path, monkeypatch):
    proc = make_proc(tmp_path)
    nft = Nft()
    monkeypatch.setattr(_nft, 'run_nft', nft)

    def sysctl_task(params, check_mode, run_command, initial_namespace):
        manager = _sysctltask.SysctlManager(params, initial_namespace=initial_namespace, netfilter_dir=proc,
                                            module_kind='builtin')
        return manager.run(check_mode=check_mode), manager
    monkeypatch.setattr(_steps, 'sysctl_task', sysctl_task)
    files = dict(sysctl_file=str(tmp_path / 'sysctl.d' / 'nc.conf'))
    rules = dict(persist_file=str(tmp_path / 'nc' / 'nc.nft'), unit_file=str(tmp_path / 'systemd' / 'nc.service'))
    return dict(proc=proc, nft=nft, files=files, rules=rules, tmp=tmp_path)


def step(step_name, module, **args):
    return {'name': step_name, 'module': module, 'args': args}


def harden(host, persist=True, headroom=None):
    steps = [step('sysctl', 'conntrack_sysctl', settings={'udp_timeout': 60, 'tcp_timeout_established': 7440},
                  persist=persist, **host['files']),
             step('rules', 'conntrack_notrack', rules=[{'proto': 'tcp', 'dport': 8080, 'synproxy': True}],
                  drop_invalid=True, exclusive=True, persist=persist, **host['rules'])]
    if headroom is not None:
        steps.append(step('headroom_sysctl', 'conntrack_sysctl', settings=headroom))
    return _steps.check_steps(steps)


def run(host, checked, check_mode=False):
    return _steps.run_steps(checked, check_mode, lambda argv: (0, '', ''), True)


def test_all_steps_run_in_order_and_keep_their_results(host):
    results, failure = run(host, harden(host))
    assert failure is None
    assert results['sysctl']['changed'] and results['rules']['changed'] and results['rules']['in_force']
    assert value(host['proc'], 'nf_conntrack_udp_timeout') == '60'
    assert 'synproxy' in host['nft'].table
    assert os.path.exists(host['files']['sysctl_file']) and os.path.exists(host['rules']['persist_file'])
    again, failure = run(host, harden(host))
    assert failure is None and not again['sysctl']['changed'] and not again['rules']['changed']


def test_a_failing_rules_step_puts_the_knobs_and_their_file_back(host):
    host['nft'].fail_apply = 1
    results, failure = run(host, harden(host))
    assert failure.startswith('rules (conntrack_notrack): ')
    assert 'put back what the steps before it changed (sysctl)' in failure
    assert results['rules']['failed'] and results['rules']['undone'] == ['sysctl']
    assert results['sysctl']['undone'] is True and results['sysctl']['changed'] is False
    assert value(host['proc'], 'nf_conntrack_udp_timeout') == '30'
    assert value(host['proc'], 'nf_conntrack_tcp_timeout_established') == '432000'
    assert not os.path.exists(host['files']['sysctl_file'])
    assert not os.path.exists(host['rules']['persist_file'])  # the rules step undid its own files
    assert host['nft'].table is None


def test_a_file_that_existed_is_put_back_as_it_was(host):
    os.makedirs(os.path.dirname(host['files']['sysctl_file']))
    with open(host['files']['sysctl_file'], 'w') as handle:
        handle.write('net.netfilter.nf_conntrack_acct = 1\n')
    host['nft'].fail_apply = 1
    _results, failure = run(host, harden(host))
    assert failure
    assert open(host['files']['sysctl_file']).read() == 'net.netfilter.nf_conntrack_acct = 1\n'


def test_a_failing_last_step_puts_back_the_rules_then_the_knobs(host):
    host['nft'].table = TABLE
    # nf_conntrack_count is read-only: the headroom step fails after both others changed the host
    results, failure = run(host, harden(host, persist=False, headroom={'count': 5}))
    assert failure.startswith('headroom_sysctl (conntrack_sysctl): ')
    assert results['headroom_sysctl']['undone'] == ['rules', 'sysctl']
    assert host['nft'].table == TABLE  # the table as it was before the rules step
    assert value(host['proc'], 'nf_conntrack_udp_timeout') == '30'


def test_what_cannot_be_put_back_is_named(host):
    host['nft'].table = TABLE
    host['nft'].fail_restore = True
    _results, failure = run(host, harden(host, persist=False, headroom={'count': 5}))
    assert 'these could not be put back: rules: the nft table inet netfilter_conntrack' in failure
    assert value(host['proc'], 'nf_conntrack_udp_timeout') == '30'  # what could be put back was


def test_check_mode_changes_nothing_and_undoes_nothing(host):
    results, failure = run(host, harden(host), check_mode=True)
    assert failure is None and results['sysctl']['changed'] and results['rules']['changed']
    assert value(host['proc'], 'nf_conntrack_udp_timeout') == '30' and host['nft'].applied == []
    assert not os.path.exists(host['files']['sysctl_file'])


@pytest.mark.parametrize('steps,words', [
    ([step('a', 'conntrack_sysctl', name='max', settings={'max': 1})], "_steps[0].args (conntrack_sysctl): "
                                                                       "parameters are mutually exclusive: name|settings"),
    ([step('a', 'conntrack_sysctl', bogus=1)], '_steps[0].args (conntrack_sysctl): unsupported option bogus. Supported parameters include: apply'),
    ([step('a', 'conntrack_notrack', rules='x')], '_steps[0].args (conntrack_notrack): '),
    ([step('a', 'conntrack_sysctl'), step('a', 'conntrack_notrack')], "_steps[1].name 'a' is used by an earlier step"),
    ([step('a', 'conntrack_sysctl', namespace='ns1')], "_steps[0].args.namespace 'ns1'"),
])
def test_bad_steps_are_refused_before_anything_runs(host, steps, words):
    with pytest.raises(ConntrackError) as info:
        _steps.check_steps(steps)
    assert words in info.value.msg and info.value.option == '_steps'


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                       max_leaves=8)
OPTIONS = sorted(set(_sysctltask.SYSCTL_ARGSPEC) | set(_steps.NOTRACK_ARGSPEC))


@settings(max_examples=200, deadline=None)
@given(module=st.sampled_from(sorted(_steps.STEP_MODULES)),
       args=st.dictionaries(st.sampled_from(OPTIONS + ['junk']), JSONISH, max_size=4))
def test_generated_step_arguments_are_checked_or_refused_never_raised(module, args):
    args.pop('namespace', None)
    try:
        checked = _steps.check_steps([{'name': 's', 'module': module, 'args': args}])
    except ConntrackError as exc:
        assert exc.msg.startswith('_steps[0].args (%s): ' % module)
        return
    assert checked[0][0] == 's' and set(checked[0][2]) >= set(_steps.STEP_MODULES[module][0])
