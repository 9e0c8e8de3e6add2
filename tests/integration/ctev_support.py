"""Helpers for the event tests and bench/bench_events.py (namespace prefix ``ctev``).

* ``EventLab``: a two-host lab (``ctev-h1`` 192.0.2.11, ``ctev-h2`` 192.0.2.12) where h1 counts the new flows
  h2 sends it in nft counters of its own table (``inet ctev``) and h2 tracks nothing (its lab ruleset is
  removed, so the generator's namespace spends nothing on conntrack).
* ``listen(lab, args)``: conntrack_info with ``events`` started inside h1 (as Ansible runs a module), returned
  once its event socket is subscribed (seen in /proc/net/netlink), so traffic started afterwards is all seen.
* ``burst`` / ``storm``: bounded generators run inside h2: UDP datagrams to distinct ports (one new flow each)
  and TCP connections to a server in h1; ``storm`` runs for at most a few seconds, as fast as the lab can.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
SRC = os.path.join(ROOT, 'build', 'src')
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'conntrack_info.py')
H1, H2 = '192.0.2.11', '192.0.2.12'
UDP_BASE = 20000  # the burst's UDP flows go to ports UDP_BASE.. (one port, one flow)
TCP_PORT = 8080

COUNTERS = '''
table inet ctev {
    counter udp_new { }
    counter tcp_new { }
    chain input {
        type filter hook input priority filter - 10; policy accept;
        ip saddr %s ct state new meta l4proto udp counter name "udp_new"
        ip saddr %s ct state new meta l4proto tcp counter name "tcp_new"
    }
}
''' % (H2, H2)

SERVER = r'''
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(512); s.settimeout(1.0)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        c, _a = s.accept()
    except socket.timeout:
        continue
    c.close()
''' % TCP_PORT

BURST = r'''
import socket, sys
dst, n_udp, n_tcp, per_flow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n_udp):
    for _p in range(per_flow):
        s.sendto(b"x" * 10, (dst, %d + i))
made = 0
for i in range(n_tcp):
    c = socket.create_connection((dst, %d), timeout=5)
    c.close()
    made += 1
print(made)
''' % (UDP_BASE, TCP_PORT)

# the fastest new-flow generator the lab runs: one UDP datagram per (address, port), from a few source
# sockets, bounded by count and by time; prints how many it sent
STORM = r'''
import socket, sys, time
dst, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _i in range(4)]
sends = [s.sendto for s in socks]
payload = b"x"
end = time.monotonic() + seconds
sent = 0
port = 1024
while sent < count:
    for send in sends:
        send(payload, (dst, port))
    sent += len(sends)
    port += 1
    if port > 65000:
        port = 1024
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _i in range(4)]
        sends = [s.sendto for s in socks]
    if not sent & 4095 and time.monotonic() > end:
        break
print(sent)
'''


class EventLab(Lab):
    """The two-host event lab; see the module docstring."""

    def __init__(self, prefix='ctev'):
        super(EventLab, self).__init__(prefix=prefix, hosts=2)

    def up(self):
        super(EventLab, self).up()
        self.exec('h2', ['nft', 'flush', 'ruleset'])
        subprocess.run(['ip', 'netns', 'exec', self.namespace('h1'), 'nft', '-f', '-'], input=COUNTERS,
                       universal_newlines=True, check=True, timeout=30)
        # the first packets between the hosts (neighbour discovery) before any test counts anything
        self.exec('h2', ['ip', 'neigh', 'replace', H1, 'lladdr', self.mac('h1'), 'dev', 'eth0'])
        self.exec('h1', ['ip', 'neigh', 'replace', H2, 'lladdr', self.mac('h2'), 'dev', 'eth0'])
        return self

    def mac(self, host):
        out = self.exec(host, ['cat', '/sys/class/net/eth0/address']).stdout
        return out.strip()

    def reset(self):
        """An empty table in h1 and zeroed counters."""
        self.exec('h1', ['conntrack', '-F'], check=False)
        self.exec('h1', ['conntrack', '-F', 'expect'], check=False)
        self.exec('h1', ['nft', 'reset', 'counters', 'table', 'inet', 'ctev'])

    def counters(self):
        """{'udp_new': packets, 'tcp_new': packets} of h1's nft counters."""
        out = json.loads(self.exec('h1', ['nft', '-j', 'list', 'counters', 'table', 'inet', 'ctev']).stdout)
        return dict((item['counter']['name'], item['counter']['packets']) for item in out['nftables']
                    if 'counter' in item)

    def sysctl(self, host, name, value):
        self.exec(host, ['sysctl', '-qw', '%s=%s' % (name, value)])

    def run_python(self, host, code, *args, **kw):
        return subprocess.Popen(['ip', 'netns', 'exec', self.namespace(host), 'timeout', str(kw.pop('timeout', 60)),
                                 PYTHON, '-c', code] + [str(a) for a in args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, **kw)

    def burst(self, n_udp, n_tcp, per_flow=1):
        """``n_udp`` UDP flows (``per_flow`` datagrams each) and ``n_tcp`` TCP connections h2 -> h1; returns the
        TCP connections made."""
        server = self.run_python('h1', SERVER, 30) if n_tcp else None
        try:
            if server is not None:
                wait_listening(self, 'h1', TCP_PORT)
            gen = self.run_python('h2', BURST, H1, n_udp, n_tcp, per_flow)
            out, err = gen.communicate(timeout=90)
            assert gen.returncode == 0, err
            return int(out)
        finally:
            if server is not None:
                server.kill()
                server.wait()

    def storm(self, count, seconds):
        """The storm generator in h2 against h1; returns the datagrams it sent."""
        gen = self.run_python('h2', STORM, H1, count, seconds, timeout=int(seconds) + 30)
        out, err = gen.communicate(timeout=seconds + 60)
        assert gen.returncode == 0, err
        return int(out)


def wait_listening(lab, host, port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ':%d ' % port in lab.exec(host, ['ss', '-ltnH']).stdout:
            return
        time.sleep(0.05)
    raise AssertionError('no listener on port %d in %s' % (port, host))


def subscribed(lab, host):
    """The netfilter netlink sockets of ``host`` subscribed to any group (from /proc/net/netlink)."""
    found = 0
    for line in lab.exec(host, ['cat', '/proc/net/netlink']).stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == '12' and int(fields[3], 16):
            found += 1
    return found


class Listening(object):
    """conntrack_info with ``events`` running inside ``host``; ``result()`` waits for it."""

    def __init__(self, lab, args, host='h1', check_mode=False, wait=True):
        before = subscribed(lab, host)
        handle = tempfile.NamedTemporaryFile('w', suffix='.json', delete=False)
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check_mode)}, handle)
        handle.close()
        self.path = handle.name
        self.started = time.monotonic()
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', lab.namespace(host), PYTHON, MODULE, self.path],
                                     env=dict(os.environ, PYTHONPATH=SRC), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, universal_newlines=True)
        self.wall = None
        if wait:
            wait_subscribed(lab, host, before + 1, [self])

    def failed(self):
        return self.proc.poll() is not None

    def result(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        self.wall = time.monotonic() - self.started
        os.unlink(self.path)
        assert 'Traceback' not in err, err
        return json.loads(out)


def wait_subscribed(lab, host, count, listeners, timeout=60):
    """Wait until ``host`` has ``count`` subscribed event sockets (all of ``listeners`` are listening)."""
    end = time.monotonic() + timeout
    while subscribed(lab, host) < count:
        for listener in listeners:
            if listener.failed():
                raise AssertionError('a listener ended before subscribing: %s' % (listener.proc.communicate()[1][-3000:]))
        if time.monotonic() > end:
            raise AssertionError('the listeners did not subscribe in %d s' % timeout)
        time.sleep(0.05)


def listen(lab, args, **kw):
    return Listening(lab, args, **kw)


def listen_all(lab, named_args, host='h1'):
    """Several listeners started at once: {name: Listening} once every one is subscribed. ``named_args``:
    {name: (args, check_mode)}."""
    before = subscribed(lab, host)
    listeners = dict((name, Listening(lab, args, host, check_mode, wait=False))
                     for name, (args, check_mode) in named_args.items())
    wait_subscribed(lab, host, before + len(listeners), list(listeners.values()))
    return listeners
