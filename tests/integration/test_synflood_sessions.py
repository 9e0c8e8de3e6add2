"""What survives on a synflood_guard-protected server: real long-lived TCP connections, real kernel, root.

The flood lab (tests/lab/synflood.py, namespace prefix ``ctss``) with two services on the server:

* PROTECTED (the lab's service, synflood.PORT): in ``synflood_guard_ports``, mode synproxy. The lab
  firewall accepts it statefully (``ct state new accept``), as it always did.
* UNPROTECTED (a second echo service): accepted by the lab firewall in ANY conntrack state
  (``synflood.accept_port_any_state``), like an operator's own ``tcp dport 22 accept``. That is what the
  bug report's host had: only a rule of the collection could stall that port. (A host firewall that
  itself drops ``ct state invalid`` on the port would stall it after a flush under tcp_loose=0 too; that
  is the host's own rule, not the collection's.)

Steps (one test each, in order; a later step opens fresh connections when an earlier one left none):

1. connections opened before the role survive the role (tcp_loose=0 + SYNPROXY + invalid drop);
2. a connection to the protected port opened after the role (through SYNPROXY: cookie_valid counts it) echoes;
3. ``conntrack_flush all: true`` keeps the entries of the protected port (``protected_kept``,
   ``protected``, a warning) and deletes the unprotected one's; every connection still echoes;
4. the same flush with ``break_synproxy_connections: true`` deletes them too: the unprotected connection
   still echoes, the protected ones no longer do (bounded wait) -- the documented cost;
5. expiry (the server namespace's nf_conntrack_tcp_timeout_established lowered to a few seconds, restored
   afterwards): once both entries are gone, the unprotected connection still echoes, the protected one
   dies (SYNPROXY drops the mid-stream packet: cookie_invalid counts it).

Every read and subprocess is bounded; no assertion is on a duration. The role is removed
(synflood_guard_state=absent) and the lab torn down in every exit path.
"""
import os
import re
import shutil
import signal
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))
sys.path.insert(0, HERE)

import synflood  # noqa: E402
from ctin_support import run_module  # noqa: E402

PREFIX = 'ctss'
PROTECTED = synflood.PORT
UNPROTECTED = synflood.PORT + 1
READ_TIMEOUT = 3.0           # how long an echo may take before the connection counts as not answering
SHORT_ESTABLISHED = 3        # seconds, step 5
EXPIRY_WAIT = 40.0           # bound on waiting for the entries to expire (step 5)
TEST_BUDGET = 280            # seconds per test (SIGALRM), a net under the per-call bounds
ESTABLISHED_KNOB = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established'

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces, nftables)'),
    pytest.mark.skipif(shutil.which('hping3') is None or shutil.which('nft') is None
                       or shutil.which('conntrack') is None, reason='needs hping3, nft and conntrack'),
]


class _Budget(Exception):
    pass


@pytest.fixture(autouse=True)
def budget():
    def over(signum, frame):
        raise _Budget('the test went over its %d s budget' % TEST_BUDGET)
    previous = signal.signal(signal.SIGALRM, over)
    signal.alarm(TEST_BUDGET)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('synflood_sessions'))
    flood_lab = synflood.FloodLab(prefix=PREFIX)
    names = flood_lab.namespaces()
    with flood_lab:
        flood_lab.workdir = directory
        flood_lab.sessions = []  # every LineSession of the module, closed at the end
        try:
            synflood.start_extra_service(flood_lab, UNPROTECTED)
            synflood.accept_port_any_state(flood_lab, UNPROTECTED)
            yield flood_lab
        finally:
            for session in flood_lab.sessions:
                session.close()
            rc, out, _recap = flood_lab.apply_role(directory, check=False, synflood_guard_state='absent')
            if rc != 0:
                print('removing the role failed (rc=%d):\n%s' % (rc, out[-4000:]))
    left = synflood.run(['ip', 'netns', 'list'], timeout=10).stdout
    assert not [name for name in names if re.search(r'^%s\b' % re.escape(name), left, re.M)], left


@pytest.fixture(scope='module')
def state():
    """What one step hands to the next: the connections still expected to echo."""
    return {'unprotected': [], 'protected': []}


@pytest.fixture
def established_timeout(lab):
    """Set the server namespace's tcp_timeout_established; the original value is restored in every exit path."""
    original = lab.exec_(lab.server, ['cat', ESTABLISHED_KNOB], timeout=10).stdout.strip()

    def set_to(seconds):
        lab.exec_(lab.server, ['sh', '-c', 'echo %d > %s' % (int(seconds), ESTABLISHED_KNOB)], timeout=10)
        assert lab.exec_(lab.server, ['cat', ESTABLISHED_KNOB], timeout=10).stdout.strip() == str(int(seconds))

    yield set_to
    lab.exec_(lab.server, ['sh', '-c', 'echo %s > %s' % (original, ESTABLISHED_KNOB)], timeout=10)
    assert lab.exec_(lab.server, ['cat', ESTABLISHED_KNOB], timeout=10).stdout.strip() == original


# -------------------------------------------------------------------------------------------------
# helpers

def connect(lab, port):
    session = synflood.LineSession(lab, port, timeout=READ_TIMEOUT)
    lab.sessions.append(session)
    return session


def apply_role(lab):
    rc, out, recap = lab.apply_role(lab.workdir, check=False, synflood_guard_mode='synproxy',
                                    synflood_guard_ports=[PROTECTED], synflood_guard_persist=False)
    assert rc == 0, out[-6000:]
    return recap


def owned_table(lab):
    proc = lab.exec_(lab.server, ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False, timeout=20)
    return proc.stdout if proc.returncode == 0 else ''


def ensure_role(lab):
    if 'synproxy' not in owned_table(lab) or knob(lab, 'nf_conntrack_tcp_loose') != 0:
        apply_role(lab)


def knob(lab, name):
    return int(lab.exec_(lab.server, ['cat', '/proc/sys/net/netfilter/' + name], timeout=10).stdout)


def entries(lab, dport):
    """{client source port: conntrack -L line} of the server's TCP entries to ``dport`` (original direction)."""
    out = lab.exec_(lab.server, ['conntrack', '-L', '-p', 'tcp', '--dport', str(dport)], timeout=20).stdout
    found = {}
    for line in out.splitlines():
        match = re.search(r'\bsport=(\d+) dport=(\d+)', line)
        if match and int(match.group(2)) == dport:
            found[int(match.group(1))] = line.strip()
    return found


def synproxy_counters(lab):
    rows = [line.split() for line in lab.exec_(lab.server, ['cat', '/proc/net/stat/synproxy'],
                                               timeout=10).stdout.splitlines()]
    total = {}
    for row in rows[1:]:
        for key, value in zip(rows[0], row):
            total[key] = total.get(key, 0) + int(value, 16)
    return total


def flush(lab, **args):
    rc, result, stderr = run_module('conntrack_flush', dict(args, _ansible_diff=False), namespace=lab.server)
    assert 'Traceback' not in stderr, stderr[-4000:]
    return rc, result


_counter = [0]


def token(label):
    _counter[0] += 1
    return 'echo-%s-%d' % (label, _counter[0])


def echoes(session, label):
    """(ok, what came back) for one distinct line."""
    text = token(label)
    answer = session.echo(text)
    return answer == text, answer


def live(lab, state):
    """The connections of earlier steps that still echo, plus fresh ones where a kind has none left."""
    for kind in ('unprotected', 'protected'):
        state[kind] = [s for s in state[kind] if echoes(s, 'precheck')[0]]
    if not state['unprotected']:
        state['unprotected'].append(connect(lab, UNPROTECTED))
    if not state['protected']:
        state['protected'].append(connect(lab, PROTECTED))
    return state['unprotected'], state['protected']


def check(failures, condition, text):
    if not condition:
        failures.append(text)


# -------------------------------------------------------------------------------------------------
# 1. connections opened before the role

def test_step1_connections_opened_before_the_role_survive_it(lab, state):
    unprotected = connect(lab, UNPROTECTED)
    protected = connect(lab, PROTECTED)
    assert echoes(unprotected, 'u-before')[0]
    assert echoes(protected, 'p-before')[0]
    # the lab firewall's stateful rules track both connections
    assert unprotected.sport in entries(lab, UNPROTECTED)
    assert protected.sport in entries(lab, PROTECTED)

    recap = apply_role(lab)
    assert recap.get('changed', 0) > 0, recap
    assert knob(lab, 'nf_conntrack_tcp_loose') == 0
    table = owned_table(lab)
    assert 'synproxy' in table and 'dport %d' % PROTECTED in table, table
    assert str(UNPROTECTED) not in table, table

    u_ok, u_answer = echoes(unprotected, 'u-after-role')
    p_ok, p_answer = echoes(protected, 'p-after-role')
    assert (u_ok, p_ok) == (True, True), {'unprotected': u_answer, 'protected': p_answer}
    state['unprotected'].append(unprotected)
    state['protected'].append(protected)


# -------------------------------------------------------------------------------------------------
# 2. a connection to the protected port opened after the role, through SYNPROXY

def test_step2_new_protected_connection_through_synproxy_echoes(lab, state):
    ensure_role(lab)
    before = synproxy_counters(lab)
    session = connect(lab, PROTECTED)
    ok, answer = echoes(session, 'p-new')
    after = synproxy_counters(lab)
    assert ok, answer
    assert after['cookie_valid'] > before['cookie_valid'], (before, after)  # the handshake went through SYNPROXY
    assert session.sport in entries(lab, PROTECTED)
    state['protected'].append(session)


# -------------------------------------------------------------------------------------------------
# 3. flush all: the protected entries are kept, the unprotected one goes, everything still echoes

def test_step3_flush_all_keeps_synproxy_connections(lab, state):
    ensure_role(lab)
    unprotected, protected = live(lab, state)
    tracked_u = [s for s in unprotected if s.sport in entries(lab, UNPROTECTED)]
    rc, result = flush(lab, all=True)
    # right after the flush, before any packet: what is left in the server's table
    left_protected = entries(lab, PROTECTED)
    left_unprotected = entries(lab, UNPROTECTED)
    answers = {}
    for label, sessions in (('unprotected', unprotected), ('protected', protected)):
        for session in sessions:
            answers['%s:%d' % (label, session.sport)] = echoes(session, label[0] + '-after-flush')
    observed = {'rc': rc, 'result': dict((k, result.get(k)) for k in (
        'failed', 'msg', 'changed', 'deleted', 'protected_kept', 'protected', 'warnings', 'method')),
        'protected entries left': sorted(left_protected), 'unprotected entries left': sorted(left_unprotected),
        'protected sports': [s.sport for s in protected], 'unprotected sports': [s.sport for s in unprotected],
        'answers': answers, 'unprotected entries after the echo': sorted(entries(lab, UNPROTECTED))}
    print(observed)

    failures = []
    check(failures, rc == 0 and not result.get('failed'), 'the flush failed')
    check(failures, all(ok for ok, _a in answers.values()), 'a connection stopped echoing after the flush')
    check(failures, isinstance(result.get('protected_kept'), int) and result['protected_kept'] >= len(protected),
          'protected_kept is not >= %d' % len(protected))
    check(failures, any('tcp dport %d' % PROTECTED in str(item) for item in result.get('protected') or []),
          'protected does not describe tcp dport %d' % PROTECTED)
    check(failures, not any(str(UNPROTECTED) in str(item) for item in result.get('protected') or []),
          'protected names the unprotected port')
    check(failures, any('synproxy' in str(w).lower() for w in result.get('warnings') or []),
          'no warning about the kept SYNPROXY entries')
    check(failures, all(s.sport in left_protected for s in protected),
          'an entry of a protected connection was deleted')
    check(failures, not any(s.sport in left_unprotected for s in unprotected),
          'the unprotected connection\'s entry was not deleted')
    check(failures, (result.get('deleted') or 0) >= len(tracked_u), 'deleted < the tracked unprotected connections')
    assert not failures, '%s\n%s' % ('; '.join(failures), observed)


# -------------------------------------------------------------------------------------------------
# 4. flush all with break_synproxy_connections: the protected connections die, the unprotected one lives

def test_step4_break_synproxy_connections_kills_protected_only(lab, state):
    ensure_role(lab)
    live(lab, state)
    # fresh ones too: one of each opened after the role (the protected one through SYNPROXY)
    state['unprotected'].append(connect(lab, UNPROTECTED))
    state['protected'].append(connect(lab, PROTECTED))
    unprotected, protected = list(state['unprotected']), list(state['protected'])
    for session in unprotected + protected:
        assert echoes(session, 'precheck')[0]
    before_u, before_p = entries(lab, UNPROTECTED), entries(lab, PROTECTED)
    tracked = [s for s in unprotected if s.sport in before_u] + [s for s in protected if s.sport in before_p]
    assert all(s.sport in before_p for s in protected), (before_p, [s.sport for s in protected])
    rc, result = flush(lab, all=True, break_synproxy_connections=True)
    left_protected = entries(lab, PROTECTED)
    left_unprotected = entries(lab, UNPROTECTED)
    answers = {}
    for label, sessions in (('unprotected', unprotected), ('protected', protected)):
        for session in sessions:
            answers['%s:%d' % (label, session.sport)] = echoes(session, label[0] + '-after-break')
    observed = {'rc': rc, 'result': dict((k, result.get(k)) for k in (
        'failed', 'msg', 'changed', 'deleted', 'protected_kept', 'protected', 'warnings', 'method')),
        'protected entries left': sorted(left_protected), 'unprotected entries left': sorted(left_unprotected),
        'protected sports': [s.sport for s in protected], 'unprotected sports': [s.sport for s in unprotected],
        'answers': answers}
    print(observed)
    # the dead ones are of no further use
    for session in protected:
        session.close()
    state['protected'] = []

    failures = []
    check(failures, rc == 0 and not result.get('failed'), 'the flush failed')
    check(failures, not (result.get('protected_kept') or 0), 'protected entries were kept')
    check(failures, not any(s.sport in left_protected for s in protected), 'a protected entry was not deleted')
    check(failures, not any(s.sport in left_unprotected for s in unprotected), 'an unprotected entry was not deleted')
    check(failures, (result.get('deleted') or 0) >= len(tracked), 'deleted < the tracked connections')
    check(failures, all(answers['unprotected:%d' % s.sport][0] for s in unprotected),
          'the unprotected connection stopped echoing')
    check(failures, not any(answers['protected:%d' % s.sport][0] for s in protected),
          'a protected connection still echoes after its entry was deleted')
    assert not failures, '%s\n%s' % ('; '.join(failures), observed)


# -------------------------------------------------------------------------------------------------
# 5. expiry: the entries time out while both connections idle

def test_step5_expired_entries(lab, state, established_timeout):
    ensure_role(lab)
    unprotected = connect(lab, UNPROTECTED)
    protected = connect(lab, PROTECTED)
    established_timeout(SHORT_ESTABLISHED)
    # one round trip each after the change, so both entries carry the short timeout
    assert echoes(unprotected, 'u-refresh')[0]
    assert echoes(protected, 'p-refresh')[0]
    deadline = time.monotonic() + EXPIRY_WAIT
    while True:
        gone_u = unprotected.sport not in entries(lab, UNPROTECTED)
        gone_p = protected.sport not in entries(lab, PROTECTED)
        if (gone_u and gone_p) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert gone_u and gone_p, 'entries not expired within %.0f s: %s %s' % (
        EXPIRY_WAIT, entries(lab, UNPROTECTED), entries(lab, PROTECTED))

    before = synproxy_counters(lab)
    u_ok, u_answer = echoes(unprotected, 'u-after-expiry')
    p_ok, p_answer = echoes(protected, 'p-after-expiry')
    after = synproxy_counters(lab)
    observed = {'unprotected': u_answer, 'protected': p_answer,
                'synproxy counters': dict((k, after[k] - before[k]) for k in after),
                'unprotected entry re-created': unprotected.sport in entries(lab, UNPROTECTED),
                'protected entry re-created': protected.sport in entries(lab, PROTECTED)}
    print(observed)
    protected.close()
    state['unprotected'].append(unprotected)

    failures = []
    check(failures, u_ok, 'the unprotected connection stopped echoing after its entry expired')
    check(failures, not p_ok, 'the protected connection still echoes after its entry expired')
    check(failures, after['cookie_invalid'] > before['cookie_invalid'],
          'SYNPROXY did not count the mid-stream packet as an invalid cookie')
    check(failures, not observed['protected entry re-created'], 'the protected entry was re-created mid-stream')
    assert not failures, '%s\n%s' % ('; '.join(failures), observed)
