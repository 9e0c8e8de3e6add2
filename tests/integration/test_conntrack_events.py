"""conntrack_info ``events`` on the real kernel, with real traffic between two namespaces (prefix ``ctev``).

One bounded burst of new UDP and TCP flows h2 -> h1 is watched by several listeners at once (no filter, a
protocol filter applied in the kernel by BPF, the same on the host only, a port filter, a filter nothing
matches): each count equals the flows made and h1's nft counters. Then destroy events with accounting and
timestamps on, expectation events of an FTP exchange with the helper attached, a listen far longer than the
traffic, a storm against a deliberately small buffer (overruns survived and counted, the loss account
consistent with the nft counter), and the fleet one-liner ad hoc.
"""
import os
import subprocess
import time

import pytest

from conftest import ROOT, ansible_env, parse_adhoc
from ctev_support import H1, TCP_PORT, EventLab, listen, listen_all, wait_subscribed

N_UDP, N_TCP = 300, 60
MARGIN = 30  # seconds a listen may take beyond its `seconds` (start-up on a loaded machine): no timing bound

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
time.sleep(0.5)
c.sendall(b"QUIT\r\n"); c.close()
'''


@pytest.fixture(scope='module')
def lab():
    the_lab = EventLab()
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()


def events_of(listener):
    result = listener.result()
    assert 'events' in result, result
    return result['events']


def test_burst_counts_equal_the_flows_and_the_nft_counters(lab):
    lab.reset()
    seconds = 6
    listeners = listen_all(lab, {
        'all': ({'events': {'seconds': seconds, 'sample': 3}}, True),  # check mode runs it normally
        'udp_bpf': ({'events': {'seconds': seconds, 'types': ['new']}, 'proto': 'udp'}, False),
        'udp_host': ({'events': {'seconds': seconds, 'types': ['new'], 'kernel_filter': False}, 'proto': 'udp'},
                     False),
        'tcp_port': ({'events': {'seconds': seconds}, 'proto': 'tcp', 'dport': TCP_PORT}, False),
        'none': ({'events': {'seconds': seconds}, 'proto': 'udp', 'dport': 9}, False),
        'v6': ({'events': {'seconds': seconds}, 'family': 'ipv6'}, False),
    })
    made = lab.burst(N_UDP, N_TCP)
    assert made == N_TCP
    results = dict((name, events_of(listener)) for name, listener in listeners.items())
    counters = lab.counters()
    assert counters == {'udp_new': N_UDP, 'tcp_new': N_TCP}

    every = results['all']
    assert every['new']['count'] == N_UDP + N_TCP == sum(counters.values())
    assert every['new']['by_proto'] == {'udp': N_UDP, 'tcp': N_TCP}
    assert every['new']['top_sources'] == [{'src': '192.0.2.12', 'count': N_UDP + N_TCP}]
    assert {'dport': 'tcp/%d' % TCP_PORT, 'count': N_TCP} in every['new']['top_dports']
    assert every['update']['by_proto'] == {'tcp': every['update']['count']}  # UDP without replies: no update
    assert every['update']['count'] >= 3 * N_TCP  # the handshake and the close of each connection
    assert every['destroy']['count'] == 0
    assert every['overruns'] == 0 and every['loss']['unexplained'] == 0
    assert every['loss']['table_delta'] == N_UDP + N_TCP
    assert len(every['sample']) == 3 and every['sample'][0]['event'] == 'new'
    assert every['buffer_forced'] is True and every['kernel_filter'] is None

    assert results['udp_bpf']['kernel_filter'] == 'bpf'
    assert results['udp_bpf']['new']['count'] == N_UDP and results['udp_bpf']['filtered_out'] == 0
    assert results['udp_bpf']['received'] == N_UDP  # the kernel dropped the TCP events before queueing them
    assert results['udp_host']['kernel_filter'] is None
    assert results['udp_host']['new']['count'] == N_UDP
    assert results['udp_host']['filtered_out'] == results['udp_host']['received'] - N_UDP >= N_TCP
    tcp = results['tcp_port']
    assert tcp['kernel_filter'] == 'bpf' and tcp['new']['count'] == N_TCP
    assert tcp['update']['count'] == every['update']['count'] and tcp['received'] == N_TCP + tcp['update']['count']
    assert tcp['loss']['unexplained'] is None  # a filtered listen has no independent count
    assert results['none']['new']['count'] == 0 and results['none']['received'] == N_UDP
    assert results['v6']['new']['count'] == 0 and results['v6']['received'] == 0


def test_destroy_events_carry_counters_and_durations(lab):
    lab.reset()
    lab.sysctl('h1', 'net.netfilter.nf_conntrack_acct', 1)
    lab.sysctl('h1', 'net.netfilter.nf_conntrack_timestamp', 1)
    try:
        listener = listen(lab, {'events': {'seconds': 4, 'types': ['destroy']}, 'proto': 'udp'})
        lab.burst(20, 0, per_flow=3)
        time.sleep(0.3)
        deleted = lab.exec('h1', ['conntrack', '-D', '-p', 'udp'], check=False).stderr
        destroy = events_of(listener)['destroy']
    finally:
        lab.sysctl('h1', 'net.netfilter.nf_conntrack_acct', 0)
        lab.sysctl('h1', 'net.netfilter.nf_conntrack_timestamp', 0)
    assert '20 flow entries' in deleted, deleted
    assert destroy['count'] == 20
    assert destroy['counters'] == {'flows': 20, 'packets': 60, 'bytes': 60 * 38, 'reply_packets': 0,
                                   'reply_bytes': 0, 'mean_bytes': 114.0}
    assert destroy['duration']['flows'] == 20 and 0 < destroy['duration']['min'] <= destroy['duration']['max']


def test_expectation_events_of_an_ftp_exchange(lab):
    lab.reset()
    subprocess.run(['ip', 'netns', 'exec', lab.namespace('h1'), 'nft', '-f', '-'], universal_newlines=True,
                   check=True, input='table inet ctev_ftp {\n ct helper ftp-std {\n type "ftp" protocol tcp\n }\n'
                   ' chain pre {\n type filter hook prerouting priority filter; policy accept;\n'
                   ' tcp dport 21 ct helper set "ftp-std"\n }\n}\n')
    try:
        listener = listen(lab, {'events': {'seconds': 5, 'table': 'expect', 'sample': 5}})
        server = lab.run_python('h1', FTP_SERVER, timeout=15)
        time.sleep(0.5)
        client = lab.run_python('h2', FTP_CLIENT, timeout=15)
        out, _err = client.communicate(timeout=20)
        server.communicate(timeout=20)
        lab.exec('h1', ['conntrack', '-F', 'expect'], check=False)
        result = events_of(listener)
    finally:
        lab.exec('h1', ['nft', 'delete', 'table', 'inet', 'ctev_ftp'], check=False)
    assert '227 Entering Passive Mode' in out
    assert result['table'] == 'expect'
    assert result['new']['count'] == 1 and result['new']['by_helper'] == {'ftp': 1}
    assert result['destroy']['count'] == 1
    expectation = result['sample'][0]
    assert expectation['event'] == 'new' and expectation['tuple']['dport'] == 50000
    assert expectation['master']['dport'] == 21 and expectation['master']['dst'] == H1


def test_a_listen_longer_than_the_traffic_ends_on_time(lab):
    lab.reset()
    seconds = 4
    listener = listen(lab, {'events': {'seconds': seconds}})
    lab.burst(5, 0)
    events = events_of(listener)
    assert events['new']['count'] == 5
    assert seconds <= events['elapsed'] < seconds + 1  # the module's own clock: the listen itself
    assert listener.wall < seconds + MARGIN  # ended, not left running (start-up included)


def test_storm_against_a_small_buffer(lab):
    """The fastest generator against a 64 KiB buffer: the listener survives the overruns, counts them, and its
    loss account (the table grew by more than new - destroy received) adds up to the nft counter."""
    lab.reset()
    listener = listen(lab, {'events': {'seconds': 8, 'buffer_size': 65536}})
    sent = lab.storm(200000, 3)
    events = events_of(listener)
    created = lab.counters()['udp_new']
    assert created == sent
    assert events['overruns'] > 0
    loss = events['loss']
    assert loss['table_delta'] == created  # nothing expired or evicted in the meantime: UDP entries live 30 s
    assert events['new']['count'] < created
    assert events['new']['count'] + loss['unexplained'] == created
    assert events['destroy']['count'] == 0


def test_fleet_one_liner_ad_hoc(lab, installed_collection):
    """JSON without a space after the colon: Ansible's key=value parser splits arguments at spaces (the
    ``events=seconds=4`` form is checked in the unit tests)."""
    lab.reset()
    env = ansible_env(installed_collection)
    env.update(ANSIBLE_CALLBACK_RESULT_FORMAT='json')
    proc = subprocess.Popen([os.path.join(ROOT, '.venv', 'bin', 'ansible'), 'all', '-i', lab.inventory_path, '-m',
                             'netfilter.conntrack.conntrack_info', '-a', 'events={"seconds":4} query=events.new.rate'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    wait_subscribed(lab, 'h1', 1, [])
    lab.burst(40, 0)
    out, err = proc.communicate(timeout=120)
    results = parse_adhoc(out)
    assert proc.returncode == 0, out + err
    assert set(results) == {'h1', 'h2'}
    assert results['h1']['query_result'] == 10.0  # 40 new flows in 4 s
    assert results['h2']['query_result'] == 0  # the generator's namespace tracks nothing
