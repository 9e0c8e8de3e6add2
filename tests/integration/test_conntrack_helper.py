"""conntrack_helper with real packets: an FTP control exchange announcing a passive port and a TFTP
read request create expectations (seen by conntrack_info and conntrack -L expect) only with the
helper attached; idempotence, check mode, bad input, other tables untouched."""
import json
import os
import subprocess
import time

import pytest

from conftest import ROOT
from lab import Lab

PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
MODULES = os.path.join(ROOT, 'plugins', 'modules')

FTP_SERVER = r'''
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 21)); s.listen(1); s.settimeout(8)
c, _a = s.accept(); c.settimeout(5)
c.sendall(b"220 lab ftp\r\n")
c.recv(64)
c.sendall(b"227 Entering Passive Mode (192,0,2,11,195,80).\r\n")
c.recv(64)
c.close()
'''

FTP_CLIENT = r'''
import socket, time
c = socket.create_connection(("192.0.2.11", 21), timeout=5)
c.recv(64); c.sendall(b"PASV\r\n"); print(c.recv(128).decode().strip())
time.sleep(1.5)  # the expectation is read while the control connection is open
c.sendall(b"QUIT\r\n"); c.close()
'''


@pytest.fixture(scope='module')
def pair():
    lab = Lab(prefix='cthp', hosts=2)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def module(lab, host, name, args, check_mode=False):
    path = '/tmp/cthp-%s-%d.json' % (name, os.getpid())
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)}, handle)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'build', 'src'))
    proc = subprocess.run(['ip', 'netns', 'exec', lab.namespace(host), PYTHON, os.path.join(MODULES, name + '.py'),
                           path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)
    os.unlink(path)
    assert 'Traceback' not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def ftp_exchange_expectations(lab):
    """Run one FTP control exchange h2 -> h1:21 and return h1's expectations while it is open."""
    lab.exec('h1', ['conntrack', '-F'], check=False)
    lab.exec('h1', ['conntrack', '-F', 'expect'], check=False)
    server = subprocess.Popen(['ip', 'netns', 'exec', lab.namespace('h1'), 'timeout', '10', PYTHON, '-c', FTP_SERVER])
    time.sleep(0.5)
    client = subprocess.Popen(['ip', 'netns', 'exec', lab.namespace('h2'), 'timeout', '10', PYTHON, '-c', FTP_CLIENT],
                              stdout=subprocess.PIPE, universal_newlines=True)
    time.sleep(1.0)
    info = module(lab, 'h1', 'conntrack_info', {'expectations': True})
    cli = lab.exec('h1', ['conntrack', '-L', 'expect'], check=False).stdout
    out, _err = client.communicate(timeout=15)
    server.wait(timeout=15)
    assert '227 Entering Passive Mode' in out
    return info['expectations'], cli


def test_ftp_expectation_only_with_the_helper(pair):
    module(pair, 'h1', 'conntrack_helper', {'helper': 'ftp', 'state': 'absent'})
    expectations, cli = ftp_exchange_expectations(pair)
    assert expectations == [] and '50000' not in cli

    result = module(pair, 'h1', 'conntrack_helper', {'helper': 'ftp'})
    assert result['changed'] is True and 'ftp' in result['kernel_helpers']
    assert result['helper_assignment'] == 'explicit'
    expectations, cli = ftp_exchange_expectations(pair)
    assert [e['helper'] for e in expectations] == ['ftp'], expectations
    assert expectations[0]['tuple']['dport'] == 50000 and expectations[0]['tuple']['dst'] == '192.0.2.11'
    assert 'dport=50000' in cli  # conntrack-tools sees the same expectation

    assert module(pair, 'h1', 'conntrack_helper', {'helper': 'ftp'})['changed'] is False
    assert module(pair, 'h1', 'conntrack_helper', {'helper': 'ftp', 'state': 'absent'})['changed'] is True


def test_tftp_read_request_creates_an_expectation(pair):
    module(pair, 'h1', 'conntrack_helper', {'helper': 'tftp', 'family': 'ipv4'})
    pair.exec('h1', ['conntrack', '-F', 'expect'], check=False)
    pair.exec('h2', [PYTHON, '-c', 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
                                   's.sendto(b"\\x00\\x01file\\x00octet\\x00", ("192.0.2.11", 69))'])
    time.sleep(0.3)
    info = module(pair, 'h1', 'conntrack_info', {'expectations': True})
    assert [e['helper'] for e in info['expectations']] == ['tftp'], info['expectations']
    assert module(pair, 'h1', 'conntrack_helper', {'helper': 'tftp', 'family': 'ipv4', 'state': 'absent'})['changed']


def test_helpers_and_notrack_share_the_table(pair):
    module(pair, 'h1', 'conntrack_notrack', {'rules': [{'proto': 'udp', 'dport': 5353}], 'exclusive': True})
    module(pair, 'h1', 'conntrack_helper', {'helper': 'sip', 'proto': 'udp'})
    text = pair.exec('h1', ['nft', 'list', 'table', 'inet', 'netfilter_conntrack']).stdout
    assert 'udp dport 5353' in text and 'ct helper set' in text and 'type "sip" protocol udp' in text
    # each module keeps the other's part
    assert module(pair, 'h1', 'conntrack_notrack', {'rules': [{'proto': 'udp', 'dport': 5353}],
                                                    'exclusive': True})['changed'] is False
    assert 'ct helper set' in pair.exec('h1', ['nft', 'list', 'table', 'inet', 'netfilter_conntrack']).stdout
    module(pair, 'h1', 'conntrack_helper', {'helper': 'sip', 'proto': 'udp', 'state': 'absent'})
    module(pair, 'h1', 'conntrack_notrack', {'rules': [], 'exclusive': True})
    assert pair.exec('h1', ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False).returncode != 0


def test_check_mode_and_other_tables(pair):
    lab_table = pair.exec('h1', ['nft', 'list', 'table', 'inet', 'lab']).stdout
    result = module(pair, 'h1', 'conntrack_helper', {'helper': 'irc'}, check_mode=True)
    assert result['changed'] is True and 'type "irc" protocol tcp' in result['diff']['after']
    assert pair.exec('h1', ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False).returncode != 0
    module(pair, 'h1', 'conntrack_helper', {'helper': 'irc'})
    module(pair, 'h1', 'conntrack_helper', {'helper': 'irc', 'state': 'absent'})
    assert pair.exec('h1', ['nft', 'list', 'table', 'inet', 'lab']).stdout == lab_table


@pytest.mark.parametrize('args, words', [
    ({'helper': 'tftp', 'proto': 'tcp'}, 'works over udp, not tcp'),
    ({'helper': 'ftp', 'ports': 70000}, 'ports 70000 is out of range'),
    ({'helper': 'ftp', 'ports': '30-20'}, 'inverted'),
    ({'helper': 'gopher'}, 'value of helper must be one of'),
    ({'helper': 'snmp', 'family': 'ipv6'}, 'IPv4 only'),
])
def test_bad_input(pair, args, words):
    result = module(pair, 'h1', 'conntrack_helper', args)
    assert result.get('failed') and words in result['msg'], result
