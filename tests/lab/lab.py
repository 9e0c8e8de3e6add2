"""The namespace lab: N "hosts" that are network namespaces, a fleet to Ansible, real kernel tables.

    python tests/lab/lab.py up N [--prefix P]     build (or rebuild) the lab
    python tests/lab/lab.py traffic [--prefix P]  bounded real traffic between the hosts
    python tests/lab/lab.py inventory [--prefix P] print the inventory path
    python tests/lab/lab.py status [--prefix P]   namespaces and their conntrack counts
    python tests/lab/lab.py down [--prefix P]     remove everything with the prefix

Topology: a switch namespace ``<prefix>-sw`` holding a bridge; each host namespace
``<prefix>-hN`` joined to it by a veth pair, with an IPv4 address from the three documentation
ranges (hosts 1-244 in 192.0.2.0/24, 245-488 in 198.51.100.0/24, 489-732 in 203.0.113.0/24, each
.11-.254, with on-link routes to the other two) and 2001:db8:c7::(10+N)/64, no default route,
nothing linked to the initial namespace. Each host
has a stateful nft table ``inet lab`` so its conntrack table fills from real packets, and an
interpreter wrapper (``ip netns exec <ns> <venv python>``) that the inventory uses as
``ansible_python_interpreter``: Ansible sees a fleet, the kernel sees namespaces.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')

HOST_RULESET = '''
table inet lab {
    chain input {
        type filter hook input priority filter; policy accept;
        ct state established,related accept
        ct state invalid drop
    }
    chain output {
        type filter hook output priority filter; policy accept;
        ct state established,related accept
    }
}
'''

# The IPv4 documentation ranges the lab numbers its hosts in, .11-.254 of each (244 hosts per range).
SUBNETS = ('192.0.2', '198.51.100', '203.0.113')
PER_SUBNET = 244
MAX_HOSTS = PER_SUBNET * len(SUBNETS)
# How many other hosts each host talks to during `traffic` (the next ones, round the ring): every host is
# reached the same number of times whatever the lab's size, so the mesh grows linearly, not as N^2.
FANOUT = 8

# A small peer run inside each host during `traffic`: a TCP listener and a UDP sink on a few
# ports, then connections/datagrams to its peers. Bounded by count and a deadline; every peer
# waits for the same start time (all of them listening) before it connects.
PEER = r'''
import socket, sys, threading, time
me, peers6, peers4 = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
start = float(sys.argv[4]); deadline = start + 8
def v6only(s, family):
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
def serve_tcp(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v6only(s, family); s.bind((addr, 8080)); s.listen(64); s.settimeout(0.5)
    while time.time() < deadline:
        try:
            c, _a = s.accept(); c.sendall(b'lab\n'); c.close()
        except OSError:
            pass
def serve_udp(family, addr, port):
    s = socket.socket(family, socket.SOCK_DGRAM); v6only(s, family); s.bind((addr, port)); s.settimeout(0.5)
    while time.time() < deadline:
        try:
            data, peer = s.recvfrom(64); s.sendto(data, peer)
        except OSError:
            pass
threads = [threading.Thread(target=serve_tcp, args=(socket.AF_INET, '0.0.0.0')),
           threading.Thread(target=serve_tcp, args=(socket.AF_INET6, '::'))]
threads += [threading.Thread(target=serve_udp, args=(socket.AF_INET, '0.0.0.0', p)) for p in (53, 123)]
threads += [threading.Thread(target=serve_udp, args=(socket.AF_INET6, '::', 53))]
for t in threads:
    t.daemon = True; t.start()
def echo(family, peer, ident):
    # one ICMP/ICMPv6 echo request over a raw socket (root); the kernel answers it
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kind = 8 if family == socket.AF_INET else 128
    body = ident.to_bytes(2, 'big') + (1).to_bytes(2, 'big') + b'lab'
    packet = bytes([kind, 0, 0, 0]) + body
    if family == socket.AF_INET:
        total = sum(int.from_bytes(packet[i:i + 2].ljust(2, b'\0'), 'big') for i in range(0, len(packet), 2))
        total = (total >> 16) + (total & 0xffff)
        checksum = ~(total + (total >> 16)) & 0xffff
        packet = packet[:2] + checksum.to_bytes(2, 'big') + packet[4:]
    s = socket.socket(family, socket.SOCK_RAW, proto); s.settimeout(0.5)
    try:
        s.sendto(packet, (peer, 0)); s.recvfrom(128)
    except OSError:
        pass
    s.close()
time.sleep(max(0.0, start - time.time()))  # every peer is listening before anyone connects
held = []
for family, peers in ((socket.AF_INET, peers4), (socket.AF_INET6, peers6)):
    for peer in peers:
        if not peer or time.time() > deadline - 1:
            continue
        echo(family, peer, 0x4c00 + len(held))
        for _i in range(3):
            try:
                c = socket.create_connection((peer, 8080), timeout=1); c.recv(8); held.append(c)
            except OSError:
                pass
        for port in (53, 123, 5000, 5001):
            u = socket.socket(family, socket.SOCK_DGRAM); u.settimeout(0.1)
            try:
                u.sendto(b'q', (peer, port)); u.recvfrom(8)
            except OSError:
                pass
            u.close()
time.sleep(1)
for c in held:
    c.close()
'''


def run(argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kwargs)


def netns_list():
    out = run(['ip', 'netns', 'list'], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Lab(object):
    """A lab of ``hosts`` namespaces named ``<prefix>-h1`` ... plus the switch ``<prefix>-sw``."""

    def __init__(self, prefix='ctlab', hosts=3, root=ROOT):
        if not prefix.replace('-', '').isalnum() or len(prefix) > 8:
            raise ValueError('lab prefix %r: use up to 8 letters/digits (interface names are limited to 15)' % prefix)
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError('a lab has 1 to %d hosts (the IPv4 documentation ranges hold %d x %d), not %d'
                             % (MAX_HOSTS, len(SUBNETS), PER_SUBNET, hosts))
        self.prefix = prefix
        self.count = hosts
        self.root = root
        self.dir = os.path.join(root, 'lab', prefix)
        self.inventory_path = os.path.join(self.dir, 'inventory.ini')
        self.switch = '%s-sw' % prefix
        self.hosts = ['h%d' % i for i in range(1, hosts + 1)]

    # --- naming -----------------------------------------------------------------------------
    def namespace(self, host):
        return '%s-%s' % (self.prefix, host)

    def index(self, host):
        return int(host[1:])

    def ipv4(self, host):
        subnet, offset = divmod(self.index(host) - 1, PER_SUBNET)
        return '%s.%d' % (SUBNETS[subnet], 11 + offset)

    def subnet(self, host):
        return SUBNETS[(self.index(host) - 1) // PER_SUBNET] + '.0/24'

    def peers(self, host, fanout=FANOUT):
        """The hosts ``host`` talks to in ``traffic``: the next ``fanout`` round the ring (all others in a small lab)."""
        i = self.hosts.index(host)
        count = min(fanout, len(self.hosts) - 1)
        return [self.hosts[(i + k) % len(self.hosts)] for k in range(1, count + 1)]

    def ipv6(self, host):
        return '2001:db8:c7::%d' % (10 + self.index(host))

    def python(self, host):
        return os.path.join(self.dir, 'bin', 'python-%s' % host)

    # --- lifecycle --------------------------------------------------------------------------
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()

    def up(self):
        """Build the lab from scratch (anything left with this prefix is removed first)."""
        self.down()
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _build(self):
        run(['ip', 'netns', 'add', self.switch])
        run(['ip', '-n', self.switch, 'link', 'set', 'lo', 'up'])
        run(['ip', '-n', self.switch, 'link', 'add', 'br0', 'type', 'bridge'])
        run(['ip', '-n', self.switch, 'link', 'set', 'br0', 'up'])
        os.makedirs(os.path.join(self.dir, 'bin'), exist_ok=True)
        for host in self.hosts:
            ns = self.namespace(host)
            port = '%ss%d' % (self.prefix.replace('-', ''), self.index(host))
            run(['ip', 'netns', 'add', ns])
            run(['ip', '-n', self.switch, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
            run(['ip', '-n', self.switch, 'link', 'set', port, 'master', 'br0', 'up'])
            run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
            run(['ip', '-n', ns, 'addr', 'add', self.ipv4(host) + '/24', 'dev', 'eth0'])
            run(['ip', '-n', ns, 'addr', 'add', self.ipv6(host) + '/64', 'dev', 'eth0', 'nodad'])
            run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
            for subnet in SUBNETS[:(self.count - 1) // PER_SUBNET + 1]:
                if subnet + '.0/24' != self.subnet(host):  # the other ranges are on the same bridge: on-link
                    run(['ip', '-n', ns, 'route', 'add', subnet + '.0/24', 'dev', 'eth0', 'scope', 'link'])
            run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], input=HOST_RULESET)
            wrapper = self.python(host)
            with open(wrapper, 'w') as handle:
                handle.write('#!/bin/sh\n# lab host %s: the project Python inside namespace %s\n'
                             'exec ip netns exec %s %s "$@"\n' % (host, ns, ns, VENV_PYTHON))
            os.chmod(wrapper, 0o755)
        self._write_inventory()

    def _write_inventory(self):
        lines = ['# generated by tests/lab/lab.py: each host is a network namespace', '[lab]']
        for host in self.hosts:
            lines.append('%s ansible_connection=local ansible_python_interpreter=%s lab_namespace=%s '
                         'lab_ipv4=%s lab_ipv6=%s' % (host, self.python(host), self.namespace(host),
                                                      self.ipv4(host), self.ipv6(host)))
        lines += ['', '[lab:vars]',
                  '# each lab host is a network namespace: boot-time files never reach it, and the global',
                  '# knobs (nf_conntrack_max, buckets) belong to the machine, not to the host',
                  'synflood_guard_persist=false',
                  'tuning_persist=false',
                  '# the lab service port (tests/lab/lab.py traffic) is what the demo protects',
                  'synflood_guard_ports=[8080]']
        with open(self.inventory_path, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        link = os.path.join(self.root, 'lab', 'inventory.ini')
        if os.path.islink(link) or os.path.exists(link):
            os.unlink(link)
        os.symlink(os.path.relpath(self.inventory_path, os.path.dirname(link)), link)

    def down(self):
        """Remove every namespace of this prefix (interfaces go with them) and the generated files."""
        for ns in netns_list():
            if ns == self.switch or ns.startswith(self.prefix + '-h'):
                run(['ip', 'netns', 'pids', ns], check=False)
                for pid in run(['ip', 'netns', 'pids', ns], check=False).stdout.split():
                    try:
                        os.kill(int(pid), 9)
                    except (OSError, ValueError):
                        pass
                run(['ip', 'netns', 'del', ns], check=False)
        link = os.path.join(self.root, 'lab', 'inventory.ini')
        if os.path.islink(link) and os.readlink(link).startswith(self.prefix + '/'):
            os.unlink(link)
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.rmdir(os.path.join(self.root, 'lab'))
        except OSError:
            pass

    # --- use --------------------------------------------------------------------------------
    def exec(self, host, argv, **kwargs):
        kwargs.setdefault('check', True)
        return run(['ip', 'netns', 'exec', self.namespace(host)] + list(argv), **kwargs)

    def count_entries(self, host):
        return int(self.exec(host, ['cat', '/proc/sys/net/netfilter/nf_conntrack_count']).stdout)

    def traffic(self, fanout=FANOUT):
        """Real flows from every host to its ``peers`` (TCP, UDP, ICMP, ICMPv6; IPv4 and IPv6), bounded in time.

        All peers start at one moment, after every process had time to start (0.05 s per host on top of 1.5 s),
        so the last host of a big lab gets its flows like the first."""
        procs = []
        start = time.time() + 1.5 + 0.05 * len(self.hosts)
        limit = int(start - time.time()) + 12
        for host in self.hosts:
            others = self.peers(host, fanout)
            argv = ['ip', 'netns', 'exec', self.namespace(host), 'timeout', str(limit), VENV_PYTHON, '-c', PEER, host,
                    ','.join(self.ipv6(h) for h in others), ','.join(self.ipv4(h) for h in others), repr(start)]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, start + limit + 5 - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def status(self):
        return dict((host, self.count_entries(host)) for host in self.hosts if self.namespace(host) in netns_list())


def existing_hosts(prefix):
    return sorted((ns[len(prefix) + 1:] for ns in netns_list() if ns.startswith(prefix + '-h')),
                  key=lambda h: int(h[1:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=['up', 'down', 'traffic', 'inventory', 'status'])
    parser.add_argument('hosts', nargs='?', type=int, default=3)
    parser.add_argument('--prefix', default='ctlab')
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.command != 'inventory':
        parser.error('the lab needs root (network namespaces)')
    if args.command == 'up':
        lab = Lab(args.prefix, args.hosts).up()
        lab.traffic()
        print('lab %s: %d hosts up, inventory %s' % (args.prefix, args.hosts, lab.inventory_path))
        return 0
    lab = Lab(args.prefix, len(existing_hosts(args.prefix)) or args.hosts)
    if args.command == 'down':
        lab.down()
    elif args.command == 'traffic':
        lab.traffic()
        print(' '.join('%s=%d' % kv for kv in sorted(lab.status().items())))
    elif args.command == 'inventory':
        print(lab.inventory_path)
    else:
        print(' '.join('%s=%d' % kv for kv in sorted(lab.status().items())) or 'no lab with prefix %s' % args.prefix)
    return 0


if __name__ == '__main__':
    sys.exit(main())
