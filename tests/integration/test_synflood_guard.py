"""The synflood_guard role on the flood lab's server (tests/lab/synflood.py), real kernel, root.

The role runs through ansible-playbook against an inventory whose only host is the lab server
(``ansible_connection=local`` + a wrapper interpreter inside its namespace), using the collection
from the work tree (build/src, see tests/conftest.py). Assertions are on the kernel state read back
afterwards (knobs in /proc, rules in nft, the conntrack count and stats), never on timings.

The flood test (``-m slow``) measures an unprotected server with a lowered global max (refused, and
the test skipped, while other namespaces' tables are busy) and then the server after the role.
"""
import json
import os
import shutil
import signal
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

import synflood  # noqa: E402

PORT = synflood.PORT
LOWERED_MAX = 4096
KNOBS = ('nf_conntrack_tcp_loose', 'nf_conntrack_tcp_timeout_syn_sent', 'nf_conntrack_tcp_timeout_syn_recv')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces, nftables)'),
    pytest.mark.skipif(shutil.which('hping3') is None or shutil.which('nft') is None,
                       reason='needs hping3 and nft'),
]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('synflood'))
    with synflood.FloodLab() as flood_lab:
        flood_lab.workdir = directory
        yield flood_lab
        flood_lab.apply_role(directory, check=False, synflood_guard_state='absent')


def run_role(lab, check=True, **variables):
    """Run the role on the lab server; return (rc, output, recap dict)."""
    rc, out, recap = lab.apply_role(lab.workdir, check=False, **variables)
    if check:
        assert rc == 0, out[-6000:]
    return rc, out, recap


def knobs(lab):
    values = {}
    for knob in KNOBS:
        values[knob] = int(lab.exec_(lab.server, ['cat', '/proc/sys/net/netfilter/' + knob]).stdout)
    return values


def ruleset(lab):
    """The server's nft ruleset except the lab's own firewall table."""
    tables = lab.exec_(lab.server, ['nft', 'list', 'tables']).stdout.split('\n')
    text = []
    for line in tables:
        parts = line.split()
        if len(parts) == 3 and parts[2] != 'lab':
            text.append(lab.exec_(lab.server, ['nft', 'list', 'table', parts[1], parts[2]]).stdout)
    return '\n'.join(text)


def lab_table(lab):
    return lab.exec_(lab.server, ['nft', 'list', 'table', 'inet', 'lab']).stdout


# -------------------------------------------------------------------------------------------------
# bad input: a clear message, nothing changed

BAD_INPUTS = [
    ({'synflood_guard_ports': [8080, 70000]}, 'must be TCP ports 1-65535; out of range: 70000'),
    ({'synflood_guard_ports': [0]}, 'out of range: 0'),
    ({'synflood_guard_mode': 'stateless'}, 'synflood_guard_mode'),
    ({'synflood_guard_sysctls': {'tcp_loose': 1}}, 'SYNPROXY needs nf_conntrack_tcp_loose=0'),
    ({'synflood_guard_sysctls': {'net.netfilter.nf_conntrack_tcp_loose': 1}}, 'SYNPROXY needs nf_conntrack_tcp_loose=0'),
    # "has no nft SYNPROXY": the probe is now part of conntrack_info's one facts call (no role variable can fake
    # a kernel without SYNPROXY here); covered by tests/unit/plugins/filter/test_synflood_role.py and test_procfs.py.
    ({'synflood_guard_synproxy_timestamp': True}, 'synflood_guard_synproxy_timestamp=true on kernel'),
    ({'synflood_guard_persist': True}, 'this host is a network namespace'),
    ({'synflood_guard_headroom': True}, 'nf_conntrack_max and the hash size are'),
    ({'synflood_guard_connlimit': 4, 'synflood_guard_mode': 'sysctl_only'}, 'needs protected ports'),
    ({'synflood_guard_synproxy_mss': 100}, 'synflood_guard_synproxy_mss 536-65535'),
]


@pytest.mark.parametrize('variables,message', BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_before_any_change(lab, variables, message):
    before = (knobs(lab), ruleset(lab), lab_table(lab))
    rc, out, recap = run_role(lab, check=False, **variables)
    assert rc != 0
    assert message in ' '.join(out.split()), out[-4000:]
    assert recap.get('changed', 0) == 0
    assert (knobs(lab), ruleset(lab), lab_table(lab)) == before


# -------------------------------------------------------------------------------------------------
# apply, idempotence, established sessions, absent

def test_apply_keeps_sessions_and_is_idempotent(lab):
    run_role(lab, synflood_guard_state='absent')
    firewall = lab_table(lab)
    session = lab.open_session()
    try:
        assert lab.session_echo(session, 'before') == 'before'
        rc, out, recap = run_role(lab)
        assert recap['changed'] > 0
        assert knobs(lab) == {'nf_conntrack_tcp_loose': 0, 'nf_conntrack_tcp_timeout_syn_sent': 30,
                              'nf_conntrack_tcp_timeout_syn_recv': 30}
        rules = ruleset(lab)
        assert 'synproxy' in rules and str(PORT) in rules, rules
        assert 'timestamp' not in rules.split('synproxy', 1)[1].split('\n')[0], rules  # kernel >= 6.15
        assert lab_table(lab) == firewall  # the user's own table untouched
        # the established session survives the role run
        assert lab.session_echo(session, 'after') == 'after'
        # new clients still get in, through SYNPROXY now
        result = lab.probe(attempts=20, interval=0.05, timeout=1.0)
        assert result['ok'] == 20, result
        # second run: nothing to change
        rc, out, recap = run_role(lab)
        assert recap['changed'] == 0, out[-4000:]
        assert lab.session_echo(session, 'again') == 'again'
    finally:
        session.kill()


def test_sysctl_only_mode_sets_no_rules(lab):
    run_role(lab, synflood_guard_state='absent')
    run_role(lab, synflood_guard_mode='sysctl_only', synflood_guard_timeouts={'tcp_timeout_syn_recv': '20s'})
    assert 'synproxy' not in ruleset(lab) and str(PORT) not in ruleset(lab)
    assert knobs(lab)['nf_conntrack_tcp_timeout_syn_recv'] == 20
    assert knobs(lab)['nf_conntrack_tcp_loose'] == 1  # only synproxy needs it off
    rc, out, recap = run_role(lab, synflood_guard_mode='sysctl_only', synflood_guard_timeouts={'tcp_timeout_syn_recv': '20s'})
    assert recap['changed'] == 0


def test_absent_removes_everything(lab):
    run_role(lab)
    assert 'synproxy' in ruleset(lab)
    rc, out, recap = run_role(lab, synflood_guard_state='absent')
    assert recap['changed'] > 0
    rules = ruleset(lab)
    assert 'synproxy' not in rules and str(PORT) not in rules, rules
    assert knobs(lab) == {'nf_conntrack_tcp_loose': 1, 'nf_conntrack_tcp_timeout_syn_sent': 120,
                          'nf_conntrack_tcp_timeout_syn_recv': 60}
    rc, out, recap = run_role(lab, synflood_guard_state='absent')
    assert recap['changed'] == 0
    assert lab.probe(attempts=10, interval=0.05)['ok'] == 10


# -------------------------------------------------------------------------------------------------
# the proof: a real flood

class _Budget(Exception):
    pass


@pytest.mark.slow
def test_flood_unprotected_vs_protected(lab):
    def over_budget(signum, frame):
        raise _Budget('the flood test went over its 3-minute budget')

    previous = signal.signal(signal.SIGALRM, over_budget)
    signal.alarm(175)
    try:
        run_role(lab, synflood_guard_state='absent')
        original_max = read_max()
        # Unprotected, lowered global max, sparse table (4,096 entries over 262,144 buckets): early drop
        # finds nothing to evict, the table fills and new clients are dropped.
        try:
            bare = lab.phase('unprotected', flood_seconds=13, global_max=LOWERED_MAX, busy_wait=30)
        except synflood.LabError as exc:
            if 'refusing to lower' in str(exc):
                pytest.skip(str(exc))
            raise
        print(json.dumps(bare, indent=1))
        assert bare['max'] == LOWERED_MAX
        assert bare['peak_count'] >= LOWERED_MAX * 0.99, bare
        assert bare['stats']['drop'] + bare['stats']['early_drop'] > 0, bare
        assert bare['clients']['attempts'] >= 200
        assert bare['clients']['success_pct'] < 50, bare
        assert read_max() == original_max  # restored as soon as the flood ended

        # Protected by the role (synproxy on the service port), default global max.
        run_role(lab)
        guarded = lab.phase('protected', flood_seconds=13)
        print(json.dumps(guarded, indent=1))
        assert guarded['clients']['attempts'] >= 200
        assert guarded['clients']['ok'] >= 0.99 * guarded['clients']['attempts'], guarded
        assert guarded['peak_count'] < 0.05 * guarded['max'], guarded
        assert guarded['stats']['drop'] == 0, guarded
        counters = synproxy_counters(lab)
        assert counters['syn_received'] > 10000, counters  # the flood did reach SYNPROXY
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_max():
    with open(synflood.MAX_PATH) as handle:
        return int(handle.read())


def synproxy_counters(lab):
    rows = [line.split() for line in lab.exec_(lab.server, ['cat', '/proc/net/stat/synproxy']).stdout.splitlines()]
    total = {}
    for row in rows[1:]:
        for key, value in zip(rows[0], row):
            total[key] = total.get(key, 0) + int(value, 16)
    return total
