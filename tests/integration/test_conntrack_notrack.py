"""conntrack_notrack against the real kernel, with real packets between two lab hosts.

Asserts what the kernel holds afterwards: no conntrack entry for notracked traffic while other
traffic is tracked; SYNPROXY answering SYNs without entries and handing real clients to the
service; other tables byte-identical; idempotence; check mode; persistence reloaded by nft -f.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from lab import Lab

MODULE = os.path.join(ROOT, 'plugins', 'modules', 'conntrack_notrack.py')
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
FIREWALLD_LIKE = '''
table inet firewalld {
    set allowed { type ipv4_addr; elements = { 198.51.100.1, 198.51.100.2 } }
    chain filter_INPUT { type filter hook input priority filter + 10; policy accept;
        ct state established,related accept
        ip saddr @allowed tcp dport 22 accept
    }
    chain filter_FORWARD { type filter hook forward priority filter + 10; policy accept; }
}
'''


@pytest.fixture(scope='module')
def pair():
    lab = Lab(prefix='ctnt', hosts=2)
    try:
        lab.up()
        lab.exec('h1', ['nft', '-f', '-'], input=FIREWALLD_LIKE)
        yield lab
    finally:
        lab.down()


def run_module(lab, host, args, check_mode=False, diff=True, tmp=None):
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    path = os.path.join(str(tmp or '/tmp'), 'ctnt-args-%d.json' % os.getpid())
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'build', 'src'))
    proc = subprocess.run(['ip', 'netns', 'exec', lab.namespace(host), PYTHON, MODULE, path], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    os.unlink(path)
    assert 'Traceback' not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def tables(lab, host):
    """Every table's text except ours: what must never change."""
    names = lab.exec(host, ['nft', 'list', 'tables']).stdout.split('\n')
    out = {}
    for line in names:
        parts = line.split()
        if len(parts) == 3 and parts[2] != 'netfilter_conntrack':
            out[' '.join(parts[1:])] = lab.exec(host, ['nft', 'list', 'table', parts[1], parts[2]]).stdout
    return out


def ours(lab, host):
    proc = lab.exec(host, ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False)
    return proc.stdout if proc.returncode == 0 else None


def udp_exchange(lab, client, server, port):
    """One UDP datagram from client to server:port (a listener echoes it); returns True if answered."""
    listener = subprocess.Popen(['ip', 'netns', 'exec', lab.namespace(server), 'timeout', '5', PYTHON, '-c',
                                 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
                                 's.bind(("0.0.0.0", %d)); d, a = s.recvfrom(64); s.sendto(d, a)' % port])
    time.sleep(0.4)
    proc = lab.exec(client, ['timeout', '5', PYTHON, '-c',
                             'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); '
                             's.sendto(b"x", ("%s", %d)); print(s.recvfrom(64)[0])' % (lab.ipv4(server), port)],
                    check=False)
    listener.wait(timeout=10)
    return proc.returncode == 0


def entries(lab, host, *args):
    return lab.exec(host, ['conntrack', '-L'] + list(args), check=False).stdout


def reset(lab, host):
    run_module(lab, host, {'rules': [], 'exclusive': True, 'drop_invalid': False})
    lab.exec(host, ['conntrack', '-F'], check=False)


def test_notrack_traffic_leaves_no_entry_while_other_traffic_is_tracked(pair):
    reset(pair, 'h1')
    before = tables(pair, 'h1')
    result = run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 5353},
                                               {'proto': 'udp', 'sport': 5353, 'direction': 'output'}]})
    assert result['changed'] is True and 'msg' not in result
    assert udp_exchange(pair, 'h2', 'h1', 5353)
    assert udp_exchange(pair, 'h2', 'h1', 5454)
    table = entries(pair, 'h1', '-p', 'udp')
    assert 'dport=5353' not in table, table
    assert 'dport=5454' in table, table
    assert tables(pair, 'h1') == before  # the lab's and the firewalld-like tables are untouched

    again = run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 5353},
                                              {'proto': 'udp', 'sport': 5353, 'direction': 'output'}]})
    assert again['changed'] is False

    removed = run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 5353, 'state': 'absent'},
                                                {'proto': 'udp', 'sport': 5353, 'direction': 'output',
                                                 'state': 'absent'}]})
    assert removed['changed'] is True
    pair.exec('h1', ['conntrack', '-F'], check=False)
    assert udp_exchange(pair, 'h2', 'h1', 5353)
    assert 'dport=5353' in entries(pair, 'h1', '-p', 'udp')  # tracking is back
    assert tables(pair, 'h1') == before


def test_check_mode_changes_nothing_and_diff_shows_the_table(pair):
    reset(pair, 'h1')
    before_ours = ours(pair, 'h1')
    result = run_module(pair, 'h1', {'rules': [{'proto': 'tcp', 'dport': '8000-8100'}]}, check_mode=True)
    assert result['changed'] is True
    assert 'tcp dport 8000-8100' in result['diff']['after'] and 'notrack' in result['diff']['after']
    assert ours(pair, 'h1') == before_ours


def test_rules_not_in_the_task_stay_unless_exclusive(pair):
    reset(pair, 'h1')
    run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 123}]})
    run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 53}]})
    text = ours(pair, 'h1')
    assert 'udp dport 123' in text and 'udp dport 53' in text
    result = run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 53}], 'exclusive': True})
    assert result['changed'] is True and len(result['removed']) == 1
    text = ours(pair, 'h1')
    assert 'udp dport 123' not in text and 'udp dport 53' in text


def test_synproxy_answers_syns_without_entries_and_serves_real_clients(pair):
    reset(pair, 'h1')
    for knob, value in (('net.netfilter.nf_conntrack_tcp_loose', '0'), ('net.ipv4.tcp_syncookies', '1'),
                        ('net.ipv4.tcp_timestamps', '1')):
        pair.exec('h1', ['sysctl', '-qw', '%s=%s' % (knob, value)])
    server = subprocess.Popen(['ip', 'netns', 'exec', pair.namespace('h1'), 'timeout', '20', PYTHON, '-c',
                               'import socket\n'
                               's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n'
                               's.bind(("0.0.0.0", 8443)); s.listen(16)\n'
                               'for _i in range(5):\n'
                               '    c, _a = s.accept(); c.sendall(b"hello\\n"); c.close()\n'])
    try:
        result = run_module(pair, 'h1', {'rules': [{'proto': 'tcp', 'dport': 8443, 'synproxy': True}],
                                         'drop_invalid': True})
        assert result['changed'] is True, result
        time.sleep(0.5)
        served = 0
        for _i in range(5):
            proc = pair.exec('h2', ['timeout', '5', PYTHON, '-c',
                                    'import socket; c = socket.create_connection(("%s", 8443), timeout=3); '
                                    'print(c.recv(16).decode().strip())' % pair.ipv4('h1')], check=False)
            served += proc.stdout.strip() == 'hello'
        assert served == 5
        counters = pair.exec('h1', ['cat', '/proc/net/stat/synproxy']).stdout.split('\n')
        assert len(counters) > 1  # the kernel's SYNPROXY core is active in this namespace
        # a bare SYN from a client that never completes the handshake leaves no entry
        pair.exec('h1', ['conntrack', '-F'], check=False)
        pair.exec('h2', ['hping3', '-c', '3', '-i', 'u20000', '-S', '-p', '8443', pair.ipv4('h1')], check=False)
        assert 'dport=8443' not in entries(pair, 'h1', '-p', 'tcp', '--state', 'SYN_RECV')
        assert 'dport=8443' not in entries(pair, 'h1', '-p', 'tcp', '--state', 'SYN_SENT')
    finally:
        server.kill()
        server.wait()
        reset(pair, 'h1')
        pair.exec('h1', ['sysctl', '-qw', 'net.netfilter.nf_conntrack_tcp_loose=1'])


@pytest.mark.parametrize('rule, words', [
    ({'proto': 'tcp', 'dport': 70000}, 'out of range'),
    ({'proto': 'tcp', 'dport': '2000-1000'}, 'inverted'),
    ({'proto': 'icmp', 'dport': 1}, 'ports need proto'),
    ({'proto': 'udp', 'dport': 53, 'synproxy': True}, 'synproxy needs proto tcp'),
    ({'proto': 'udp', 'dport': 53, 'iif': 'a-very-long-interface-name'}, 'not a valid interface name'),
    ({'proto': 'udp', 'dport': 53, 'oif': 'eth0'}, 'oif matches locally generated traffic only'),
    ({'proto': 'udp', 'src': '2001:db8::1', 'family': 'ipv4'}, 'IPv6 address but family is ipv4'),
    ({'proto': 'bogus'}, 'not supported'),
])
def test_bad_input_is_refused_before_anything_changes(pair, rule, words):
    before = ours(pair, 'h1'), tables(pair, 'h1')
    result = run_module(pair, 'h1', {'rules': [rule]})
    assert result.get('failed') and words in result['msg'], result
    assert (ours(pair, 'h1'), tables(pair, 'h1')) == before


def test_conflicting_rules_in_one_task(pair):
    result = run_module(pair, 'h1', {'rules': [{'proto': 'udp', 'dport': 53},
                                               {'proto': 'udp', 'dport': 53, 'state': 'absent'}]})
    assert result.get('failed') and 'both present and absent' in result['msg']


def test_persisted_table_reloads_identically(tmp_path):
    """In the initial namespace, persisted to a temp dir: delete the table, load the file, same table."""
    try:
        result = run_module_host({'rules': [{'proto': 'udp', 'dport': 5353, 'family': 'ipv4'}], 'exclusive': True,
                                  'persist': True, 'persist_file': str(tmp_path / 'nc.nft'),
                                  'unit_file': str(tmp_path / 'systemd' / 'netfilter-conntrack.service')}, tmp_path)
        assert result['changed'] and 'msg' not in result, result
        text = (tmp_path / 'nc.nft').read_text()
        assert 'delete table inet netfilter_conntrack' in text and 'udp dport 5353' in text
        unit = (tmp_path / 'systemd' / 'netfilter-conntrack.service').read_text()
        assert 'After=nftables.service' in unit and str(tmp_path / 'nc.nft') in unit
        assert os.path.islink(str(tmp_path / 'systemd' / 'multi-user.target.wants' / 'netfilter-conntrack.service'))
        listed = nft_host(['list', 'table', 'inet', 'netfilter_conntrack']).stdout
        nft_host(['delete', 'table', 'inet', 'netfilter_conntrack'])
        nft_host(['-f', str(tmp_path / 'nc.nft')])
        assert nft_host(['list', 'table', 'inet', 'netfilter_conntrack']).stdout == listed
        again = run_module_host({'rules': [{'proto': 'udp', 'dport': 5353, 'family': 'ipv4'}], 'exclusive': True,
                                 'persist': True, 'persist_file': str(tmp_path / 'nc.nft'),
                                 'unit_file': str(tmp_path / 'systemd' / 'netfilter-conntrack.service')}, tmp_path)
        assert again['changed'] is False
    finally:
        cleanup = run_module_host({'rules': [], 'exclusive': True, 'drop_invalid': False, 'persist': True,
                                   'persist_file': str(tmp_path / 'nc.nft'),
                                   'unit_file': str(tmp_path / 'systemd' / 'netfilter-conntrack.service')}, tmp_path)
        assert 'msg' not in cleanup, cleanup
    assert nft_host(['list', 'table', 'inet', 'netfilter_conntrack'], check=False).returncode != 0
    assert not (tmp_path / 'nc.nft').exists()


def run_module_host(args, tmp):
    path = os.path.join(str(tmp), 'args.json')
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_diff=True)}, handle)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'build', 'src'))
    proc = subprocess.run([sys.executable, MODULE, path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    return json.loads(proc.stdout)


def nft_host(args, check=True):
    return subprocess.run(['nft'] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=check)


def test_missing_nft_names_the_package(tmp_path):
    path = os.path.join(str(tmp_path), 'args.json')
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': {'rules': []}}, handle)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'build', 'src'), PATH=str(tmp_path))
    code = ('import shutil, os, runpy, sys; os.path.exists = lambda p, _e=os.path.exists: False if p.endswith("/nft") '
            'else _e(p); sys.argv = ["m", %r]; runpy.run_path(%r, run_name="__main__")' % (path, MODULE))
    proc = subprocess.run([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    result = json.loads(proc.stdout)
    assert result['failed'] and 'nftables package' in result['msg']
