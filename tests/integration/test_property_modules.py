"""Property-based tests: every module on generated input, inside a ``ctprop`` network namespace.

For every input (derived from the module's own argument_spec, see propsupport.ArgGen), the module's
``main()`` runs in a forked child that entered the test namespace first, and:

1. no traceback: the output is one JSON object, no ``exception`` key, no "Traceback" in stdout or
   stderr, exit code 0 or 1;
2. a failed call (failed: true) changes nothing: the namespace snapshot before == after;
3. the canary nft tables are byte-identical after every call;
4. every failure's msg names an option (or a sub-option path such as rules[0].iif) of the module;
and a call in check mode never changes the snapshot.

Violations are collected (one finding per distinct signature, reduced to a small reproducing input)
and reported at the end of each module's test, so one run shows every distinct problem. The counts
per module are printed in the terminal summary and written with the findings to
``<pytest basetemp>/ctprop*/ctprop-summary.json`` (and ``.md``).

Knobs: CTPROP_EXAMPLES (inputs per module, default 500), CTPROP_RANDOM=1 (random instead of
derandomized examples), CTPROP_SHRINK=1 (stop at the first violation and let hypothesis shrink it),
CTPROP_MINIMIZE (how many findings per module to reduce, default 12), CTPROP_REPORT_DIR (where the summary
and findings go instead of the pytest basetemp).
"""
import json
import os
import re
import subprocess

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import propsupport as ps

EXAMPLES = int(os.environ.get('CTPROP_EXAMPLES', '500'))
RANDOM = os.environ.get('CTPROP_RANDOM') == '1'
SHRINK = os.environ.get('CTPROP_SHRINK') == '1'
MINIMIZE = int(os.environ.get('CTPROP_MINIMIZE', '12'))


@pytest.fixture(scope='module')
def env(request, tmp_path_factory):
    base = str(tmp_path_factory.mktemp('ctprop'))
    ps.register_summary(request.config, base)
    with ps.prop_env('p', base) as the_env:
        yield the_env


def run_property(env, module):
    assert not env.seed_problems, env.seed_problems
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(inputs=ps.call_inputs(env, module))
    def prop(inputs):
        args, check_mode, diff = inputs
        call = env.call(module, args, check_mode=check_mode, diff=diff)
        env.record(call)
        if SHRINK and call.problems:
            raise AssertionError(call.describe())

    prop()
    findings = [f for f in ps.FINDINGS if f.module == module]
    for finding in findings[:MINIMIZE]:
        env.minimize(finding)
    ps.write_report()
    print('\n'.join(ps.STATS.lines()))
    assert not findings, '%d distinct problems in %s (report: %s):\n\n%s' % (
        len(findings), module, ps._REPORT['path'], '\n\n'.join(f.text() for f in findings))


def test_conntrack_info(env):
    run_property(env, 'conntrack_info')


def test_conntrack_entry(env):
    run_property(env, 'conntrack_entry')


def test_conntrack_flush(env):
    run_property(env, 'conntrack_flush')


def test_conntrack_sysctl(env):
    run_property(env, 'conntrack_sysctl')


def test_conntrack_helper(env):
    run_property(env, 'conntrack_helper')


def test_conntrack_notrack(env):
    run_property(env, 'conntrack_notrack')


# --- the harness itself ---------------------------------------------------------------------------

def _kinds(call):
    return set(kind for kind, _sig, _detail in call.problems)


def test_harness_environment(env):
    """The namespace is isolated (lo only, documentation addresses, no route) and seeded."""
    links = subprocess.run(['ip', '-n', env.name, '-o', 'link', 'show'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.strip().splitlines()
    assert len(links) == 1 and ': lo:' in links[0]
    addrs = subprocess.run(['ip', '-n', env.name, '-o', 'addr', 'show'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout
    assert '192.0.2.1/24' in addrs and '2001:db8::1/64' in addrs
    assert not subprocess.run(['ip', '-n', env.name, 'route', 'show', 'default'], stdout=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout.strip()
    assert not env.seed_problems, env.seed_problems
    entries, expectations = env.tools_listing
    assert len(entries) == len(ps.SEED_ENTRIES) + 2 and len(expectations) == 2, env.tools_listing  # + 2 ftp masters
    # the snapshot's decoder sees what conntrack-tools sees
    assert not env.tools_snapshot, env.baseline['decoded']
    decoded = [json.loads(e) for e in env.baseline['decoded'] if not e.startswith('expect ')]
    assert len(decoded) == len(entries) and len(env.baseline['decoded']) - len(decoded) == len(expectations)
    tools = set((l.split()[2], re.search(r'src=(\S+)', l).group(1), re.search(r'dst=(\S+)', l).group(1),
                 int(re.search(r'mark=(\d+)', l).group(1)), int((re.search(r'zone=(\d+)', l) or ['', 0])[1]))
                for l in entries)
    ours = set((e.get('proto'), e.get('src'), e.get('dst'), e.get('mark', 0), e.get('zone', 0)) for e in decoded)
    assert tools == ours, (tools, ours)
    assert 'ct label' not in env.baseline['ruleset']
    assert 'table inet ctprop_canary {' in env.baseline['canary']
    assert env.name.startswith('ctprop')
    # the child really runs in the test namespace even without the namespace option
    assert env.in_ns(lambda: os.stat('/proc/self/ns/net').st_ino) == env.ns_ino


def test_harness_reports_a_traceback(env):
    def boom(mod):
        def gather(*_a, **_k):
            raise RuntimeError('deliberate')
        mod.gather = gather
    call = env.call('conntrack_info', {}, patch=boom, count=False)
    assert 'traceback' in _kinds(call), call.describe()
    assert 'RuntimeError' in call.run.stderr and call.run.rc == 99


def test_harness_reports_state_change_on_failure(env):
    def change_then_fail(mod):
        def main():
            subprocess.run([ps.NFT, 'add', 'table', 'ip', 'ctprop_selftest'], check=True)
            print(json.dumps({'failed': True, 'msg': 'namespace is wrong'}))
            raise SystemExit(1)
        mod.main = main
    call = env.call('conntrack_info', {}, patch=change_then_fail, count=False)
    assert 'state_changed_on_failure' in _kinds(call), call.describe()
    assert 'msg_without_option' not in _kinds(call)
    assert not ps.diff_sections(env.baseline, env.current, ps.SECTIONS), 'not restored'


def test_harness_reports_canary_change_and_unnamed_option(env):
    def touch_canary(mod):
        def main():
            subprocess.run([ps.NFT, 'flush', 'chain', 'inet', 'ctprop_canary', 'c_in2'], check=True)
            print(json.dumps({'failed': True, 'msg': 'something went wrong'}))
            raise SystemExit(1)
        mod.main = main
    call = env.call('conntrack_notrack', {}, patch=touch_canary, count=False)
    assert {'canary_changed', 'msg_without_option'} <= _kinds(call), call.describe()


def test_harness_reports_check_mode_change_and_bad_exit(env):
    def flush_in_check_mode(mod):
        def main():
            subprocess.run([ps.CONNTRACK, '-D', '-p', 'udp'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            print(json.dumps({'changed': True}))
            raise SystemExit(3)
        mod.main = main
    call = env.call('conntrack_flush', {}, check_mode=True, patch=flush_in_check_mode, count=False)
    assert {'check_mode_changed', 'bad_output'} <= _kinds(call), call.describe()


def test_harness_kills_a_hanging_module(env):
    def hang(mod):
        def main():
            import time
            time.sleep(60)
        mod.main = main
    call = env.call('conntrack_info', {}, patch=hang, count=False, timeout=2)
    assert call.run.timed_out and 'timeout' in _kinds(call)


def test_harness_refuses_unsafe_inputs(env):
    """The guard stops any input that could reach another namespace or a file outside the tmp dir."""
    for value in ('/proc/1/ns/net', '/proc/self/ns/net', '/run/netns/' + env.name, 1, ['x'], '..', '.',
                  '~/x', '/tmp/../proc/1/ns/net', env.work_dir + '/../../../proc/1/ns/net'):
        with pytest.raises(ps.HarnessError):
            ps.assert_safe(env, 'conntrack_info', {'namespace': value})
    paths = env.complete_paths('conntrack_sysctl', {})
    for bad in ('/etc/sysctl.d/x.conf', '~/x', '$HOME/x', None):
        with pytest.raises(ps.HarnessError):
            ps.assert_safe(env, 'conntrack_sysctl', dict(paths, sysctl_file=bad))
    with pytest.raises(ps.HarnessError):
        ps.assert_safe(env, 'conntrack_notrack', {'namespace': None})  # persist_file/unit_file left to defaults
    ps.assert_safe(env, 'conntrack_sysctl', dict(paths, namespace=env.name))
    ps.assert_safe(env, 'conntrack_info', {'namespace': 'ctprop-missing-\x00;$(id)'})


def test_harness_argspecs_cover_every_option(env):
    """Every option of every module has a generator (nothing of the argspec is left out)."""
    for module in ps.MODULES:
        spec = env.specs[module]['argument_spec']
        assert 'namespace' in spec, module
        seen = set()

        @settings(max_examples=400, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        @given(args=ps.module_args(env, module))
        def collect(args):
            ps.assert_safe(env, module, env.complete_paths(module, args))
            seen.update(args)
        collect()
        assert set(spec) <= seen, (module, sorted(set(spec) - seen))
